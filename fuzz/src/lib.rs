//! What every fuzz target shares: a counting allocator that holds each
//! run to a bound on how much the heap may grow, so that an input which
//! makes a decoder reserve what its bytes do not justify fails (the
//! allocation is refused and the process aborts: libFuzzer reports it).

use std::alloc::System;

use cap::Cap;

#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

/// Runs `check` on `data`, the heap allowed to grow by at most `bound`
/// bytes meanwhile.
pub fn bounded(data: &[u8], bound: usize, check: fn(&[u8])) {
    let base = HEAP.allocated();
    let _ = HEAP.set_limit(base.saturating_add(bound));
    check(data);
    let _ = HEAP.set_limit(usize::MAX);
}

/// The bound for the decoders: far above anything their inputs (at most
/// a few KiB) justify.
pub const DECODER_BOUND: usize = 16 << 20;

/// The bound for a whole connection: its runtime, buffers and limits.
pub const CONNECTION_BOUND: usize = 64 << 20;
