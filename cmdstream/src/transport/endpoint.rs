//! What a client dials: a host name and port (resolved again at every
//! dial), a socket address, or a Unix socket path.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
#[cfg(unix)]
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crate::error::Error;

/// Where a client connects to.
///
/// A host name is resolved at every dial, so a client that reconnects
/// follows DNS; it is also the name a TLS client checks the server's
/// certificate against (unless one is set explicitly).
///
/// # Examples
///
/// ```
/// use cmdstream::Endpoint;
///
/// let by_name: Endpoint = "calc.internal:7000".parse().unwrap();
/// assert_eq!(by_name.host_name(), Some("calc.internal"));
/// let by_addr: Endpoint = "127.0.0.1:7000".parse().unwrap();
/// assert_eq!(by_addr.host_name(), None);
/// # #[cfg(unix)] {
/// let local: Endpoint = "unix:/run/calc.sock".parse().unwrap();
/// assert_eq!(local, Endpoint::unix("/run/calc.sock"));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// A host name (or an IP address written as a name) and a port.
    Host {
        /// The name, resolved at every dial.
        host: Arc<str>,
        /// The port.
        port: u16,
    },
    /// A socket address.
    Addr(SocketAddr),
    /// A Unix socket.
    #[cfg(unix)]
    Unix(Arc<Path>),
}

impl Endpoint {
    /// A host name and port.
    pub fn host(host: impl Into<Arc<str>>, port: u16) -> Self {
        Endpoint::Host {
            host: host.into(),
            port,
        }
    }

    /// A Unix socket path.
    #[cfg(unix)]
    pub fn unix(path: impl AsRef<Path>) -> Self {
        Endpoint::Unix(path.as_ref().into())
    }

    /// The host name, when the endpoint has one: what TLS checks the
    /// server's certificate against by default.
    pub fn host_name(&self) -> Option<&str> {
        match self {
            Endpoint::Host { host, .. } => Some(host),
            _ => None,
        }
    }

    /// The addresses to try, in order: a host name looked up now, an
    /// address as it is.
    pub(crate) async fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        match self {
            Endpoint::Addr(addr) => Ok(vec![*addr]),
            Endpoint::Host { host, port } => {
                let addrs: Vec<SocketAddr> =
                    tokio::net::lookup_host((&**host, *port)).await?.collect();
                if addrs.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{host} resolved to no address"),
                    ));
                }
                Ok(addrs)
            }
            #[cfg(unix)]
            Endpoint::Unix(path) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is a Unix socket, not a network address", path.display()),
            )),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Host { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Endpoint::Host { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Addr(addr) => write!(f, "{addr}"),
            #[cfg(unix)]
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

fn invalid(s: &str) -> Error {
    Error::Io(Arc::new(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("`{s}` is not an endpoint: expected host:port, an address, or unix:/path"),
    )))
}

impl FromStr for Endpoint {
    type Err = Error;

    /// `host:port`, `1.2.3.4:port`, `[::1]:port`, or `unix:/path`.
    fn from_str(s: &str) -> Result<Self, Error> {
        #[cfg(unix)]
        if let Some(path) = s.strip_prefix("unix:") {
            return Ok(Endpoint::unix(path));
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Endpoint::Addr(addr));
        }
        let (host, port) = s.rsplit_once(':').ok_or_else(|| invalid(s))?;
        let port = port.parse().map_err(|_| invalid(s))?;
        if host.is_empty() || host.contains(':') {
            return Err(invalid(s));
        }
        Ok(Endpoint::host(host, port))
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        Endpoint::Addr(addr)
    }
}

/// What a client accepts as somewhere to connect to: an [`Endpoint`], a
/// socket address, a `"host:port"` string, a `(host, port)` pair, or (on
/// Unix) a path.
pub trait IntoEndpoint {
    /// The endpoint.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] (`InvalidInput`) for a string that names no endpoint.
    fn into_endpoint(self) -> Result<Endpoint, Error>;
}

impl IntoEndpoint for Endpoint {
    fn into_endpoint(self) -> Result<Endpoint, Error> {
        Ok(self)
    }
}

impl IntoEndpoint for &Endpoint {
    fn into_endpoint(self) -> Result<Endpoint, Error> {
        Ok(self.clone())
    }
}

impl IntoEndpoint for SocketAddr {
    fn into_endpoint(self) -> Result<Endpoint, Error> {
        Ok(Endpoint::Addr(self))
    }
}

impl IntoEndpoint for &str {
    fn into_endpoint(self) -> Result<Endpoint, Error> {
        self.parse()
    }
}

impl IntoEndpoint for String {
    fn into_endpoint(self) -> Result<Endpoint, Error> {
        self.parse()
    }
}

impl IntoEndpoint for &String {
    fn into_endpoint(self) -> Result<Endpoint, Error> {
        self.parse()
    }
}

impl IntoEndpoint for (&str, u16) {
    fn into_endpoint(self) -> Result<Endpoint, Error> {
        Ok(match self.0.parse::<IpAddr>() {
            Ok(ip) => Endpoint::Addr(SocketAddr::new(ip, self.1)),
            Err(_) => Endpoint::host(self.0, self.1),
        })
    }
}

impl IntoEndpoint for (String, u16) {
    fn into_endpoint(self) -> Result<Endpoint, Error> {
        (self.0.as_str(), self.1).into_endpoint()
    }
}

impl IntoEndpoint for (IpAddr, u16) {
    fn into_endpoint(self) -> Result<Endpoint, Error> {
        Ok(Endpoint::Addr(SocketAddr::new(self.0, self.1)))
    }
}

impl IntoEndpoint for (Ipv4Addr, u16) {
    fn into_endpoint(self) -> Result<Endpoint, Error> {
        Ok(Endpoint::Addr(SocketAddr::new(self.0.into(), self.1)))
    }
}

impl IntoEndpoint for (Ipv6Addr, u16) {
    fn into_endpoint(self) -> Result<Endpoint, Error> {
        Ok(Endpoint::Addr(SocketAddr::new(self.0.into(), self.1)))
    }
}

#[cfg(unix)]
impl IntoEndpoint for &Path {
    fn into_endpoint(self) -> Result<Endpoint, Error> {
        Ok(Endpoint::unix(self))
    }
}

#[cfg(unix)]
impl IntoEndpoint for PathBuf {
    fn into_endpoint(self) -> Result<Endpoint, Error> {
        Ok(Endpoint::unix(self))
    }
}

#[cfg(unix)]
impl IntoEndpoint for &PathBuf {
    fn into_endpoint(self) -> Result<Endpoint, Error> {
        Ok(Endpoint::unix(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_name_hosts_addresses_and_sockets() {
        let ep: Endpoint = "example.internal:80".parse().unwrap();
        assert_eq!(ep, Endpoint::host("example.internal", 80));
        assert_eq!(ep.to_string(), "example.internal:80");
        let ep: Endpoint = "[::1]:9".parse().unwrap();
        assert_eq!(ep, Endpoint::Addr("[::1]:9".parse().unwrap()));
        assert_eq!(
            ("10.0.0.1", 5).into_endpoint().unwrap(),
            Endpoint::Addr("10.0.0.1:5".parse().unwrap())
        );
        assert_eq!(("db", 5).into_endpoint().unwrap(), Endpoint::host("db", 5));
        for bad in ["nohost", "host:notaport", ":80", "a:b:c"] {
            let err = bad.into_endpoint().unwrap_err();
            assert!(matches!(err, Error::Io(_)), "{bad}: {err}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn unix_paths_are_endpoints() {
        let ep: Endpoint = "unix:/tmp/x.sock".parse().unwrap();
        assert_eq!(ep.to_string(), "unix:/tmp/x.sock");
        assert_eq!(Path::new("/tmp/x.sock").into_endpoint().unwrap(), ep);
    }

    #[tokio::test]
    async fn names_are_resolved_and_addresses_are_kept() {
        let ep = Endpoint::host("localhost", 7);
        let addrs = ep.resolve().await.unwrap();
        assert!(
            addrs.iter().all(|a| a.port() == 7 && a.ip().is_loopback()),
            "{addrs:?}"
        );
        let ep = Endpoint::Addr("127.0.0.1:9".parse().unwrap());
        assert_eq!(
            ep.resolve().await.unwrap(),
            vec!["127.0.0.1:9".parse().unwrap()]
        );
    }
}
