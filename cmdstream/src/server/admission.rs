//! Which new connections the server takes: the limits on connections in
//! all, on those still in the handshake, and (optionally) on those from one
//! IP address. Each is a slot taken when the connection arrives and given
//! back when it is dropped.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::ServerConfig;
use crate::wire::hello::Refusal;

/// Refusals the server tells at once. Telling one takes a task and its
/// socket for up to the handshake timeout (a TLS handshake first, on a TLS
/// server, then the wait for the client to read the reason and close), so
/// beyond these a refused connection is closed without a word.
const MAX_REFUSALS: usize = 64;

/// The server's connection slots.
pub(crate) struct Admission {
    /// Refusals being told, at most [`MAX_REFUSALS`] at a time.
    refusals: Arc<Semaphore>,
    connections: Arc<Semaphore>,
    max_connections: usize,
    handshakes: Arc<Semaphore>,
    max_handshakes: usize,
    per_ip: Option<PerIp>,
}

/// Connections per IP address, when limited.
struct PerIp {
    max: usize,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// The slots one connection holds.
pub(crate) struct Admitted {
    _connection: OwnedSemaphorePermit,
    handshake: Option<OwnedSemaphorePermit>,
    _ip: Option<IpSlot>,
}

impl Admitted {
    /// The handshake is over: its slot goes to the next connection.
    pub(crate) fn handshake_done(&mut self) {
        self.handshake = None;
    }
}

/// One connection counted against its address.
struct IpSlot {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl Admission {
    pub(crate) fn new(config: &ServerConfig) -> Self {
        Admission {
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
            connections: Arc::new(Semaphore::new(config.max_connections)),
            max_connections: config.max_connections,
            handshakes: Arc::new(Semaphore::new(config.max_handshakes)),
            max_handshakes: config.max_handshakes,
            per_ip: config.max_connections_per_ip.map(|max| PerIp {
                max,
                counts: Arc::default(),
            }),
        }
    }

    /// Takes the slots of a new connection from `peer`, or says why not.
    pub(crate) fn admit(&self, peer: Option<SocketAddr>) -> Result<Admitted, (Refusal, String)> {
        let too_many = |what: String| (Refusal::TooManyConnections, what);
        let connection = self.connections.clone().try_acquire_owned().map_err(|_| {
            too_many(format!(
                "the server is at its limit of {} connections",
                self.max_connections
            ))
        })?;
        let handshake = self.handshakes.clone().try_acquire_owned().map_err(|_| {
            too_many(format!(
                "the server is at its limit of {} connections in the handshake",
                self.max_handshakes
            ))
        })?;
        let ip = match (&self.per_ip, peer) {
            (Some(per_ip), Some(addr)) => Some(per_ip.take(addr.ip()).ok_or_else(|| {
                too_many(format!(
                    "the server is at its limit of {} connections from {}",
                    per_ip.max,
                    addr.ip()
                ))
            })?),
            _ => None,
        };
        Ok(Admitted {
            _connection: connection,
            handshake: Some(handshake),
            _ip: ip,
        })
    }

    /// A slot to tell a refused connection why, while fewer than
    /// [`MAX_REFUSALS`] others are being told.
    pub(crate) fn refusal_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.refusals.clone().try_acquire_owned().ok()
    }

    /// The number of connections holding a slot now.
    pub(crate) fn connections(&self) -> usize {
        self.max_connections - self.connections.available_permits()
    }
}

impl PerIp {
    fn take(&self, ip: IpAddr) -> Option<IpSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            ip,
            counts: self.counts.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(connections: usize, handshakes: usize, per_ip: Option<usize>) -> ServerConfig {
        ServerConfig {
            max_connections: connections,
            max_handshakes: handshakes,
            max_connections_per_ip: per_ip,
            ..ServerConfig::default()
        }
    }

    fn addr(last: u8) -> Option<SocketAddr> {
        Some(SocketAddr::from(([10, 0, 0, last], 4000)))
    }

    #[test]
    fn handshakes_have_a_smaller_cap_of_their_own() {
        let admission = Admission::new(&config(10, 2, None));
        let mut a = admission.admit(addr(1)).unwrap();
        let _b = admission.admit(addr(1)).unwrap();
        let (why, reason) = admission.admit(addr(2)).err().unwrap();
        assert_eq!(why, Refusal::TooManyConnections);
        assert!(
            reason.contains("2 connections in the handshake"),
            "{reason}"
        );
        a.handshake_done();
        let _c = admission.admit(addr(2)).unwrap();
        assert_eq!(admission.connections(), 3);
    }

    #[test]
    fn one_address_is_held_to_its_share_and_given_it_back() {
        let admission = Admission::new(&config(10, 10, Some(2)));
        let a = admission.admit(addr(1)).unwrap();
        let _b = admission.admit(addr(1)).unwrap();
        let (_, reason) = admission.admit(addr(1)).err().unwrap();
        assert!(reason.contains("2 connections from 10.0.0.1"), "{reason}");
        let _other = admission.admit(addr(2)).unwrap();
        drop(a);
        let _again = admission.admit(addr(1)).unwrap();
        // Connections without an address (Unix sockets) are not counted.
        let _unix = admission.admit(None).unwrap();
    }

    #[test]
    fn a_refused_connection_holds_no_slot() {
        let admission = Admission::new(&config(1, 1, None));
        let a = admission.admit(None).unwrap();
        assert!(admission.admit(None).is_err());
        assert_eq!(admission.connections(), 1);
        drop(a);
        assert_eq!(admission.connections(), 0);
        assert!(admission.admit(None).is_ok());
    }
}
