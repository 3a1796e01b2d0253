#[leakwatch::tracked]
#[derive(Clone, Copy)]
struct Point {
    x: i32,
    y: i32,
    tracker: leakwatch::Tracker<Self>,
}

fn main() {}
