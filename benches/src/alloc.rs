//! A global allocator that counts, while counting is switched on, how many
//! allocations the whole process makes: every thread, so the client and the
//! server of a benchmark together.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Forwards to [`System`], counting calls while [`Counter::start`] is on.
pub(crate) struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);

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
}

#[allow(unsafe_code)]
// SAFETY: every method passes its arguments unchanged to `System` and returns
// what `System` returns, so `System` upholds the `GlobalAlloc` contract; the
// counting only touches two atomics, never the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::alloc_seen();
        // SAFETY: the caller's guarantees on `layout` are passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::alloc_seen();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::realloc_seen();
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
