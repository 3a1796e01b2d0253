//! The counter every series uses: a pair of monotonic totals (`up`, `down`) kept per thread.
//!
//! Why per thread: a single shared atomic costs nothing on one thread but 3–4× on two threads
//! hammering the same type (cache-line ping-pong). Here every thread owns a *shard*, a lazily
//! grown array of slots indexed by a series' slot id, and is the only writer of its slots, so an
//! increment is a relaxed load plus a release store into memory no other thread writes. Readers
//! sum all shards. An object created on one thread and dropped on another is counted correctly:
//! each thread only counts what it did, and `live = Σup − Σdown`.
//!
//! Counters on a hot path can take a *hot* id: their slots sit inline at the start of every
//! shard, so an increment is one thread-local load, one relaxed load and one store, with no
//! chunk pointer to chase. Everything else uses lazily allocated chunks.
//!
//! `#[tracked]` types, created and dropped as often as the program allocates, go one step
//! further with [`StripedCounter`]: the per-thread slots live inside the type's own `static`
//! and a thread-local stripe number picks one, which saves loading the counter's slot id on
//! every create and drop (measured: 1.06× instead of 1.11× untracked on the counting bench).
//!
//! Shards are never freed: when a thread exits its shard goes back to a pool and the next new
//! thread continues from its totals, so no count is ever lost and memory is bounded by the
//! largest number of threads alive at once. Counting that happens while a thread is being torn
//! down (after its shard was returned) falls back to shared atomics on the counter itself.
//!
//! The orderings and the hand-over of shards and stripes are model-checked with loom
//! (`tests/loom_counter.rs`, run as README says) on a step-for-step copy of this algorithm, as
//! loom's types cannot live in these `const` statics and thread-locals: a change to an
//! ordering or a hand-over step here must be made there too.

use std::cell::{Cell, RefCell};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

/// Slots per chunk; a chunk is allocated the first time a thread touches one of its slots.
const CHUNK_SLOTS: usize = 256;
/// Chunks per shard: `CHUNK_SLOTS * MAX_CHUNKS` slot ids can live in shards. Ids beyond that
/// (a process with over a million series) still count, through the shared fallback.
const MAX_CHUNKS: usize = 4096;
/// Inline slots per shard for hot counters (ids `1..HOT_SLOTS`; 16 KiB per thread). Hot counters
/// created after these run out get ordinary ids and still count, one load slower.
const HOT_SLOTS: usize = 1024;

#[derive(Default)]
struct Slot {
    up: AtomicU64,
    down: AtomicU64,
}

struct Chunk {
    slots: [Slot; CHUNK_SLOTS],
}

impl Chunk {
    fn new_boxed() -> Box<Chunk> {
        Box::new(Chunk {
            slots: std::array::from_fn(|_| Slot::default()),
        })
    }
}

/// One thread's slots. Leaked on purpose: shards outlive the threads that used them.
struct Shard {
    /// Slots of hot ids, always present (zero until used).
    hot: [Slot; HOT_SLOTS],
    chunks: Box<[AtomicPtr<Chunk>]>,
}

impl Shard {
    fn new() -> Box<Shard> {
        Box::new(Shard {
            hot: std::array::from_fn(|_| Slot::default()),
            chunks: (0..MAX_CHUNKS)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
        })
    }

    /// The slot for a non-hot `id`, allocating its chunk. Only the owning thread calls this.
    fn slot(&self, id: u32) -> Option<&Slot> {
        let id = id as usize;
        let chunk = self.chunks.get(id / CHUNK_SLOTS)?;
        // The owner is the only thread that stores into `chunk`, so a relaxed load sees its own
        // earlier store.
        let mut p = chunk.load(Ordering::Relaxed);
        if p.is_null() {
            p = Box::into_raw(Chunk::new_boxed());
            // Release: readers that see the pointer also see the zeroed slots.
            chunk.store(p, Ordering::Release);
        }
        // SAFETY: chunks are never freed and `p` points to a fully initialised chunk.
        Some(unsafe { &(*p).slots[id % CHUNK_SLOTS] })
    }

    /// Reader side: the slot for `id` if this shard ever touched it.
    fn peek(&self, id: u32) -> Option<&Slot> {
        let id = id as usize;
        if id < HOT_SLOTS {
            return Some(&self.hot[id]);
        }
        let p = self.chunks.get(id / CHUNK_SLOTS)?.load(Ordering::Acquire);
        if p.is_null() {
            None
        } else {
            // SAFETY: as in `slot`.
            Some(unsafe { &(*p).slots[id % CHUNK_SLOTS] })
        }
    }
}

/// Every shard ever created (append-only), for readers.
static ALL_SHARDS: Mutex<Vec<&'static Shard>> = Mutex::new(Vec::new());
/// `ALL_SHARDS.len()`, published (release) after each push, so a reader can tell cheaply
/// whether a shard appeared since it copied the list.
static SHARD_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Shards whose threads have exited, ready for reuse.
static FREE_SHARDS: Mutex<Vec<&'static Shard>> = Mutex::new(Vec::new());
/// Next ordinary slot id to hand out (ids below `HOT_SLOTS` are hot); 0 means "not assigned".
static NEXT_ID: AtomicU32 = AtomicU32::new(HOT_SLOTS as u32);
/// Next hot slot id to hand out.
static NEXT_HOT_ID: AtomicU32 = AtomicU32::new(1);

/// Marker stored in `LOCAL` once the thread's shard was handed back during thread exit (never
/// dereferenced).
const RETIRED: *const Shard = ptr::dangling();

/// Stripes per [`StripedCounter`]: threads alive at once beyond this count through shards.
pub(crate) const STRIPES: usize = 64;
/// `STRIPE` value of a thread that has no stripe and will not get one (none were free, or the
/// thread is exiting).
const NO_STRIPE: u32 = u32::MAX;
/// Stripe numbers (1-based) returned by exited threads, for reuse.
static FREE_STRIPES: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// Next never-used stripe number.
static NEXT_STRIPE: AtomicU32 = AtomicU32::new(1);

thread_local! {
    // Const-initialised and without a destructor: the fastest kind of thread-local access.
    static LOCAL: Cell<*const Shard> = const { Cell::new(ptr::null()) };
    // This thread's stripe number in every `StripedCounter` (1..=STRIPES), 0 before the first
    // claim, NO_STRIPE when it has none.
    static STRIPE: Cell<u32> = const { Cell::new(0) };
    // Lazily registered; its destructor hands the shard back when the thread exits.
    static RETURNER: ShardReturner = const { ShardReturner };
}

struct ShardReturner;

impl Drop for ShardReturner {
    fn drop(&mut self) {
        // try_with: without native TLS, thread-local destructors run in no fixed order, and
        // `with` on an already destroyed one would panic inside a destructor (an abort).
        let stripe = STRIPE
            .try_with(|s| s.replace(NO_STRIPE))
            .unwrap_or(NO_STRIPE);
        if stripe != 0 && stripe != NO_STRIPE {
            // The slots keep their totals: the next thread continues from them.
            FREE_STRIPES.lock().push(stripe);
        }
        let shard = LOCAL.try_with(|l| l.replace(RETIRED)).unwrap_or(RETIRED);
        if !shard.is_null() && shard != RETIRED {
            // SAFETY: every non-sentinel pointer in LOCAL came from a leaked `&'static Shard`.
            FREE_SHARDS.lock().push(unsafe { &*shard });
        }
    }
}

/// Adds `n` to one half of a slot this thread owns.
#[inline(always)]
fn bump(slot: &Slot, half: Half, n: u64) {
    let cell = match half {
        Half::Up => &slot.up,
        Half::Down => &slot.down,
    };
    // Single writer: no read-modify-write needed. Release pairs with the reader's acquire so a
    // reader that sees a drop also sees the creation it depends on.
    cell.store(cell.load(Ordering::Relaxed) + n, Ordering::Release);
}

#[cold]
fn claim_shard() -> Option<&'static Shard> {
    // Registering the returner first means that if the thread is already tearing down its
    // thread-locals we find out before taking a shard we could never give back.
    if RETURNER.try_with(|_| ()).is_err() {
        return None;
    }
    let shard = match FREE_SHARDS.lock().pop() {
        Some(s) => s,
        None => {
            let s: &'static Shard = Box::leak(Shard::new());
            let mut all = ALL_SHARDS.lock();
            all.push(s);
            SHARD_COUNT.store(all.len(), Ordering::Release);
            s
        }
    };
    LOCAL.with(|l| l.set(shard));
    Some(shard)
}

#[inline]
fn local_shard() -> Option<&'static Shard> {
    let p = LOCAL.try_with(|l| l.get()).unwrap_or(RETIRED);
    if p.is_null() {
        claim_shard()
    } else if p == RETIRED {
        None
    } else {
        // SAFETY: non-sentinel pointers are leaked `&'static Shard`s owned by this thread.
        Some(unsafe { &*p })
    }
}

/// Which half of a [`PairCounter`] to bump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Half {
    /// Creations, registrations, opens, deliveries.
    Up,
    /// Drops, unregistrations, closes.
    Down,
}

/// Two monotonic totals counted per thread. `const`-constructible so it can live in a
/// `static` (one per `#[tracked]` type); its slot id is assigned on first use.
pub struct PairCounter {
    id: AtomicU32,
    /// Whether to take a hot id (inline slot) when one is left.
    hot: bool,
    /// Used only when the calling thread has no shard (thread teardown) or ids ran out.
    shared_up: AtomicU64,
    shared_down: AtomicU64,
}

/// Totals read from a [`PairCounter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pair {
    pub up: u64,
    pub down: u64,
}

impl Pair {
    /// `up - down`, never negative.
    pub fn live(self) -> u64 {
        self.up.saturating_sub(self.down)
    }
}

impl Default for PairCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for PairCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.read();
        f.debug_struct("PairCounter")
            .field("up", &p.up)
            .field("down", &p.down)
            .finish()
    }
}

impl PairCounter {
    /// A counter at zero.
    pub const fn new() -> Self {
        PairCounter::with_hot(false)
    }

    /// A counter at zero whose slot is inline in every shard (while hot ids last): for counters
    /// bumped on every allocation-sized event, such as `#[tracked]` types.
    pub const fn new_hot() -> Self {
        PairCounter::with_hot(true)
    }

    const fn with_hot(hot: bool) -> Self {
        PairCounter {
            id: AtomicU32::new(0),
            hot,
            shared_up: AtomicU64::new(0),
            shared_down: AtomicU64::new(0),
        }
    }

    /// A never-used id: hot if asked for and any are left.
    fn fresh_id(&self) -> u32 {
        // Saturating, never wrapping: a wrapped id would land on a hot slot (or 0, "no id")
        // in use by another counter. Ids past the shards' range count through the shared
        // fallback, correctly if slower.
        let take = |next: &AtomicU32| {
            next.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1))
                .unwrap_or(u32::MAX)
        };
        if self.hot {
            let hot = take(&NEXT_HOT_ID);
            if (hot as usize) < HOT_SLOTS {
                return hot;
            }
        }
        take(&NEXT_ID)
    }

    #[cold]
    fn assign_id(&self) -> u32 {
        let fresh = self.fresh_id();
        match self
            .id
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            // Another thread won the race; the id we took is simply never used.
            Err(existing) => existing,
        }
    }

    /// Adds one to `half`.
    #[inline]
    pub(crate) fn incr(&self, half: Half) {
        self.add(half, 1);
    }

    /// Adds `n` to `half`.
    #[inline]
    pub(crate) fn add(&self, half: Half, n: u64) {
        if !self.try_add_fast(half, n) {
            self.add_slow(half, n);
        }
    }

    /// The fast path, small enough to inline everywhere: adds `n` if this counter has a hot id
    /// and the thread has a live shard; false (nothing counted) otherwise.
    #[inline(always)]
    pub(crate) fn try_add_fast(&self, half: Half, n: u64) -> bool {
        let id = self.id.load(Ordering::Relaxed) as usize;
        let p = LOCAL.try_with(|l| l.get()).unwrap_or(RETIRED);
        if id != 0 && id < HOT_SLOTS && !p.is_null() && p != RETIRED {
            // SAFETY: LOCAL holds null, RETIRED, or a leaked `&'static Shard` of this thread.
            bump(unsafe { &(*p).hot[id] }, half, n);
            true
        } else {
            false
        }
    }

    /// Everything but the hot fast path: id assignment, chunked slots, claiming a shard, and
    /// the shared fallback during thread teardown.
    #[inline(never)]
    pub(crate) fn add_slow(&self, half: Half, n: u64) {
        let id = match self.id.load(Ordering::Relaxed) {
            0 => self.assign_id(),
            id => id,
        };
        let slot = local_shard().and_then(|s| {
            if (id as usize) < HOT_SLOTS {
                Some(&s.hot[id as usize])
            } else {
                s.slot(id)
            }
        });
        match slot {
            Some(slot) => bump(slot, half, n),
            None => self.add_shared(half, n),
        }
    }

    #[cold]
    fn add_shared(&self, half: Half, n: u64) {
        let cell = match half {
            Half::Up => &self.shared_up,
            Half::Down => &self.shared_down,
        };
        cell.fetch_add(n, Ordering::AcqRel);
    }

    /// Sums every thread's totals.
    ///
    /// `down` is read before `up`, with acquire loads, so `up >= down` holds for any object
    /// whose creation happened-before its drop, even across threads.
    pub(crate) fn read(&self) -> Pair {
        if self.id.load(Ordering::Relaxed) == 0 {
            // Down first, as everywhere: a drop seen implies its creation is seen.
            let down = self.shared_down.load(Ordering::Acquire);
            let up = self.shared_up.load(Ordering::Acquire);
            return Pair { up, down };
        }
        BatchReader::new().read(self)
    }
}

/// A [`Slot`] alone on its cache line, so two threads' stripes never share one.
#[repr(align(64))]
struct PaddedSlot(Slot);

/// A pair counter whose per-thread slots live inside the counter itself (one cache line per
/// thread, for the first [`STRIPES`] threads alive at once), for `#[tracked]` types.
///
/// Why a second design: a shard slot is found from the counter's runtime id, one load and one
/// compare more on every create and drop than a slot at a fixed address. Here the address is
/// the counter's own (a `static` per tracked type) plus the thread's stripe number, so the fast
/// path is one thread-local load, one compare and the increment. Threads beyond the stripes,
/// and threads that are exiting, count through the inner shard-based [`PairCounter`].
pub(crate) struct StripedCounter {
    stripes: [PaddedSlot; STRIPES],
    others: PairCounter,
}

impl StripedCounter {
    /// A counter at zero.
    pub(crate) const fn new() -> Self {
        StripedCounter {
            stripes: [const {
                PaddedSlot(Slot {
                    up: AtomicU64::new(0),
                    down: AtomicU64::new(0),
                })
            }; STRIPES],
            others: PairCounter::new_hot(),
        }
    }

    /// Adds one to `half` on this thread's stripe; returns the stripe's previous total (0 the
    /// first time this stripe counts for this counter), or `None` if the thread has no stripe
    /// (nothing counted; use [`add_slow`](Self::add_slow)).
    #[inline(always)]
    pub(crate) fn try_incr(&self, half: Half) -> Option<u64> {
        let stripe = STRIPE.try_with(|s| s.get()).unwrap_or(NO_STRIPE) as usize;
        let i = stripe.wrapping_sub(1);
        if i < STRIPES {
            // SAFETY: `i < STRIPES` was just checked.
            let slot = unsafe { &self.stripes.get_unchecked(i).0 };
            let cell = match half {
                Half::Up => &slot.up,
                Half::Down => &slot.down,
            };
            // Single writer: the stripe belongs to this thread until it exits (handed over
            // through FREE_STRIPES' lock). Release pairs with the readers' acquire.
            let old = cell.load(Ordering::Relaxed);
            cell.store(old + 1, Ordering::Release);
            Some(old)
        } else {
            None
        }
    }

    /// Adds one to `half` on any path: claims a stripe for the thread if it never had one,
    /// else counts through the shards.
    #[inline(never)]
    pub(crate) fn add_slow(&self, half: Half) {
        if !(claim_stripe() && self.try_incr(half).is_some()) {
            self.others.add(half, 1);
        }
    }

    /// Sums every thread's totals (`down` before `up`, as [`PairCounter::read`]).
    pub(crate) fn read(&self) -> Pair {
        self.read_with(|c| c.read())
    }

    /// [`read`](Self::read) with the shard part read through `reader`.
    pub(crate) fn read_batch(&self, reader: &BatchReader) -> Pair {
        self.read_with(|c| reader.read(c))
    }

    fn read_with(&self, others: impl FnOnce(&PairCounter) -> Pair) -> Pair {
        // Every `down` is read before the `up` it could pair with: stripe downs, then the
        // shard part (itself downs before ups), then stripe ups.
        let mut down = 0;
        for s in &self.stripes {
            down += s.0.down.load(Ordering::Acquire);
        }
        let rest = others(&self.others);
        let mut up = 0;
        for s in &self.stripes {
            up += s.0.up.load(Ordering::Acquire);
        }
        Pair {
            up: up + rest.up,
            down: down + rest.down,
        }
    }
}

/// Gives this thread a stripe if it never had one; true if it has one now.
#[cold]
fn claim_stripe() -> bool {
    if STRIPE.try_with(|s| s.get()).unwrap_or(NO_STRIPE) != 0 {
        return false;
    }
    // The returner hands the stripe back at thread exit; a thread already tearing down its
    // thread-locals gets none.
    if RETURNER.try_with(|_| ()).is_err() {
        let _ = STRIPE.try_with(|s| s.set(NO_STRIPE));
        return false;
    }
    let stripe = FREE_STRIPES.lock().pop().or_else(|| {
        NEXT_STRIPE
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n as usize <= STRIPES).then_some(n + 1)
            })
            .ok()
    });
    let stripe = stripe.unwrap_or(NO_STRIPE);
    let _ = STRIPE.try_with(|s| s.set(stripe));
    stripe != NO_STRIPE
}

/// Reads many counters at once, taking the shard list lock once (used by snapshots).
pub(crate) struct BatchReader {
    shards: RefCell<Vec<&'static Shard>>,
}

impl BatchReader {
    /// Captures the current set of shards.
    pub(crate) fn new() -> Self {
        BatchReader {
            shards: RefCell::new(ALL_SHARDS.lock().clone()),
        }
    }

    /// Sums one counter over every shard: all `down`s first, then all `up`s.
    ///
    /// An object created on a thread whose shard is newer than our copy of the list, and
    /// dropped on an older one, would show its drop without its creation. The shard was
    /// published before that creation, which happened-before the drop we saw, so checking
    /// the published count between the two passes (and refreshing the copy) finds it.
    pub(crate) fn read(&self, c: &PairCounter) -> Pair {
        let id = c.id.load(Ordering::Relaxed);
        let mut down = c.shared_down.load(Ordering::Acquire);
        if id != 0 {
            for s in self.shards.borrow().iter() {
                if let Some(slot) = s.peek(id) {
                    down += slot.down.load(Ordering::Acquire);
                }
            }
        }
        let mut up = c.shared_up.load(Ordering::Acquire);
        if id != 0 {
            if SHARD_COUNT.load(Ordering::Acquire) > self.shards.borrow().len() {
                *self.shards.borrow_mut() = ALL_SHARDS.lock().clone();
            }
            for s in self.shards.borrow().iter() {
                if let Some(slot) = s.peek(id) {
                    up += slot.up.load(Ordering::Acquire);
                }
            }
        }
        Pair { up, down }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_on_one_thread() {
        let c = PairCounter::new();
        for _ in 0..10 {
            c.incr(Half::Up);
        }
        c.add(Half::Down, 4);
        assert_eq!(c.read(), Pair { up: 10, down: 4 });
        assert_eq!(c.read().live(), 6);
    }

    #[test]
    fn create_here_drop_there() {
        static C: PairCounter = PairCounter::new();
        for _ in 0..3 {
            C.incr(Half::Up);
        }
        std::thread::spawn(|| {
            for _ in 0..3 {
                C.incr(Half::Down);
            }
        })
        .join()
        .unwrap();
        assert_eq!(C.read(), Pair { up: 3, down: 3 });
    }

    #[test]
    fn a_read_sees_the_creation_on_a_shard_newer_than_its_list() {
        static C: PairCounter = PairCounter::new();
        C.incr(Half::Up);
        C.incr(Half::Down); // this thread has a shard and C its id
        let reader = BatchReader::new();
        let known = reader.shards.borrow().len();
        // Park threads on their shards until one of them had to make a new shard (the pool of
        // returned shards is used first); that thread creates, this one drops.
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = std::sync::Arc::new(parking_lot::Mutex::new(release_rx));
        let mut parked = Vec::new();
        loop {
            let (tx, rx) = std::sync::mpsc::channel();
            let wait = release_rx.clone();
            parked.push(std::thread::spawn(move || {
                let before = SHARD_COUNT.load(Ordering::Acquire);
                let shard = local_shard().expect("a live thread gets a shard");
                let fresh = SHARD_COUNT.load(Ordering::Acquire) > before.max(known)
                    && ALL_SHARDS.lock()[known..]
                        .iter()
                        .any(|s| ptr::eq(*s, shard));
                if fresh {
                    C.incr(Half::Up);
                }
                tx.send(fresh).unwrap();
                let _ = wait.lock().recv();
            }));
            if rx.recv().unwrap() {
                break;
            }
        }
        C.incr(Half::Down);
        let pair = reader.read(&C);
        drop(release_tx);
        for t in parked {
            t.join().unwrap();
        }
        assert_eq!(
            pair,
            Pair { up: 2, down: 2 },
            "the new shard's creation is counted"
        );
    }

    fn striped_incr(c: &StripedCounter, half: Half) {
        if c.try_incr(half).is_none() {
            c.add_slow(half);
        }
    }

    #[test]
    fn striped_counts_beyond_the_stripes_and_across_threads() {
        static C: StripedCounter = StripedCounter::new();
        const THREADS: usize = STRIPES + 16;
        // All alive at once, so at least 16 of them find no stripe and count through shards.
        let barrier = std::sync::Barrier::new(THREADS);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..100 {
                        striped_incr(&C, Half::Up);
                    }
                    barrier.wait();
                });
            }
        });
        assert!(
            C.others.read().up >= 16 * 100,
            "threads without a stripe were counted"
        );
        for _ in 0..THREADS * 100 {
            striped_incr(&C, Half::Down); // dropped on another thread
        }
        let n = (THREADS * 100) as u64;
        assert_eq!(C.read(), Pair { up: n, down: n });
        // Stripes of exited threads are reused and keep their totals.
        for round in 1..=3u64 {
            std::thread::spawn(|| striped_incr(&C, Half::Up))
                .join()
                .unwrap();
            assert_eq!(C.read().up, n + round);
        }
        assert_eq!(C.read_batch(&BatchReader::new()), C.read());
    }

    #[test]
    fn drops_during_thread_teardown_still_count() {
        static C: StripedCounter = StripedCounter::new();
        struct DropsLate;
        impl Drop for DropsLate {
            fn drop(&mut self) {
                striped_incr(&C, Half::Down);
            }
        }
        thread_local! {
            static LATE: std::cell::RefCell<Option<DropsLate>> = const { std::cell::RefCell::new(None) };
        }
        std::thread::spawn(|| {
            // Registered before the stripe's returner, so destroyed after it: the drop counts
            // with the thread's stripe already handed back.
            LATE.with(|l| *l.borrow_mut() = Some(DropsLate));
            striped_incr(&C, Half::Up);
        })
        .join()
        .unwrap();
        assert_eq!(C.read(), Pair { up: 1, down: 1 });
    }

    #[test]
    fn totals_survive_thread_exit_and_shard_reuse() {
        static C: PairCounter = PairCounter::new();
        for round in 1..=20u64 {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    std::thread::spawn(|| {
                        for _ in 0..1000 {
                            C.incr(Half::Up);
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(C.read().up, round * 4000);
        }
    }

    #[test]
    fn hot_counters_count_across_threads() {
        static C: PairCounter = PairCounter::new_hot();
        for _ in 0..3 {
            C.incr(Half::Up);
        }
        assert!((C.id.load(Ordering::Relaxed) as usize) < HOT_SLOTS);
        std::thread::spawn(|| C.add(Half::Down, 3)).join().unwrap();
        assert_eq!(C.read(), Pair { up: 3, down: 3 });
        assert_eq!(BatchReader::new().read(&C), Pair { up: 3, down: 3 });
    }

    #[test]
    fn hot_ids_run_out_into_ordinary_ids() {
        let many: Vec<PairCounter> = (0..HOT_SLOTS + 8).map(|_| PairCounter::new_hot()).collect();
        for c in &many {
            c.add(Half::Up, 2);
            c.incr(Half::Down);
        }
        assert!(many.iter().all(|c| c.read() == Pair { up: 2, down: 1 }));
        assert!(
            many.iter()
                .any(|c| c.id.load(Ordering::Relaxed) as usize >= HOT_SLOTS)
        );
    }

    #[test]
    fn batch_reader_matches_single_reads() {
        let a = PairCounter::new();
        let b = PairCounter::new();
        a.add(Half::Up, 5);
        b.add(Half::Down, 2);
        b.add(Half::Up, 7);
        let r = BatchReader::new();
        assert_eq!(r.read(&a), a.read());
        assert_eq!(r.read(&b), Pair { up: 7, down: 2 });
    }
}
