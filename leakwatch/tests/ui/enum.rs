#[leakwatch::tracked]
enum Event {
    Joined,
    Left,
}

fn main() {}
