//! The contenders, behind one interface: a connection to each, its checked
//! calls, and its `count` streams.

use std::fmt;
use std::net::SocketAddr;

use cmdstream::codec::{Bincode, Json, Postcard};
use cmdstream::ResultStream;

use crate::raw::{RawClient, RawStream};
use crate::service::BenchClient;
use crate::tarpc_peer::TarpcClient;
use crate::tonic_peer::{CountItem, TonicClient};
use crate::BenchError;

/// Who is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Contender {
    /// cmdstream with its default codec, bincode.
    Cmdstream,
    /// cmdstream with its JSON codec.
    CmdstreamJson,
    /// cmdstream with its postcard codec.
    CmdstreamPostcard,
    Tarpc,
    Tonic,
    Raw,
}

impl Contender {
    /// Every contender, in the order of the report's columns.
    pub(crate) const ALL: [Contender; 6] = [
        Contender::Cmdstream,
        Contender::CmdstreamJson,
        Contender::CmdstreamPostcard,
        Contender::Tarpc,
        Contender::Tonic,
        Contender::Raw,
    ];

    /// The name in tables and charts.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Contender::Cmdstream => "cmdstream",
            Contender::CmdstreamJson => "cmdstream json",
            Contender::CmdstreamPostcard => "cmdstream postcard",
            Contender::Tarpc => "tarpc",
            Contender::Tonic => "tonic",
            Contender::Raw => "raw",
        }
    }

    /// The name on the command line (`--profile`).
    pub(crate) fn from_arg(arg: &str) -> Option<Contender> {
        Some(match arg {
            "cmdstream" => Contender::Cmdstream,
            "cmdstream-json" => Contender::CmdstreamJson,
            "cmdstream-postcard" => Contender::CmdstreamPostcard,
            "tarpc" => Contender::Tarpc,
            "tonic" => Contender::Tonic,
            "raw" => Contender::Raw,
            _ => return None,
        })
    }

    /// Whether it has a server stream (tarpc has none).
    pub(crate) fn streams(self) -> bool {
        self != Contender::Tarpc
    }

    /// Whether the 64-stream workload with a slow consumer runs on it: the
    /// default cmdstream, the peers with streams, and raw.
    pub(crate) fn fans_out(self) -> bool {
        matches!(
            self,
            Contender::Cmdstream | Contender::Tonic | Contender::Raw
        )
    }

    /// Whether it promises flow control on streams, so that a slow
    /// consumer's backlog stays bounded (raw has none, by design).
    pub(crate) fn bounds_stream_memory(self) -> bool {
        matches!(
            self,
            Contender::Cmdstream
                | Contender::CmdstreamJson
                | Contender::CmdstreamPostcard
                | Contender::Tonic
        )
    }
}

impl fmt::Display for Contender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where each contender's server listens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Addrs {
    pub(crate) cmd_bincode: SocketAddr,
    pub(crate) cmd_json: SocketAddr,
    pub(crate) cmd_postcard: SocketAddr,
    pub(crate) tarpc: SocketAddr,
    pub(crate) tonic: SocketAddr,
    pub(crate) raw: SocketAddr,
}

/// One connection to one contender. Clones share the connection; calls
/// take `&mut self` because tonic's client does, so each task calls on a
/// clone of its own.
#[derive(Clone)]
pub(crate) enum Target {
    Cmdstream(BenchClient<Bincode>),
    CmdstreamJson(BenchClient<Json>),
    CmdstreamPostcard(BenchClient<Postcard>),
    Tarpc(TarpcClient),
    Tonic(TonicClient),
    Raw(RawClient),
}

impl Target {
    /// Opens a new connection to `who`.
    pub(crate) async fn connect(who: Contender, addrs: &Addrs) -> Result<Target, BenchError> {
        Ok(match who {
            Contender::Cmdstream => {
                Target::Cmdstream(BenchClient::connect(addrs.cmd_bincode).await?)
            }
            Contender::CmdstreamJson => {
                let builder = cmdstream::Client::builder().codec(Json);
                Target::CmdstreamJson(BenchClient::connect_with(builder, addrs.cmd_json).await?)
            }
            Contender::CmdstreamPostcard => {
                let builder = cmdstream::Client::builder().codec(Postcard);
                Target::CmdstreamPostcard(
                    BenchClient::connect_with(builder, addrs.cmd_postcard).await?,
                )
            }
            Contender::Tarpc => Target::Tarpc(TarpcClient::connect(addrs.tarpc).await?),
            Contender::Tonic => Target::Tonic(TonicClient::connect(addrs.tonic).await?),
            Contender::Raw => Target::Raw(RawClient::connect(addrs.raw).await?),
        })
    }

    /// Who this connection is to.
    pub(crate) fn contender(&self) -> Contender {
        match self {
            Target::Cmdstream(_) => Contender::Cmdstream,
            Target::CmdstreamJson(_) => Contender::CmdstreamJson,
            Target::CmdstreamPostcard(_) => Contender::CmdstreamPostcard,
            Target::Tarpc(_) => Contender::Tarpc,
            Target::Tonic(_) => Contender::Tonic,
            Target::Raw(_) => Contender::Raw,
        }
    }

    fn check_sum(&self, what: &str, a: i64, b: i64, got: i64) -> Result<(), BenchError> {
        let want = a.wrapping_add(b);
        if got != want {
            return Err(BenchError::new(format!(
                "{}: {what}({a}, {b}) returned {got}, not {want}",
                self.contender()
            )));
        }
        Ok(())
    }

    /// One checked `add` call.
    pub(crate) async fn add(&mut self, a: i64, b: i64) -> Result<(), BenchError> {
        let got = match self {
            Target::Cmdstream(c) => c.add(a, b).await?,
            Target::CmdstreamJson(c) => c.add(a, b).await?,
            Target::CmdstreamPostcard(c) => c.add(a, b).await?,
            Target::Tarpc(c) => c.add(a, b).await?,
            Target::Tonic(c) => c.add(a, b).await?,
            Target::Raw(c) => c.add(a, b).await?,
        };
        self.check_sum("add", a, b, got)
    }

    /// One checked `slow_add` call (the server waits before answering).
    pub(crate) async fn slow_add(&mut self, a: i64, b: i64) -> Result<(), BenchError> {
        let got = match self {
            Target::Cmdstream(c) => c.slow_add(a, b).await?,
            Target::CmdstreamJson(c) => c.slow_add(a, b).await?,
            Target::CmdstreamPostcard(c) => c.slow_add(a, b).await?,
            Target::Tarpc(c) => c.slow_add(a, b).await?,
            Target::Tonic(c) => c.slow_add(a, b).await?,
            Target::Raw(c) => c.slow_add(a, b).await?,
        };
        self.check_sum("slow_add", a, b, got)
    }

    /// One checked `echo` call. Every contender's API takes the payload by
    /// value, so each call copies `data` into a fresh `Vec` first.
    pub(crate) async fn echo(&mut self, data: &[u8]) -> Result<(), BenchError> {
        let sent = data.to_vec();
        let got = match self {
            Target::Cmdstream(c) => c.echo(sent).await?,
            Target::CmdstreamJson(c) => c.echo(sent).await?,
            Target::CmdstreamPostcard(c) => c.echo(sent).await?,
            Target::Tarpc(c) => c.echo(sent).await?,
            Target::Tonic(c) => c.echo(sent).await?,
            Target::Raw(c) => c.echo(sent).await?,
        };
        if got != data {
            return Err(BenchError::new(format!(
                "{}: echo returned {} bytes that differ from the {} sent",
                self.contender(),
                got.len(),
                data.len()
            )));
        }
        Ok(())
    }

    /// Starts `count(n)`.
    pub(crate) async fn open_count(&mut self, n: u64) -> Result<ItemStream, BenchError> {
        let who = self.contender();
        let inner = match self {
            Target::Cmdstream(c) => Items::Cmdstream(c.count(n).await?),
            Target::CmdstreamJson(c) => Items::CmdstreamJson(c.count(n).await?),
            Target::CmdstreamPostcard(c) => Items::CmdstreamPostcard(c.count(n).await?),
            Target::Tonic(c) => Items::Tonic(c.count(n).await?),
            Target::Raw(c) => Items::Raw(c.count(n)?),
            Target::Tarpc(_) => return Err(BenchError::new("tarpc has no server streams")),
        };
        Ok(ItemStream {
            who,
            inner,
            next: 0,
        })
    }
}

enum Items {
    Cmdstream(ResultStream<u64, Bincode>),
    CmdstreamJson(ResultStream<u64, Json>),
    CmdstreamPostcard(ResultStream<u64, Postcard>),
    Tonic(tonic::Streaming<CountItem>),
    Raw(RawStream),
}

/// The results of one `count(n)` call; each item is checked to be the next
/// number.
pub(crate) struct ItemStream {
    who: Contender,
    inner: Items,
    next: u64,
}

impl ItemStream {
    /// The next item, or `None` at the end of the stream.
    pub(crate) async fn next(&mut self) -> Result<Option<u64>, BenchError> {
        let item = match &mut self.inner {
            Items::Cmdstream(s) => s.next().await.transpose()?,
            Items::CmdstreamJson(s) => s.next().await.transpose()?,
            Items::CmdstreamPostcard(s) => s.next().await.transpose()?,
            Items::Tonic(s) => s.message().await?.map(|m| m.value),
            Items::Raw(s) => s.next().await.transpose()?,
        };
        if let Some(item) = item {
            if item != self.next {
                return Err(BenchError::new(format!(
                    "{}: stream item {} was {item}",
                    self.who, self.next
                )));
            }
            self.next += 1;
        }
        Ok(item)
    }

    /// Items received so far.
    pub(crate) fn received(&self) -> u64 {
        self.next
    }

    /// Consumes the stream to its end and checks that it had `n` items.
    pub(crate) async fn drain(mut self, n: u64) -> Result<(), BenchError> {
        while self.next().await?.is_some() {}
        if self.next != n {
            return Err(BenchError::new(format!(
                "{}: the stream ended after {} of {n} items",
                self.who, self.next
            )));
        }
        Ok(())
    }
}
