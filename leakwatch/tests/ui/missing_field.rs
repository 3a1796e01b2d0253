#[leakwatch::tracked]
struct Watch {
    user: u32,
}

fn main() {
    let _w = Watch { user: 1 };
}
