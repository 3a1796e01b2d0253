//! An opt-in counting global allocator: live heap bytes and allocation counts.
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: leakwatch::alloc::CountingAlloc = leakwatch::alloc::CountingAlloc::system();
//!
//! fn main() {
//!     let v = vec![0u8; 1 << 20];
//!     let heap = leakwatch::alloc::heap().expect("installed");
//!     assert!(heap.live_bytes >= 1 << 20);
//!     drop(v);
//! }
//! ```
//!
//! The allocator cannot use leakwatch's per-thread counters (claiming a shard allocates), so it
//! keeps its own: 16 cache-line-padded stripes of atomics, a stripe chosen once per thread.
//! Once installed, snapshots report `memory.heap_bytes`, `memory.allocations` and
//! `memory.deallocations`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

const STRIPES: usize = 16;

#[repr(align(64))]
struct Stripe {
    allocated: AtomicU64,
    freed: AtomicU64,
    allocations: AtomicU64,
    deallocations: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const STRIPE: Stripe = Stripe {
    allocated: AtomicU64::new(0),
    freed: AtomicU64::new(0),
    allocations: AtomicU64::new(0),
    deallocations: AtomicU64::new(0),
};

static STRIPES_DATA: [Stripe; STRIPES] = [STRIPE; STRIPES];
static ACTIVE: AtomicBool = AtomicBool::new(false);
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MY_STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn stripe() -> &'static Stripe {
    let i = MY_STRIPE
        .try_with(|c| {
            let mut i = c.get();
            if i == usize::MAX {
                i = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
                c.set(i);
            }
            i
        })
        .unwrap_or(0);
    &STRIPES_DATA[i]
}

/// A global allocator that counts live bytes and allocations, then delegates to `A`
/// (the system allocator by default).
#[derive(Debug, Default)]
pub struct CountingAlloc<A = System> {
    inner: A,
}

impl CountingAlloc<System> {
    /// Counting over the system allocator.
    pub const fn system() -> Self {
        CountingAlloc { inner: System }
    }
}

impl<A> CountingAlloc<A> {
    /// Counting over another allocator (e.g. jemalloc).
    pub const fn new(inner: A) -> Self {
        CountingAlloc { inner }
    }
}

fn on_alloc(size: usize) {
    // Load first: a store on every allocation would make every thread write this one cache
    // line (and steal it from the others); after the first allocation it is only read.
    if !ACTIVE.load(Ordering::Relaxed) {
        ACTIVE.store(true, Ordering::Relaxed);
    }
    let s = stripe();
    s.allocated.fetch_add(size as u64, Ordering::Relaxed);
    s.allocations.fetch_add(1, Ordering::Relaxed);
}

fn on_dealloc(size: usize) {
    let s = stripe();
    s.freed.fetch_add(size as u64, Ordering::Relaxed);
    s.deallocations.fetch_add(1, Ordering::Relaxed);
}

// SAFETY: every method delegates to `inner` with the caller's arguments unchanged; counting
// only touches atomics and a const thread-local, neither of which allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { self.inner.alloc(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { self.inner.alloc_zeroed(layout) };
        if !p.is_null() {
            on_alloc(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { self.inner.dealloc(ptr, layout) };
        on_dealloc(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            let s = stripe();
            s.freed.fetch_add(layout.size() as u64, Ordering::Relaxed);
            s.allocated.fetch_add(new_size as u64, Ordering::Relaxed);
        }
        p
    }
}

/// Heap figures from the counting allocator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heap {
    /// Bytes currently allocated.
    pub live_bytes: u64,
    /// Allocations ever made.
    pub allocations: u64,
    /// Deallocations ever made.
    pub deallocations: u64,
}

/// Heap figures, if a [`CountingAlloc`] is the global allocator (it has seen an allocation).
pub fn heap() -> Option<Heap> {
    if !ACTIVE.load(Ordering::Relaxed) {
        return None;
    }
    let mut h = Heap::default();
    let (mut allocated, mut freed) = (0u64, 0u64);
    for s in &STRIPES_DATA {
        freed += s.freed.load(Ordering::Relaxed);
        allocated += s.allocated.load(Ordering::Relaxed);
        h.allocations += s.allocations.load(Ordering::Relaxed);
        h.deallocations += s.deallocations.load(Ordering::Relaxed);
    }
    h.live_bytes = allocated.saturating_sub(freed);
    Some(h)
}
