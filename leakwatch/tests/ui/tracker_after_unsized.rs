#[leakwatch::tracked]
struct Frame(u32, [u8], leakwatch::Tracker<Self>);

#[leakwatch::tracked]
struct Body<T: ?Sized> {
    id: u32,
    body: T,
    tracker: leakwatch::Tracker<Self>,
}

fn main() {}
