#[leakwatch::tracked]
fn handler() {}

fn main() {}
