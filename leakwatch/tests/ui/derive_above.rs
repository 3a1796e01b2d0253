// Derives written above #[tracked] see the struct before the field is added.
#[derive(Clone, Default)]
#[leakwatch::tracked]
struct Watch {
    user: u32,
}

fn main() {}
