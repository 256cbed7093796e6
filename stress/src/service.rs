//! The service the soak calls: one command per shape, each answer naming
//! the call it belongs to, and a ledger of executions per call that
//! outlives every server incarnation, so a command run twice is caught.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cmdstream::Stream;
use futures_util::{stream, StreamExt};
use serde::{Deserialize, Serialize};

/// What `record` answers: its call, the payload it was sent, and how many
/// times the server has run this call (1, unless something is wrong).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Echo {
    pub(crate) call: u64,
    pub(crate) payload: Vec<u8>,
    pub(crate) runs: u32,
}

/// The typed application error of `fail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Refusal {
    pub(crate) call: u64,
}

#[cmdstream::receiver]
pub(crate) trait Soak {
    /// Not idempotent: the ledger must see each call run at most once.
    async fn record(&self, call: u64, payload: Vec<u8>) -> Echo;
    /// Idempotent: may run more than once.
    #[command(idempotent)]
    async fn read(&self, call: u64) -> u64;
    /// Fails with a typed application error.
    async fn fail(&self, call: u64) -> Result<u64, Refusal>;
    /// Answers `call` after `millis` (beyond the deadline, sometimes).
    async fn slow(&self, call: u64, millis: u64) -> u64;
    /// `call + i` for `i` in `0..n`, a millisecond apart every 16 items.
    async fn count(&self, call: u64, n: u32) -> impl Stream<Item = u64> + Send;
    /// The sum of the items.
    async fn sum(&self, call: u64, items: impl Stream<Item = u64> + Send) -> u64;
    /// Each item back, as it comes.
    async fn echo(
        &self,
        call: u64,
        items: impl Stream<Item = u64> + Send,
    ) -> impl Stream<Item = u64> + Send;
    /// `len` bytes: more than the client takes, so it is refused.
    async fn big(&self, call: u64, len: u32) -> Vec<u8>;
}

/// Executions per call, as one bit per call number of each client (the
/// ledger stays small over hours), and the calls that ran twice.
#[derive(Clone, Default)]
pub(crate) struct Ledger(Arc<Mutex<Books>>);

#[derive(Default)]
struct Books {
    ran: Vec<Vec<u64>>,
    twice: Vec<u64>,
}

/// A call number: the client in the high bits, its sequence below.
pub(crate) fn call_id(client: usize, seq: u64) -> u64 {
    ((client as u64) << 40) | seq
}

impl Ledger {
    /// Marks `call` run; how many times it has run now (1 or 2: a second
    /// run is remembered as a violation).
    pub(crate) fn run(&self, call: u64) -> u32 {
        let (client, seq) = ((call >> 40) as usize, call & ((1 << 40) - 1));
        let mut books = self.0.lock().unwrap();
        if books.ran.len() <= client {
            books.ran.resize_with(client + 1, Vec::new);
        }
        let bits = &mut books.ran[client];
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        let before = bits[word] & (1 << bit) != 0;
        bits[word] |= 1 << bit;
        if before {
            books.twice.push(call);
            2
        } else {
            1
        }
    }

    /// Whether `call` ran at all.
    pub(crate) fn ran(&self, call: u64) -> bool {
        let (client, seq) = ((call >> 40) as usize, call & ((1 << 40) - 1));
        let books = self.0.lock().unwrap();
        books
            .ran
            .get(client)
            .and_then(|bits| bits.get((seq / 64) as usize))
            .is_some_and(|word| word & (1 << (seq % 64)) != 0)
    }

    /// The non-idempotent calls that ran more than once.
    pub(crate) fn twice(&self) -> Vec<u64> {
        self.0.lock().unwrap().twice.clone()
    }
}

/// The receiver: every non-idempotent command enters the ledger.
pub(crate) struct Worker {
    pub(crate) ledger: Ledger,
}

impl Soak for Worker {
    async fn record(&self, call: u64, payload: Vec<u8>) -> Echo {
        let runs = self.ledger.run(call);
        Echo {
            call,
            payload,
            runs,
        }
    }

    async fn read(&self, call: u64) -> u64 {
        call.wrapping_mul(7)
    }

    async fn fail(&self, call: u64) -> Result<u64, Refusal> {
        self.ledger.run(call);
        Err(Refusal { call })
    }

    async fn slow(&self, call: u64, millis: u64) -> u64 {
        self.ledger.run(call);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        call
    }

    async fn count(&self, call: u64, n: u32) -> impl Stream<Item = u64> + Send {
        self.ledger.run(call);
        stream::iter(0..u64::from(n)).then(move |i| async move {
            if i % 16 == 15 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            call + i
        })
    }

    async fn sum(&self, call: u64, items: impl Stream<Item = u64> + Send) -> u64 {
        self.ledger.run(call);
        items
            .fold(0u64, |a, b| async move { a.wrapping_add(b) })
            .await
    }

    async fn echo(
        &self,
        call: u64,
        items: impl Stream<Item = u64> + Send,
    ) -> impl Stream<Item = u64> + Send {
        self.ledger.run(call);
        items
    }

    async fn big(&self, call: u64, len: u32) -> Vec<u8> {
        self.ledger.run(call);
        vec![7; len as usize]
    }
}
