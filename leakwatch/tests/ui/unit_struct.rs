#[leakwatch::tracked]
struct Marker;

fn main() {}
