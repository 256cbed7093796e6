//! The cmdstream contender: the benchmark service as a
//! `#[cmdstream::receiver]` trait, so the generated server and client are
//! what is measured. The generated server is generic over the codec, so one
//! receiver serves bincode, JSON and postcard servers alike.

use std::time::Duration;

use cmdstream::Stream;

/// Command id of `add(a: i64, b: i64) -> i64`.
pub(crate) const ADD: u32 = 1;
/// Command id of `count(n: u64) -> stream of u64` (0, 1, …, n − 1).
pub(crate) const COUNT: u32 = 2;
/// Command id of `echo(data: Vec<u8>) -> Vec<u8>`.
pub(crate) const ECHO: u32 = 3;
/// Command id of `slow_add(a: i64, b: i64) -> i64`: `add` after
/// [`SLOW_DELAY`] on the server.
pub(crate) const SLOW_ADD: u32 = 4;

/// How long `slow_add` sleeps in its handler, in every contender.
pub(crate) const SLOW_DELAY: Duration = Duration::from_millis(30);

/// The service every contender serves. The ids are fixed so that the raw
/// baseline can send the same frames.
#[cmdstream::receiver]
pub(crate) trait Bench {
    /// `a + b`.
    #[command(id = 1)]
    async fn add(&self, a: i64, b: i64) -> i64;

    /// The stream 0, 1, …, n − 1.
    #[command(id = 2)]
    async fn count(&self, n: u64) -> impl Stream<Item = u64> + Send;

    /// `data`, sent back.
    #[command(id = 3)]
    async fn echo(&self, data: Vec<u8>) -> Vec<u8>;

    /// `a + b`, after [`SLOW_DELAY`].
    #[command(id = 4)]
    async fn slow_add(&self, a: i64, b: i64) -> i64;
}

/// The receiver.
pub(crate) struct Bencher;

impl Bench for Bencher {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    async fn count(&self, n: u64) -> impl Stream<Item = u64> + Send {
        futures_util::stream::iter(0..n)
    }

    async fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }

    async fn slow_add(&self, a: i64, b: i64) -> i64 {
        tokio::time::sleep(SLOW_DELAY).await;
        a.wrapping_add(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raw_baseline_uses_the_generated_ids() {
        let ids: Vec<(&str, u32)> = BenchClient::INFO
            .commands
            .iter()
            .map(|c| (c.name, c.id))
            .collect();
        assert_eq!(
            ids,
            [
                ("add", ADD),
                ("count", COUNT),
                ("echo", ECHO),
                ("slow_add", SLOW_ADD)
            ]
        );
    }
}

#[cfg(test)]
mod byte_string_tests {
    use cmdstream::codec::{Bincode, ByteBuf, Codec};

    use crate::alloc::HeapWatch;

    #[test]
    fn a_forged_byte_string_length_reserves_nothing_like_it() {
        // A frame body declaring 512 MiB of bytes with none behind them,
        // decoded the way the generated code decodes `Vec<u8>`.
        let mut body = bytes::BytesMut::new();
        Bincode.encode(&(512u64 << 20), &mut body).unwrap();
        let watch = HeapWatch::start();
        assert!(Bincode.decode::<ByteBuf>(&body).is_err());
        let grown = watch.stop();
        // Other tests may allocate meanwhile: the bound is loose, and still
        // far below what the declared length would take.
        assert!(grown < 64 << 20, "the heap grew by {grown} bytes");
    }
}
