//! A global allocator that counts, while counting is switched on, how many
//! allocations the whole process makes: every thread, so the client and the
//! server of a benchmark together. While a [`HeapWatch`] is on it also
//! follows the bytes allocated and freed, to find the peak growth of the
//! heap over a workload.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Forwards to [`System`], counting calls while [`Counter::start`] is on.
pub(crate) struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES_ON: AtomicBool = AtomicBool::new(false);
/// Bytes allocated less bytes freed since the watch started.
static NET: AtomicI64 = AtomicI64::new(0);
/// The highest `NET` seen since the watch started.
static PEAK: AtomicI64 = AtomicI64::new(0);

impl Counting {
    #[inline]
    fn alloc_seen() {
        if ON.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[inline]
    fn realloc_seen() {
        if ON.load(Ordering::Relaxed) {
            REALLOCS.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Follows a change of `delta` bytes in the live heap.
    #[inline]
    fn bytes_seen(delta: i64) {
        if BYTES_ON.load(Ordering::Relaxed) {
            let now = NET.fetch_add(delta, Ordering::Relaxed) + delta;
            if delta > 0 {
                PEAK.fetch_max(now, Ordering::Relaxed);
            }
        }
    }
}

#[allow(unsafe_code)]
// SAFETY: every method passes its arguments unchanged to `System` and returns
// what `System` returns, so `System` upholds the `GlobalAlloc` contract; the
// counting only touches two atomics, never the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::alloc_seen();
        Self::bytes_seen(layout.size() as i64);
        // SAFETY: the caller's guarantees on `layout` are passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::alloc_seen();
        Self::bytes_seen(layout.size() as i64);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::bytes_seen(-(layout.size() as i64));
        // SAFETY: `ptr` came from `System` through this allocator, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::realloc_seen();
        Self::bytes_seen(new_size as i64 - layout.size() as i64);
        // SAFETY: `ptr` came from `System` through this allocator, with
        // `layout`; the caller vouches for `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations counted between [`Counter::start`] and [`Counter::stop`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    /// `alloc` and `alloc_zeroed` calls.
    pub(crate) allocs: u64,
    /// `realloc` calls (a growing buffer).
    pub(crate) reallocs: u64,
}

/// One counting window. Only one may be open at a time.
pub(crate) struct Counter {
    allocs: u64,
    reallocs: u64,
}

impl Counter {
    /// Switches counting on.
    pub(crate) fn start() -> Counter {
        let c = Counter {
            allocs: ALLOCS.load(Ordering::SeqCst),
            reallocs: REALLOCS.load(Ordering::SeqCst),
        };
        ON.store(true, Ordering::SeqCst);
        c
    }

    /// Switches counting off and returns what was counted since `start`.
    pub(crate) fn stop(self) -> Counts {
        ON.store(false, Ordering::SeqCst);
        Counts {
            allocs: ALLOCS.load(Ordering::SeqCst) - self.allocs,
            reallocs: REALLOCS.load(Ordering::SeqCst) - self.reallocs,
        }
    }
}

/// One window over which the heap's growth is followed. Only one may be
/// open at a time.
pub(crate) struct HeapWatch(());

impl HeapWatch {
    /// Starts following allocations and frees from zero.
    pub(crate) fn start() -> HeapWatch {
        NET.store(0, Ordering::SeqCst);
        PEAK.store(0, Ordering::SeqCst);
        BYTES_ON.store(true, Ordering::SeqCst);
        HeapWatch(())
    }

    /// Stops, and returns the peak growth of the live heap since `start`,
    /// in bytes: what the workload held at its most, beyond what was live
    /// before (frees of older memory can offset it, so it is a lower bound).
    pub(crate) fn stop(self) -> u64 {
        BYTES_ON.store(false, Ordering::SeqCst);
        PEAK.load(Ordering::SeqCst).max(0) as u64
    }
}
