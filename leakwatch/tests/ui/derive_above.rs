// Derives written above #[tracked] expand before it: serde's cannot be told to skip the tracker.
#[derive(serde::Serialize)]
#[leakwatch::tracked]
struct Watch {
    user: u32,
    tracker: leakwatch::Tracker<Self>,
}

fn main() {}
