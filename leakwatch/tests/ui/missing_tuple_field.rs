#[leakwatch::tracked]
struct Id(u64);

fn main() {
    let _id = Id(7);
}
