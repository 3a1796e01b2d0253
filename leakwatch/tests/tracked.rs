//! `#[tracked]` end to end. Tracked types are process-wide and tests run in parallel, so every
//! test uses its own type.

use std::collections::HashSet;
use std::mem::size_of;

use leakwatch::{Tracker, counts, tracked};
use serde::{Deserialize, Serialize};

mod presence {
    use leakwatch::Tracker;

    #[leakwatch::tracked]
    pub struct Watch {
        pub user: u32,
        pub tracker: Tracker<Self>,
    }
}

#[tracked]
struct Named {
    user: u32,
    tracker: Tracker<Self>,
}

#[test]
fn named_struct_counts_created_dropped_live_peak() {
    use Named as Watch;
    let a = Watch {
        user: 1,
        tracker: Tracker::new(),
    };
    let b = Watch {
        user: 2,
        tracker: Tracker::new(),
    };
    assert_eq!(a.user + b.user, 3);
    let c = counts::<Watch>();
    assert_eq!((c.created, c.dropped, c.live, c.peak), (2, 0, 2, 2));
    drop(a);
    drop(b);
    let c = counts::<Watch>();
    assert_eq!((c.created, c.dropped, c.live), (2, 2, 0));
    assert_eq!(c.peak, 2, "peak keeps the high-water mark");
}

#[test]
fn default_name_is_the_dotted_module_path() {
    let w = presence::Watch {
        user: 1,
        tracker: Tracker::new(),
    };
    assert_eq!(w.user, 1);
    let name = concat!(module_path!(), ".presence.Watch");
    assert_eq!(name, "tracked.presence.Watch");
    let snap = leakwatch::snapshot();
    let s = snap.get(name).expect("series under the dotted path");
    assert_eq!(s.kind, leakwatch::SeriesKind::Type);
}

#[tracked(name = "presence.Renamed")]
struct Renamed {
    _x: u8,
    tracker: Tracker<Self>,
}

#[test]
fn name_override() {
    let _r = Renamed {
        _x: 0,
        tracker: Tracker::new(),
    };
    let snap = leakwatch::snapshot();
    assert!(snap.get("presence.Renamed").is_some());
    assert!(snap.get("tracked.Renamed").is_none());
}

#[tracked]
struct Pair(u32, String, Tracker<Self>);

#[test]
fn tuple_struct_appends_the_tracker() {
    let p = Pair(7, "x".into(), Default::default());
    assert_eq!((p.0, p.1.as_str()), (7, "x"));
    assert_eq!(counts::<Pair>().live, 1);
    drop(p);
    assert_eq!(counts::<Pair>().live, 0);
}

#[tracked]
#[derive(Clone)]
struct Cache<T> {
    items: Vec<T>,
    tracker: Tracker<Self>,
}

#[test]
fn generic_struct_one_series_for_all_instantiations() {
    let a = Cache::<u8> {
        items: vec![1],
        tracker: Tracker::new(),
    };
    let b = Cache::<String> {
        items: vec![],
        tracker: Tracker::new(),
    };
    let b2 = b.clone();
    assert_eq!(a.items.len() + b2.items.len(), 1);
    let c = counts::<Cache<u8>>();
    assert_eq!(c, counts::<Cache<String>>(), "one shared series");
    assert_eq!(c.live, 3);
    // Live bytes add each instantiation's own size.
    let want = size_of::<Cache<u8>>() + 2 * size_of::<Cache<String>>();
    assert_eq!(c.live_bytes, Some(want as u64));
    drop((a, b, b2));
    let c = counts::<Cache<u8>>();
    assert_eq!((c.live, c.live_bytes), (0, Some(0)));
}

#[tracked]
struct Borrowing<'a> {
    s: &'a str,
    tracker: Tracker<Self>,
}

#[test]
fn lifetime_generic_struct() {
    let owned = String::from("hi");
    let b = Borrowing {
        s: &owned,
        tracker: Tracker::new(),
    };
    assert_eq!(b.s, "hi");
    let c = counts::<Borrowing<'static>>();
    assert_eq!(c.live, 1);
    assert_eq!(c.live_bytes, Some(size_of::<Borrowing<'_>>() as u64));
}

#[tracked]
struct Holder<T: ?Sized> {
    inner: Box<T>,
    tracker: Tracker<Self>,
}

#[test]
fn maybe_sized_generic_compiles_and_reports_no_bytes() {
    let h: Holder<dyn Fn() -> u8> = Holder {
        inner: Box::new(|| 3),
        tracker: Tracker::new(),
    };
    assert_eq!((h.inner)(), 3);
    let c = counts::<Holder<dyn Fn() -> u8>>();
    assert_eq!((c.live, c.live_bytes), (1, None));
}

/// `repr(C)` so that a `Message<[u8; 3]>` may be viewed as a `Message<[u8]>` (the unsizing
/// coercion is not available to tracked types).
#[tracked]
#[derive(Debug)]
#[repr(C)]
struct Message<T: ?Sized> {
    tracker: Tracker<Self>,
    id: u32,
    body: T,
}

/// Never built (a struct with a slice field needs unsafe code to create); its `Debug` impl
/// compiling is the point.
#[tracked]
#[derive(Debug)]
#[allow(dead_code)]
struct Frame {
    tracker: Tracker<Self>,
    id: u32,
    data: [u8],
}

#[test]
fn debug_of_an_unsized_last_field() {
    let _compiles: fn(&Frame) -> String = |f| format!("{f:?}");
    let sized = Box::new(Message {
        id: 1,
        body: [7u8, 8, 9],
        tracker: Tracker::new(),
    });
    let raw = std::ptr::slice_from_raw_parts_mut(Box::into_raw(sized).cast::<u8>(), 3);
    // SAFETY: with `repr(C)` a `Message<[u8]>` of length 3 has the layout of the
    // `Message<[u8; 3]>` it came from, and the box's allocation is freed with that layout.
    let m: Box<Message<[u8]>> = unsafe { Box::from_raw(raw as *mut Message<[u8]>) };
    assert_eq!(format!("{m:?}"), "Message { id: 1, body: [7, 8, 9] }");
    assert_eq!(counts::<Message<[u8]>>().live, 1);
    drop(m);
    assert_eq!(counts::<Message<[u8]>>().live, 0);
    let n = Message {
        id: 2,
        body: "sized too",
        tracker: Tracker::new(),
    };
    assert_eq!(format!("{n:?}"), "Message { id: 2, body: \"sized too\" }");
}

/// Packed: `Debug` copies the fields out as std's derive does; no reference to a field is taken.
#[tracked]
#[derive(Debug, Default)]
#[repr(C, packed)]
struct Packed {
    tag: u8,
    len: u32,
    tracker: Tracker<Self>,
}

#[tracked]
#[derive(Debug)]
#[repr(C, packed(2))]
struct PackedTuple(u8, u64, Tracker<Self>);

#[test]
fn packed_structs_are_counted_and_print() {
    let p = Packed {
        tag: 1,
        len: 70_000,
        ..Default::default()
    };
    let t = PackedTuple(2, 3, Default::default());
    assert_eq!(size_of::<Packed>(), 5);
    assert_eq!(format!("{p:?}"), "Packed { tag: 1, len: 70000 }");
    assert_eq!(format!("{t:?}"), "PackedTuple(2, 3)");
    assert_eq!(({ p.tag }, { p.len }, { t.0 }, { t.1 }), (1, 70_000, 2, 3));
    assert_eq!(
        (counts::<Packed>().live, counts::<PackedTuple>().live),
        (1, 1)
    );
    drop((p, t));
    assert_eq!(
        (counts::<Packed>().live, counts::<PackedTuple>().live),
        (0, 0)
    );
}

#[tracked]
#[derive(Clone)]
struct Cloned {
    v: Vec<u8>,
    tracker: Tracker<Self>,
}

#[test]
fn clones_are_new_instances() {
    let a = Cloned {
        v: vec![1],
        tracker: Tracker::new(),
    };
    let b = a.clone();
    let mut c = b.clone();
    let k = counts::<Cloned>();
    assert_eq!((k.created, k.live), (3, 3));
    // The derived `clone_from` is `*self = source.clone()`: one more created, one dropped.
    c.clone_from(&a);
    assert_eq!(c.v, a.v);
    let k = counts::<Cloned>();
    assert_eq!((k.created, k.dropped, k.live), (4, 1, 3));
    drop((a, b, c));
    assert_eq!(counts::<Cloned>().live, 0);
}

#[tracked]
struct CrossThread {
    _id: u64,
    tracker: Tracker<Self>,
}

#[test]
fn created_here_dropped_on_another_thread() {
    let v: Vec<CrossThread> = (0..3)
        .map(|i| CrossThread {
            _id: i,
            tracker: Tracker::new(),
        })
        .collect();
    assert_eq!(counts::<CrossThread>().live, 3);
    // A fresh thread that never saw the type drops them (countme counts this as +1 each).
    std::thread::spawn(move || drop(v)).join().unwrap();
    let c = counts::<CrossThread>();
    assert_eq!((c.created, c.dropped, c.live), (3, 3, 0));
}

#[test]
fn many_threads_create_and_drop_concurrently() {
    #[tracked]
    struct Hammered {
        _x: u8,
        tracker: Tracker<Self>,
    }
    let handles: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                let mut keep = Vec::new();
                for i in 0..10_000 {
                    keep.push(Hammered {
                        _x: 0,
                        tracker: Tracker::new(),
                    });
                    if i % 2 == 0 {
                        keep.pop();
                    }
                }
                keep
            })
        })
        .collect();
    let kept: Vec<Vec<Hammered>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(counts::<Hammered>().live, 4 * 5_000);
    drop(kept);
    let c = counts::<Hammered>();
    assert_eq!((c.created, c.live), (40_000, 0));
}

// Every derive the issue lists, written below #[tracked] as documented.
#[tracked]
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
struct Everything {
    id: u32,
    name: String,
    tracker: Tracker<Self>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
struct EverythingPlain {
    id: u32,
    name: String,
}

fn everything(id: u32, name: &str) -> Everything {
    Everything {
        id,
        name: name.into(),
        tracker: Tracker::new(),
    }
}

#[test]
fn derives_keep_working() {
    let a = everything(1, "a");
    let b = everything(2, "b");
    // Debug prints exactly what the untracked struct printed.
    let plain = EverythingPlain {
        id: 1,
        name: "a".into(),
    };
    let same = |s: String| s.replace("EverythingPlain", "Everything");
    assert_eq!(format!("{a:?}"), same(format!("{plain:?}")));
    assert_eq!(format!("{a:#?}"), same(format!("{plain:#?}")));
    assert_eq!(format!("{a:?}"), r#"Everything { id: 1, name: "a" }"#);
    // Clone / PartialEq / Eq.
    assert_eq!(a.clone(), a);
    assert_ne!(a, b);
    // Ord by fields, the tracker never decides.
    assert!(a < b);
    assert_eq!(a.cmp(&a.clone()), std::cmp::Ordering::Equal);
    // Hash: equal values hash equal.
    let set: HashSet<Everything> = [a.clone(), a.clone(), b.clone()].into_iter().collect();
    assert_eq!(set.len(), 2);
    // Default is counted too, and struct update syntax works with it.
    let d = Everything::default();
    assert_eq!((d.id, d.name.as_str()), (0, ""));
    let e = Everything {
        id: 9,
        ..Default::default()
    };
    assert_eq!(e.id, 9);
    drop((set, d, e));
    // Only a and b are left.
    assert_eq!(counts::<Everything>().live, 2);
}

#[test]
fn serde_round_trip_skips_the_tracker_and_counts_deserialised_values() {
    #[tracked]
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Wire {
        id: u32,
        tags: Vec<String>,
        tracker: Tracker<Self>,
    }
    let w = Wire {
        id: 3,
        tags: vec!["x".into()],
        tracker: Tracker::new(),
    };
    let json = serde_json::to_string(&w).unwrap();
    assert_eq!(json, r#"{"id":3,"tags":["x"]}"#);
    let back: Wire = serde_json::from_str(&json).unwrap();
    assert_eq!(back, w);
    assert_eq!(counts::<Wire>().live, 2);
    drop((w, back));
    assert_eq!(counts::<Wire>().live, 0);
}

#[test]
fn serde_newtype_keeps_its_format() {
    #[tracked]
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct UserId(u64, Tracker<Self>);
    let id = UserId(42, Default::default());
    assert_eq!(serde_json::to_string(&id).unwrap(), "42");
    assert_eq!(serde_json::from_str::<UserId>("42").unwrap(), id);
    assert_eq!(format!("{id:?}"), "UserId(42)");

    // A `serde(transparent)` of its own under a `cfg_attr` keeps working.
    #[tracked]
    #[cfg_attr(all(), derive(Debug, PartialEq, Serialize, Deserialize))]
    #[cfg_attr(all(), serde(transparent))]
    struct Cents(u64, Tracker<Self>);
    let c = Cents(5, Default::default());
    assert_eq!(serde_json::to_string(&c).unwrap(), "5");
    assert_eq!(serde_json::from_str::<Cents>("5").unwrap(), c);
}

#[test]
fn size_is_unchanged() {
    #[tracked]
    #[allow(dead_code)]
    struct T1 {
        a: u8,
        b: u64,
        c: u16,
        tracker: Tracker<Self>,
    }
    #[allow(dead_code)]
    struct P1 {
        a: u8,
        b: u64,
        c: u16,
    }
    #[tracked]
    #[allow(dead_code)]
    #[repr(C)]
    struct T2(u8, u32, Tracker<Self>);
    #[allow(dead_code)]
    #[repr(C)]
    struct P2(u8, u32);
    assert_eq!(size_of::<T1>(), size_of::<P1>());
    assert_eq!(align_of::<T1>(), align_of::<P1>());
    assert_eq!(size_of::<T2>(), size_of::<P2>());
    assert_eq!(size_of::<Option<T1>>(), size_of::<Option<P1>>());
    assert_eq!(size_of::<Cache<u8>>(), size_of::<Vec<u8>>());
}

#[test]
fn live_bytes_is_size_times_live() {
    #[tracked]
    struct Sized100 {
        _buf: [u8; 100],
        tracker: Tracker<Self>,
    }
    let v: Vec<Sized100> = (0..5)
        .map(|_| Sized100 {
            _buf: [0; 100],
            tracker: Tracker::new(),
        })
        .collect();
    assert_eq!(counts::<Sized100>().live_bytes, Some(500));
    drop(v);
    assert_eq!(counts::<Sized100>().live_bytes, Some(0));
}

#[test]
fn user_drop_and_moves_compose() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    #[tracked]
    struct WithDrop {
        v: Vec<u8>,
        tracker: Tracker<Self>,
    }
    impl Drop for WithDrop {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::Relaxed);
        }
    }
    #[tracked]
    struct Movable {
        tracker: Tracker<Self>,
        v: Vec<u8>,
        s: String,
    }
    let w = WithDrop {
        v: vec![1],
        tracker: Tracker::new(),
    };
    assert_eq!(w.v, [1]);
    drop(w);
    assert_eq!(DROPS.load(Ordering::Relaxed), 1);
    assert_eq!(counts::<WithDrop>().live, 0);
    // No Drop impl is generated, so fields can still be moved out.
    let m = Movable {
        v: vec![2],
        s: "s".into(),
        tracker: Tracker::new(),
    };
    fn split(m: Movable) -> (Vec<u8>, String) {
        // The tracker stays in `m` and is dropped when `m` goes out of scope, here.
        let Movable { v, s, .. } = m;
        (v, s)
    }
    let (v, s) = split(m);
    assert_eq!((v, s.as_str()), (vec![2], "s"));
    assert_eq!(counts::<Movable>().live, 0);
}

#[test]
fn appears_in_the_global_snapshot() {
    #[tracked(name = "tests.Snapshotted")]
    struct Snapshotted {
        _x: [u8; 16],
        tracker: Tracker<Self>,
    }
    let keep = Snapshotted {
        _x: [0; 16],
        tracker: Tracker::new(),
    };
    let snap = leakwatch::snapshot();
    let s = snap.get("tests.Snapshotted").unwrap();
    assert_eq!((s.live, s.live_bytes), (1, Some(16)));
    drop(keep);
}

/// Shapes the generated code must cope with: where-clauses, const generics, lifetimes with
/// bounds, restricted visibility, and type names that match the generated items' names.
#[allow(dead_code, clippy::upper_case_acronyms)]
mod shapes {
    use std::fmt::Debug;

    use leakwatch::{Tracker, counts, tracked};

    #[tracked]
    #[derive(Debug, Clone)]
    pub struct WithWhere<T, const N: usize>
    where
        T: Clone + Debug,
    {
        pub items: [T; N],
        pub tracker: Tracker<Self>,
    }

    #[tracked]
    #[derive(Debug)]
    pub(crate) struct Borrowed<'a, 'b: 'a, T: Debug + ?Sized + 'b>(
        pub(crate) &'a &'b T,
        Tracker<Self>,
    );

    #[tracked]
    #[derive(Debug, Default)]
    #[allow(non_camel_case_types, non_snake_case)]
    pub struct STATS {
        pub f: u32,
        pub NAME: u8,
        pub tracker: Tracker<Self>,
    }

    #[tracked]
    #[derive(Debug)]
    #[allow(non_camel_case_types)]
    pub struct NAME(pub u8, Tracker<Self>);

    #[test]
    fn generic_shapes_compile_and_count() {
        let w = WithWhere::<u8, 3> {
            items: [1, 2, 3],
            tracker: Tracker::new(),
        };
        let w2 = w.clone();
        assert_eq!(format!("{w2:?}"), "WithWhere { items: [1, 2, 3] }");
        assert_eq!(counts::<WithWhere<u16, 1>>().live, 2);
        drop((w, w2));

        let s = String::from("x");
        let r = &s;
        let b = Borrowed(&r, Default::default());
        assert_eq!(format!("{b:?}"), "Borrowed(\"x\")");
        assert_eq!(counts::<Borrowed<'_, '_, String>>().live, 1);
        drop(b);

        let st = STATS::default();
        assert_eq!(format!("{st:?}"), "STATS { f: 0, NAME: 0 }");
        let n = NAME(4, Default::default());
        assert_eq!(format!("{n:?}"), "NAME(4)");
        assert_eq!((counts::<STATS>().live, counts::<NAME>().live), (1, 1));
    }
}

/// A struct that only borrows: the tracker must not make the borrow checker stricter than for
/// the plain struct (a Drop impl naming `'a` would: the referent declared after the Vec that
/// holds the struct would fail with E0597).
#[leakwatch::tracked]
#[derive(Debug)]
struct OnlyBorrows<'a> {
    text: &'a str,
    tracker: Tracker<Self>,
}

#[test]
fn borrowing_structs_keep_plain_borrow_rules() {
    let _serial = leakwatch::testing::serial();
    let mut held = Vec::new();
    let text = String::from("hello");
    held.push(OnlyBorrows {
        text: &text,
        tracker: Tracker::new(),
    });
    assert_eq!(held[0].text, "hello");
    assert_eq!(leakwatch::counts::<OnlyBorrows<'_>>().live, 1);
}

/// Two types with one series name (here by `name =`; also two same-named structs in
/// different fn bodies of a module): the snapshot shows one series holding both, so a leak in
/// either is neither lost by `get` nor by `diff`.
#[leakwatch::tracked(name = "tests.shared_name")]
struct SharedA(u8, Tracker<Self>);

#[leakwatch::tracked(name = "tests.shared_name")]
struct SharedB(u8, Tracker<Self>);

#[test]
fn same_named_types_are_summed_in_snapshots() {
    let _serial = leakwatch::testing::serial();
    let base = leakwatch::snapshot();
    let a = SharedA(1, Default::default());
    let b = [
        SharedB(2, Default::default()),
        SharedB(3, Default::default()),
    ];
    let snap = leakwatch::snapshot();
    let shared: Vec<_> = snap
        .series
        .iter()
        .filter(|s| s.name == "tests.shared_name")
        .collect();
    assert_eq!(shared.len(), 1, "one series");
    assert_eq!(shared[0].live, 3);
    assert_eq!(a.0 + b[0].0 + b[1].0, 6);
    let diff = snap.diff(&base);
    let grown: Vec<_> = diff.grown().collect();
    assert!(
        grown
            .iter()
            .any(|c| c.name == "tests.shared_name" && c.live == 3),
        "{grown:?}"
    );
    drop((a, b));
}

/// The tracker is an ordinary field: any name, the struct spelled out instead of `Self`, set
/// with `Default::default()` or `Tracker::new()`, and patterns may name it or skip it.
#[leakwatch::tracked(name = "tests.Spelled")]
#[derive(Debug, Clone)]
struct Spelled {
    counted_by: leakwatch::Tracker<Spelled>,
    id: u32,
    label: String,
}

#[test]
fn the_tracker_field_is_named_by_the_user_and_patterns_work() {
    let a = Spelled {
        counted_by: Default::default(),
        id: 1,
        label: "a".into(),
    };
    let b = Spelled {
        counted_by: Tracker::new(),
        ..a.clone()
    };
    assert_eq!(format!("{b:?}"), r#"Spelled { id: 1, label: "a" }"#);
    // `..a.clone()` takes the clone's other fields; its own tracker is dropped at once.
    let c = counts::<Spelled>();
    assert_eq!((c.created, c.live), (3, 2));
    // Moving fields out with `..` leaves the tracker in `a`, dropped when `a` goes out of
    // scope: here, at the end of `into_parts`.
    fn into_parts(s: Spelled) -> (u32, String) {
        let Spelled { id, label, .. } = s;
        (id, label)
    }
    let (id, label) = into_parts(a);
    assert_eq!((id, label.as_str()), (1, "a"));
    assert_eq!(counts::<Spelled>().live, 1);
    // Naming the tracker moves it out: the instance stays counted until the tracker drops.
    let Spelled {
        counted_by, label, ..
    } = b;
    assert_eq!(label, "a");
    assert_eq!(counts::<Spelled>().live, 1, "the tracker moved out of b");
    drop(counted_by);
    assert_eq!(counts::<Spelled>().live, 0);
}
