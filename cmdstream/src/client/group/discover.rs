//! Where a group's endpoints come from at run time: a feed of changes, and
//! a built-in feed that re-resolves a host name.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::sync::mpsc;
use tracing::warn;

use crate::transport::Endpoint;

/// A change to a group's endpoints, from a discovery feed
/// ([`ClientBuilder::connect_discovered`](crate::ClientBuilder::connect_discovered)).
/// The vocabulary of tower's `discover::Change`, keyed by the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new endpoint: the group dials it (an endpoint it has already is
    /// left as it is).
    Insert(Endpoint),
    /// An endpoint gone: the group takes no new calls to it, lets its calls
    /// in flight finish, then closes its connections.
    Remove(Endpoint),
}

/// A discovery feed that resolves `host` every `every` and reports the
/// addresses that appeared and went, each an endpoint on `port`: what a
/// Kubernetes headless service, or any name with several `A`/`AAAA`
/// records, needs.
///
/// The first resolution is at once. A failed resolution changes nothing
/// (the addresses known stay), so a DNS hiccup does not empty the group.
/// The feed ends when the group is closed.
///
/// # Examples
///
/// ```no_run
/// # async fn f(info: &'static cmdstream::ServiceInfo) -> Result<(), cmdstream::Error> {
/// use std::time::Duration;
/// use cmdstream::{dns, Client, Group};
///
/// let feed = dns("calc.default.svc.cluster.local", 7000, Duration::from_secs(30));
/// let client = Client::builder()
///     .connect_discovered(Group::new(), feed, info)
///     .await?;
/// # Ok(()) }
/// ```
pub fn dns(host: impl Into<String>, port: u16, every: Duration) -> Dns {
    let host = host.into();
    let (tx, rx) = mpsc::channel(64);
    let every = every.max(Duration::from_millis(10));
    tokio::spawn(async move {
        let mut known = BTreeSet::new();
        loop {
            match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(found) => {
                    let found: BTreeSet<SocketAddr> = found.collect();
                    for change in diff(&known, &found) {
                        if tx.send(change).await.is_err() {
                            return;
                        }
                    }
                    known = found;
                }
                Err(e) => warn!(%host, error = %e, "resolution failed; keeping what is known"),
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = tx.closed() => return,
            }
        }
    });
    Dns { changes: rx }
}

/// The changes from `known` to `found`: removals first, so that a group
/// never holds both an old and a new address of one server for longer than
/// it must.
fn diff(known: &BTreeSet<SocketAddr>, found: &BTreeSet<SocketAddr>) -> Vec<Change> {
    let gone = known
        .difference(found)
        .map(|a| Change::Remove(Endpoint::Addr(*a)));
    let new = found
        .difference(known)
        .map(|a| Change::Insert(Endpoint::Addr(*a)));
    gone.chain(new).collect()
}

/// The feed [`dns`] returns.
#[derive(Debug)]
pub struct Dns {
    changes: mpsc::Receiver<Change>,
}

impl Stream for Dns {
    type Item = Change;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Change>> {
        self.changes.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(addrs: &[&str]) -> BTreeSet<SocketAddr> {
        addrs.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn changes_are_what_appeared_and_what_went() {
        let known = set(&["10.0.0.1:7000", "10.0.0.2:7000"]);
        let found = set(&["10.0.0.2:7000", "10.0.0.3:7000"]);
        assert_eq!(
            diff(&known, &found),
            [
                Change::Remove(Endpoint::Addr("10.0.0.1:7000".parse().unwrap())),
                Change::Insert(Endpoint::Addr("10.0.0.3:7000".parse().unwrap())),
            ]
        );
        assert!(diff(&found, &found).is_empty());
    }

    #[tokio::test]
    async fn a_name_resolves_to_its_addresses() {
        let mut feed = dns("localhost", 7000, Duration::from_secs(3600));
        let first = std::future::poll_fn(|cx| Pin::new(&mut feed).poll_next(cx)).await;
        match first {
            Some(Change::Insert(Endpoint::Addr(a))) => {
                assert!(a.ip().is_loopback(), "{a}");
                assert_eq!(a.port(), 7000);
            }
            other => panic!("{other:?}"),
        }
    }
}
