#[leakwatch::tracked]
struct Frame(u32, [u8]);

#[leakwatch::tracked]
struct Body<T: ?Sized>(u32, T);

fn main() {}
