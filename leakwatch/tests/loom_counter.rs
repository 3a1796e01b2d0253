//! The lock-free counters of `src/counter.rs` under the loom model checker, which runs every
//! interleaving of a few threads (and every value the C++ memory model lets each atomic load
//! return) up to a preemption bound:
//!
//! ```sh
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p leakwatch --release --test loom_counter
//! ```
//!
//! (Its own target directory: `--cfg loom` changes every crate's flags, and sharing the
//! normal one would rebuild everything in both directions.) The preemption bound is 3
//! (`LOOM_MAX_PREEMPTIONS` overrides it); the seven models run in about a second.
//!
//! **What is checked is a copy.** `counter.rs` keeps its state in `static`s with `const`
//! initialisers and in `const` thread-locals with a destructor; loom's atomics and mutexes are
//! neither `const` nor usable outside a model run, so swapping them in would restructure the
//! hot path this crate is measured on. This file therefore re-states the algorithm with the
//! same atomic operations and the same orderings, step for step (functions carry the names of
//! the originals), with three reductions, each said where it is made:
//! * the globals (`ALL_SHARDS`, `SHARD_COUNT`, `FREE_SHARDS`, `FREE_STRIPES`, `NEXT_STRIPE`,
//!   `NEXT_ID`, `NEXT_HOT_ID`) live in a [`Globals`] value per model run;
//! * the thread-locals (`LOCAL`, `STRIPE`) are fields of a [`Thread`] each model thread owns,
//!   and the `ShardReturner` destructor that runs at thread exit is the explicit call
//!   [`Thread::exit`]; counting after it is what a destructor running later in teardown does;
//! * sizes are tiny (2 hot slots, chunks of 2, 1 stripe), so that the paths that matter
//!   (hot and chunked slots, a chunk published to readers, stripes running out, reuse) are
//!   reached with 2–3 threads.
//!
//! A change to the orderings or hand-over steps in `counter.rs` must be made here too.
//!
//! Properties, in every explored execution: a read never shows more drops than creations
//! (`up >= down`) for objects created on one thread and dropped on another, and once every
//! thread has finished the totals are exact (no count lost), also when a thread's shard or
//! stripe is handed to another at thread exit and reused.
//!
//! The models can fail: each of these changes to the copy was caught when it was written
//! (2026-11-30): `bump` storing `Relaxed` instead of `Release`; `BatchReader::read` without
//! its re-check of the shard count; stripes handed out without running out (two threads on
//! one stripe); the striped read taking `up`s before `down`s; a thread's exit keeping its
//! shard instead of returning it to the pool.
#![cfg(loom)]

use std::cell::RefCell;
use std::ptr;

use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

const CHUNK_SLOTS: usize = 2;
const MAX_CHUNKS: usize = 2;
/// Hot ids are `1..HOT_SLOTS`: one hot counter fits, a second gets an ordinary (chunked) id.
const HOT_SLOTS: usize = 2;
const STRIPES: usize = 1;
const NO_STRIPE: u32 = u32::MAX;

#[derive(Default)]
struct Slot {
    up: AtomicU64,
    down: AtomicU64,
}

struct Chunk {
    slots: [Slot; CHUNK_SLOTS],
}

/// One thread's slots (`counter.rs` leaks them; here the last owner frees them, after every
/// thread of the run has finished, which changes nothing the threads can observe).
struct Shard {
    hot: [Slot; HOT_SLOTS],
    chunks: [AtomicPtr<Chunk>; MAX_CHUNKS],
}

impl Shard {
    fn new() -> Shard {
        Shard {
            hot: std::array::from_fn(|_| Slot::default()),
            chunks: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }

    /// `Shard::slot`: the owner's path, allocating the chunk.
    fn slot(&self, id: u32) -> Option<&Slot> {
        let id = id as usize;
        let chunk = self.chunks.get(id / CHUNK_SLOTS)?;
        let mut p = chunk.load(Ordering::Relaxed);
        if p.is_null() {
            p = Box::into_raw(Box::new(Chunk {
                slots: std::array::from_fn(|_| Slot::default()),
            }));
            chunk.store(p, Ordering::Release);
        }
        // SAFETY: chunks live as long as their shard and are fully initialised.
        Some(unsafe { &(*p).slots[id % CHUNK_SLOTS] })
    }

    /// `Shard::peek`: the reader's path.
    fn peek(&self, id: u32) -> Option<&Slot> {
        let id = id as usize;
        if id < HOT_SLOTS {
            return Some(&self.hot[id]);
        }
        let p = self.chunks.get(id / CHUNK_SLOTS)?.load(Ordering::Acquire);
        if p.is_null() {
            None
        } else {
            // SAFETY: as in `slot`.
            Some(unsafe { &(*p).slots[id % CHUNK_SLOTS] })
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        for c in &mut self.chunks {
            c.with_mut(|p| {
                if !p.is_null() {
                    // SAFETY: allocated by `slot` with Box::into_raw, freed once here.
                    drop(unsafe { Box::from_raw(*p) });
                }
            });
        }
    }
}

/// The `static`s of `counter.rs`, one set per model run.
struct Globals {
    all_shards: Mutex<Vec<std::sync::Arc<Shard>>>,
    shard_count: AtomicUsize,
    free_shards: Mutex<Vec<std::sync::Arc<Shard>>>,
    free_stripes: Mutex<Vec<u32>>,
    next_stripe: AtomicU32,
    next_id: AtomicU32,
    next_hot_id: AtomicU32,
}

impl Globals {
    fn new() -> Arc<Globals> {
        Arc::new(Globals {
            all_shards: Mutex::new(Vec::new()),
            shard_count: AtomicUsize::new(0),
            free_shards: Mutex::new(Vec::new()),
            free_stripes: Mutex::new(Vec::new()),
            next_stripe: AtomicU32::new(1),
            next_id: AtomicU32::new(HOT_SLOTS as u32),
            next_hot_id: AtomicU32::new(1),
        })
    }
}

/// What `LOCAL` holds: nothing yet, a shard, or `RETIRED` after the returner ran.
enum Local {
    Null,
    Shard(std::sync::Arc<Shard>),
    Retired,
}

/// One model thread's thread-locals (`LOCAL`, `STRIPE`).
struct Thread {
    g: Arc<Globals>,
    local: Local,
    stripe: u32,
}

impl Thread {
    fn new(g: &Arc<Globals>) -> Thread {
        Thread {
            g: g.clone(),
            local: Local::Null,
            stripe: 0,
        }
    }

    /// `ShardReturner::drop`, which runs when the thread exits.
    fn exit(&mut self) {
        let stripe = std::mem::replace(&mut self.stripe, NO_STRIPE);
        if stripe != 0 && stripe != NO_STRIPE {
            self.g.free_stripes.lock().unwrap().push(stripe);
        }
        if let Local::Shard(s) = std::mem::replace(&mut self.local, Local::Retired) {
            self.g.free_shards.lock().unwrap().push(s);
        }
    }

    /// `claim_shard` (`RETURNER.try_with` failing is `Local::Retired`, handled by the caller).
    fn claim_shard(&mut self) -> std::sync::Arc<Shard> {
        let popped = self.g.free_shards.lock().unwrap().pop();
        let shard = match popped {
            Some(s) => s,
            None => {
                let s = std::sync::Arc::new(Shard::new());
                let mut all = self.g.all_shards.lock().unwrap();
                all.push(s.clone());
                self.g.shard_count.store(all.len(), Ordering::Release);
                s
            }
        };
        self.local = Local::Shard(shard.clone());
        shard
    }

    /// `local_shard`.
    fn local_shard(&mut self) -> Option<std::sync::Arc<Shard>> {
        match &self.local {
            Local::Null => Some(self.claim_shard()),
            Local::Shard(s) => Some(s.clone()),
            Local::Retired => None,
        }
    }

    /// `claim_stripe`.
    fn claim_stripe(&mut self) -> bool {
        if self.stripe != 0 {
            return false;
        }
        if matches!(self.local, Local::Retired) {
            self.stripe = NO_STRIPE;
            return false;
        }
        let popped = self.g.free_stripes.lock().unwrap().pop();
        let stripe = popped.or_else(|| {
            self.g
                .next_stripe
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n as usize <= STRIPES).then_some(n + 1)
                })
                .ok()
        });
        self.stripe = stripe.unwrap_or(NO_STRIPE);
        self.stripe != NO_STRIPE
    }
}

#[derive(Clone, Copy)]
enum Half {
    Up,
    Down,
}

/// `bump`: the single writer's load + release store.
fn bump(slot: &Slot, half: Half, n: u64) {
    let cell = match half {
        Half::Up => &slot.up,
        Half::Down => &slot.down,
    };
    cell.store(cell.load(Ordering::Relaxed) + n, Ordering::Release);
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Pair {
    up: u64,
    down: u64,
}

struct PairCounter {
    id: AtomicU32,
    hot: bool,
    shared_up: AtomicU64,
    shared_down: AtomicU64,
}

impl PairCounter {
    fn new(hot: bool) -> PairCounter {
        PairCounter {
            id: AtomicU32::new(0),
            hot,
            shared_up: AtomicU64::new(0),
            shared_down: AtomicU64::new(0),
        }
    }

    /// `fresh_id`.
    fn fresh_id(&self, g: &Globals) -> u32 {
        let take = |next: &AtomicU32| {
            next.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1))
                .unwrap_or(u32::MAX)
        };
        if self.hot {
            let hot = take(&g.next_hot_id);
            if (hot as usize) < HOT_SLOTS {
                return hot;
            }
        }
        take(&g.next_id)
    }

    /// `assign_id`.
    fn assign_id(&self, g: &Globals) -> u32 {
        let fresh = self.fresh_id(g);
        match self
            .id
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            Err(existing) => existing,
        }
    }

    /// `add`: `try_add_fast`, else `add_slow`.
    fn add(&self, t: &mut Thread, half: Half, n: u64) {
        // try_add_fast
        let id = self.id.load(Ordering::Relaxed) as usize;
        if let Local::Shard(s) = &t.local
            && id != 0
            && id < HOT_SLOTS
        {
            bump(&s.hot[id], half, n);
            return;
        }
        // add_slow
        let id = match self.id.load(Ordering::Relaxed) {
            0 => self.assign_id(&t.g),
            id => id,
        };
        let shard = t.local_shard();
        let slot = shard.as_deref().and_then(|s| {
            if (id as usize) < HOT_SLOTS {
                Some(&s.hot[id as usize])
            } else {
                s.slot(id)
            }
        });
        match slot {
            Some(slot) => bump(slot, half, n),
            None => self.add_shared(half, n),
        }
    }

    /// `add_shared`.
    fn add_shared(&self, half: Half, n: u64) {
        let cell = match half {
            Half::Up => &self.shared_up,
            Half::Down => &self.shared_down,
        };
        cell.fetch_add(n, Ordering::AcqRel);
    }

    /// `PairCounter::read`.
    fn read(&self, g: &Globals) -> Pair {
        if self.id.load(Ordering::Relaxed) == 0 {
            let down = self.shared_down.load(Ordering::Acquire);
            let up = self.shared_up.load(Ordering::Acquire);
            return Pair { up, down };
        }
        BatchReader::new(g).read(self)
    }
}

/// `BatchReader`.
struct BatchReader<'g> {
    g: &'g Globals,
    shards: RefCell<Vec<std::sync::Arc<Shard>>>,
}

impl<'g> BatchReader<'g> {
    fn new(g: &'g Globals) -> Self {
        BatchReader {
            g,
            shards: RefCell::new(g.all_shards.lock().unwrap().clone()),
        }
    }

    fn read(&self, c: &PairCounter) -> Pair {
        let id = c.id.load(Ordering::Relaxed);
        let mut down = c.shared_down.load(Ordering::Acquire);
        if id != 0 {
            for s in self.shards.borrow().iter() {
                if let Some(slot) = s.peek(id) {
                    down += slot.down.load(Ordering::Acquire);
                }
            }
        }
        let mut up = c.shared_up.load(Ordering::Acquire);
        if id != 0 {
            if self.g.shard_count.load(Ordering::Acquire) > self.shards.borrow().len() {
                *self.shards.borrow_mut() = self.g.all_shards.lock().unwrap().clone();
            }
            for s in self.shards.borrow().iter() {
                if let Some(slot) = s.peek(id) {
                    up += slot.up.load(Ordering::Acquire);
                }
            }
        }
        Pair { up, down }
    }
}

/// `StripedCounter`.
struct StripedCounter {
    stripes: [Slot; STRIPES],
    others: PairCounter,
}

impl StripedCounter {
    fn new() -> StripedCounter {
        StripedCounter {
            stripes: std::array::from_fn(|_| Slot::default()),
            others: PairCounter::new(true),
        }
    }

    /// `try_incr`.
    fn try_incr(&self, t: &Thread, half: Half) -> Option<u64> {
        let i = (t.stripe as usize).wrapping_sub(1);
        if i < STRIPES {
            let slot = &self.stripes[i];
            let cell = match half {
                Half::Up => &slot.up,
                Half::Down => &slot.down,
            };
            let old = cell.load(Ordering::Relaxed);
            cell.store(old + 1, Ordering::Release);
            Some(old)
        } else {
            None
        }
    }

    /// `add_slow`.
    fn add_slow(&self, t: &mut Thread, half: Half) {
        if !(t.claim_stripe() && self.try_incr(t, half).is_some()) {
            self.others.add(t, half, 1);
        }
    }

    /// What a `#[tracked]` create or drop does: the stripe, else the slow path.
    fn incr(&self, t: &mut Thread, half: Half) {
        if self.try_incr(t, half).is_none() {
            self.add_slow(t, half);
        }
    }

    /// `read_with(|c| c.read())`: stripe downs, the shard part, stripe ups.
    fn read(&self, g: &Globals) -> Pair {
        let mut down = 0;
        for s in &self.stripes {
            down += s.down.load(Ordering::Acquire);
        }
        let rest = self.others.read(g);
        let mut up = 0;
        for s in &self.stripes {
            up += s.up.load(Ordering::Acquire);
        }
        Pair {
            up: up + rest.up,
            down: down + rest.down,
        }
    }
}

/// Both counter kinds behind one interface, so each scenario runs on both.
trait Counter: Send + Sync + 'static {
    fn count(&self, t: &mut Thread, half: Half);
    fn total(&self, g: &Globals) -> Pair;
}

/// A `PairCounter` with a hot id (the first one to be assigned), or an ordinary chunked id.
struct Pairs(PairCounter);

impl Counter for Pairs {
    fn count(&self, t: &mut Thread, half: Half) {
        self.0.add(t, half, 1);
    }
    fn total(&self, g: &Globals) -> Pair {
        self.0.read(g)
    }
}

impl Counter for StripedCounter {
    fn count(&self, t: &mut Thread, half: Half) {
        self.incr(t, half);
    }
    fn total(&self, g: &Globals) -> Pair {
        self.read(g)
    }
}

/// Loom settings: a preemption bound keeps the models to seconds; `LOOM_MAX_PREEMPTIONS`
/// overrides it (as in tokio's loom tests).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

fn assert_not_negative(p: Pair, when: &str) {
    assert!(
        p.up >= p.down,
        "{when}: read {p:?}, more drops than creations"
    );
}

/// Whether another thread got past the point where it set `flag`, read `Relaxed`: a marker
/// that creates no happens-before, so what this thread reads next is held to the counter's own
/// orderings alone. Reading it also makes loom explore the schedules in which the other thread
/// got there first (a conflicting access), which the preemption bound would otherwise cut off
/// when that takes the other thread many steps.
fn passed(flag: &AtomicBool) -> bool {
    flag.load(Ordering::Relaxed)
}

/// An object created on thread A and dropped on thread B (handed over with release/acquire,
/// as moving a value through a channel does), A exiting right after the hand-over, while the
/// main thread reads, once at any moment and once after B's drop: never negative, exact at
/// the end.
fn created_here_dropped_there<C: Counter>(make: fn(&Globals) -> C) {
    model(move || {
        let g = Globals::new();
        let c = Arc::new(make(&g));
        // The value moves from A to B through a channel (release/acquire, as in a program).
        let (handed, handed_rx) = loom::sync::mpsc::channel::<()>();
        let dropped = Arc::new(AtomicBool::new(false));
        let a = {
            let (g, c) = (g.clone(), c.clone());
            thread::spawn(move || {
                let mut t = Thread::new(&g);
                c.count(&mut t, Half::Up);
                handed.send(()).unwrap();
                t.exit();
            })
        };
        let b = {
            let (g, c, dropped) = (g.clone(), c.clone(), dropped.clone());
            thread::spawn(move || {
                let mut t = Thread::new(&g);
                handed_rx.recv().unwrap();
                c.count(&mut t, Half::Down);
                dropped.store(true, Ordering::Relaxed);
                t.exit();
            })
        };
        let after_drop = passed(&dropped);
        assert_not_negative(
            c.total(&g),
            if after_drop {
                "after the drop"
            } else {
                "any time"
            },
        );
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(c.total(&g), Pair { up: 1, down: 1 }, "after both threads");
    });
}

/// A reader whose copy of the shard list is older than the shard that counted a creation,
/// which the reader's own thread then drops (`BatchReader::read`'s re-check of the shard
/// count between its passes).
#[test]
fn a_reader_with_a_stale_shard_list_sees_the_creation() {
    model(|| {
        let g = Globals::new();
        let c = Arc::new(Pairs(PairCounter::new(false)));
        let mut main = Thread::new(&g);
        // This thread has a shard and the counter its id before the reader copies the list.
        c.count(&mut main, Half::Up);
        c.count(&mut main, Half::Down);
        let reader = BatchReader::new(&g);
        let (handed, handed_rx) = loom::sync::mpsc::channel::<()>();
        let a = {
            let (g, c) = (g.clone(), c.clone());
            thread::spawn(move || {
                let mut t = Thread::new(&g); // a new shard, not in the reader's copy
                c.count(&mut t, Half::Up);
                handed.send(()).unwrap();
                t.exit();
            })
        };
        handed_rx.recv().unwrap();
        c.count(&mut main, Half::Down);
        let p = reader.read(&c.0);
        assert_eq!(p, Pair { up: 2, down: 2 });
        a.join().unwrap();
        main.exit();
    });
}

#[test]
fn hot_pair_counter_created_here_dropped_there() {
    created_here_dropped_there(|_| Pairs(PairCounter::new(true)));
}

#[test]
fn chunked_pair_counter_created_here_dropped_there() {
    // The only hot id goes to a counter made first, so this one gets a chunked slot (and its
    // chunk is published to readers while they read).
    created_here_dropped_there(|g| {
        let first = PairCounter::new(true);
        assert_eq!(first.assign_id(g), 1);
        Pairs(PairCounter::new(true))
    });
}

#[test]
fn striped_counter_created_here_dropped_there() {
    created_here_dropped_there(|_| StripedCounter::new());
}

/// Two threads count, exit and hand back their shard (and stripe) while the other may be
/// claiming: whichever order, a reused shard or stripe continues from its totals, a count
/// made after the thread's returner ran goes to the shared fallback, and nothing is lost.
/// When B starts after A's exit (the only synchronisation between them is then the pools'
/// locks), B continues on A's shard or stripe: no new one is made.
fn handed_over_at_exit<C: Counter>(make: fn() -> C) {
    model(move || {
        let g = Globals::new();
        let c = Arc::new(make());
        let a_exited = Arc::new(AtomicBool::new(false));
        let worker = |g: Arc<Globals>, c: Arc<C>, exited: Arc<AtomicBool>, is_b: bool| {
            move || {
                let after_a = is_b && passed(&exited);
                let mut t = Thread::new(&g);
                c.count(&mut t, Half::Up);
                c.count(&mut t, Half::Up);
                c.count(&mut t, Half::Down);
                let stripe = t.stripe;
                t.exit();
                if !is_b {
                    exited.store(true, Ordering::Relaxed);
                }
                // A value dropped by a thread-local destructor that runs after the returner.
                c.count(&mut t, Half::Down);
                (after_a, stripe)
            }
        };
        let a = thread::spawn(worker(g.clone(), c.clone(), a_exited.clone(), false));
        let b = thread::spawn(worker(g.clone(), c.clone(), a_exited.clone(), true));
        a.join().unwrap();
        let (b_after_a, b_stripe) = b.join().unwrap();
        assert_eq!(c.total(&g), Pair { up: 4, down: 4 });
        if b_after_a {
            // Pair counters: one shard, A's, then B's. Striped: A's stripe, then B's (with
            // one stripe, B would otherwise have none).
            assert!(
                g.all_shards.lock().unwrap().len() <= 1,
                "B reused A's shard"
            );
            assert_ne!(b_stripe, NO_STRIPE, "B reused A's stripe");
        }
        // The next thread reuses a returned shard (and the stripe) and keeps counting.
        let mut t = Thread::new(&g);
        c.count(&mut t, Half::Up);
        assert_eq!(c.total(&g), Pair { up: 5, down: 4 });
        assert_eq!(
            g.all_shards.lock().unwrap().len(),
            g.shard_count.load(Ordering::Relaxed)
        );
        t.exit();
    });
}

#[test]
fn pair_counter_shards_handed_over_at_thread_exit() {
    handed_over_at_exit(|| Pairs(PairCounter::new(true)));
}

#[test]
fn striped_counter_stripes_handed_over_at_thread_exit() {
    handed_over_at_exit(StripedCounter::new);
}

/// A thread that reuses a shard returned by an exited thread, while a third reads: the reader
/// never sees a negative count although the reused slot already holds the earlier totals.
#[test]
fn reads_stay_consistent_while_a_shard_is_reused() {
    model(|| {
        let g = Globals::new();
        let c = Arc::new(Pairs(PairCounter::new(true)));
        let a = {
            let (g, c) = (g.clone(), c.clone());
            thread::spawn(move || {
                let mut t = Thread::new(&g);
                c.count(&mut t, Half::Up);
                t.exit();
            })
        };
        a.join().unwrap(); // its shard is in the pool now
        let counted = Arc::new(AtomicBool::new(false));
        let b = {
            let (g, c, counted) = (g.clone(), c.clone(), counted.clone());
            thread::spawn(move || {
                let mut t = Thread::new(&g); // takes A's shard
                c.count(&mut t, Half::Down);
                c.count(&mut t, Half::Up);
                counted.store(true, Ordering::Relaxed);
                t.exit();
            })
        };
        let after = passed(&counted);
        assert_not_negative(
            c.total(&g),
            if after {
                "after B counted on A's shard"
            } else {
                "while B counts on A's shard"
            },
        );
        b.join().unwrap();
        assert_eq!(
            g.all_shards.lock().unwrap().len(),
            1,
            "the shard was reused"
        );
        assert_eq!(c.total(&g), Pair { up: 2, down: 1 });
    });
}
