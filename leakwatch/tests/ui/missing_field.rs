#[leakwatch::tracked]
struct Watch {
    user: u32,
}

#[leakwatch::tracked]
struct Id(u64);

fn main() {}
