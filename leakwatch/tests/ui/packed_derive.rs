#[leakwatch::tracked]
#[derive(Debug, Default, Clone)]
#[repr(packed)]
struct Header {
    tag: u8,
    len: u32,
}

fn main() {}
