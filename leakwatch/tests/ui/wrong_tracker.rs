// A tracker of another struct is not this struct's tracker.
#[leakwatch::tracked]
struct Other {
    tracker: leakwatch::Tracker<Self>,
}

#[leakwatch::tracked]
struct Watch {
    user: u32,
    tracker: leakwatch::Tracker<Other>,
}

fn main() {}
