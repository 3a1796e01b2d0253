//! The opt-in counting allocator, installed as this test binary's global allocator.

use leakwatch::alloc::CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc::system();

#[test]
fn heap_bytes_follow_allocations_and_reach_snapshots() {
    let before = leakwatch::alloc::heap().expect("allocator active");
    let block = vec![7u8; 4 << 20];
    let during = leakwatch::alloc::heap().unwrap();
    assert!(during.live_bytes >= before.live_bytes + (4 << 20) - 64 * 1024);
    assert!(during.allocations > before.allocations);
    drop(block);
    let after = leakwatch::alloc::heap().unwrap();
    assert!(after.live_bytes + (3 << 20) < during.live_bytes);
    let snap = leakwatch::snapshot();
    assert!(snap.memory.heap.is_some());
    assert!(
        snap.metrics()
            .iter()
            .any(|m| m.name == "memory.heap_bytes" && m.value > 0.0)
    );
}
