//! `#[tracked(crate = ..)]` with leakwatch renamed in Cargo.toml (`lw = { package =
//! "leakwatch", .. }`): the generated code must name the crate through the override only, or
//! this file would not compile.

use lw::Tracker;

#[lw::tracked(crate = lw, name = "renamed_test.Job")]
#[derive(Debug, Clone)]
struct Job {
    id: u32,
    tracker: Tracker<Self>,
}

/// The quoted spelling, on a tuple struct with its default (module path) series name.
#[lw::tracked(crate = "::lw")]
struct Ticket(u64, Tracker<Self>);

#[test]
fn a_renamed_dependency_counts_through_the_override() {
    let job = Job {
        id: 1,
        tracker: Tracker::new(),
    };
    let copy = job.clone();
    assert_eq!(format!("{copy:?}"), "Job { id: 1 }");
    assert_eq!(lw::counts::<Job>().live, 2);
    let t = Ticket(9, Default::default());
    let snap = lw::snapshot();
    assert_eq!(snap.live("renamed_test.Job"), 2);
    assert_eq!(snap.live("renamed_dependency.Ticket"), 1);
    let Ticket(n, _) = t;
    assert_eq!(n + u64::from(job.id), 10);
    drop((job, copy));
    assert_eq!(lw::counts::<Job>().live, 0);
}
