//! What the counting allocator costs: `Box<[u8; 64]>` allocate+free through
//! `leakwatch::alloc::CountingAlloc` against the system allocator, in the same run, on 1 and 2
//! threads. Both go through one switchable global allocator, so the switch costs the same in
//! both rows.
//!
//! Run with `cargo bench -p leakwatch --bench alloc`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use leakwatch::alloc::CountingAlloc;

/// Whether allocations go through the counting allocator.
static COUNTING: AtomicBool = AtomicBool::new(false);

struct Switch {
    counting: CountingAlloc,
}

// SAFETY: every call is forwarded unchanged to one of two allocators over `System`; memory
// from either may be freed by the other (both hand `System` the same layout), so switching
// between allocation and free is sound.
unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            // SAFETY: forwarded contract.
            unsafe { self.counting.alloc(layout) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            // SAFETY: forwarded contract.
            unsafe { self.counting.dealloc(ptr, layout) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { System.dealloc(ptr, layout) }
        }
    }
}

#[global_allocator]
static ALLOC: Switch = Switch {
    counting: CountingAlloc::system(),
};

const ITERS: u64 = 250_000;
const ROUNDS: usize = 81;

#[inline(never)]
fn hammer(iters: u64) {
    for i in 0..iters {
        black_box(Box::new([i as u8; 64]));
    }
}

/// ns per allocate+free with `threads` threads at once (span from first start to last end).
fn run(threads: usize) -> f64 {
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    hammer(1);
                    barrier.wait();
                    let start = Instant::now();
                    hammer(ITERS);
                    (start, Instant::now())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let start = spans.iter().map(|s| s.0).min().unwrap();
    let end = spans.iter().map(|s| s.1).max().unwrap();
    (end - start).as_nanos() as f64 / ITERS as f64
}

fn main() {
    if std::env::args().any(|a| a == "--test") {
        COUNTING.store(true, Ordering::Relaxed);
        hammer(10);
        COUNTING.store(false, Ordering::Relaxed);
        println!("alloc bench: smoke run ok");
        return;
    }
    for threads in [1, 2] {
        let (mut system, mut counting) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..ROUNDS {
            COUNTING.store(false, Ordering::Relaxed);
            system = system.min(run(threads));
            COUNTING.store(true, Ordering::Relaxed);
            counting = counting.min(run(threads));
        }
        COUNTING.store(false, Ordering::Relaxed);
        println!(
            "Box<[u8; 64]> allocate+free, {threads} thread(s), min of {ROUNDS} interleaved rounds x {ITERS}:"
        );
        println!("  system allocator   {system:>7.2} ns/op   1.00x");
        println!(
            "  CountingAlloc      {counting:>7.2} ns/op  {:>5.2}x",
            counting / system
        );
    }
    let heap = leakwatch::alloc::heap().expect("the counting allocator ran");
    assert!(heap.allocations > 0);
}
