#[leakwatch::tracked]
#[derive(Debug, Default, Clone)]
#[repr(packed)]
struct Header {
    tag: u8,
    len: u32,
    tracker: leakwatch::Tracker<Self>,
}

fn main() {}
