#[leakwatch::tracked(label = "x")]
struct Watch {
    user: u32,
}

fn main() {}
