#[leakwatch::tracked]
struct Watch {
    a: leakwatch::Tracker<Self>,
    user: u32,
    b: leakwatch::Tracker<Watch>,
}

fn main() {}
