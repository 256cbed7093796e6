//! A connector that plays a script, for reconnect tests: each dial takes
//! the next step (refuse, hang, or be served by a given in-process server
//! over an in-memory pipe), and every dial and connection is recorded so
//! that a test can count the dials, time them, and cut the connections.
//! [`ByEndpoint`] gives each endpoint of a group a script of its own.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use cmdstream::{Connector, Dispatch, Endpoint, Server};
use tokio::io::DuplexStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What one dial does.
pub enum Step {
    /// Fails at once, as a refused TCP connection does.
    Refuse,
    /// Never completes (the client's connect timeout ends it).
    Hang,
    /// Connects to this server.
    Serve(Box<dyn Serve>),
}

impl Step {
    /// Connects to `server`.
    pub fn serve<D: Dispatch>(server: &Server<D>) -> Step {
        Step::Serve(Box::new(server.clone()))
    }
}

/// A server that can serve one end of a pipe.
pub trait Serve: Send + Sync {
    /// Serves `io` in a task of its own.
    fn spawn(&self, io: DuplexStream) -> JoinHandle<()>;
    /// Another handle on the same server.
    fn boxed(&self) -> Box<dyn Serve>;
}

impl<D: Dispatch> Serve for Server<D> {
    fn spawn(&self, io: DuplexStream) -> JoinHandle<()> {
        let server = self.clone();
        tokio::spawn(async move {
            let _ = server.serve_connection(io, "scripted").await;
        })
    }

    fn boxed(&self) -> Box<dyn Serve> {
        Box::new(self.clone())
    }
}

impl Clone for Step {
    fn clone(&self) -> Self {
        match self {
            Step::Refuse => Step::Refuse,
            Step::Hang => Step::Hang,
            Step::Serve(server) => Step::Serve(server.boxed()),
        }
    }
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Step>,
    /// The step once the script is played out.
    then: Option<Step>,
    dials: Vec<Instant>,
    links: Vec<JoinHandle<()>>,
}

/// The connector. Clones share the script and the records.
#[derive(Clone, Default)]
pub struct Scripted(Arc<Mutex<Inner>>);

impl Scripted {
    /// Plays `steps`, then `then` for every dial after.
    pub fn new(steps: impl IntoIterator<Item = Step>, then: Step) -> Self {
        let inner = Inner {
            script: steps.into_iter().collect(),
            then: Some(then),
            ..Inner::default()
        };
        Scripted(Arc::new(Mutex::new(inner)))
    }

    /// Replaces what is left of the script.
    pub fn set(&self, steps: impl IntoIterator<Item = Step>, then: Step) {
        let mut inner = self.0.lock().unwrap();
        inner.script = steps.into_iter().collect();
        inner.then = Some(then);
    }

    /// When each dial was made.
    pub fn dials(&self) -> Vec<Instant> {
        self.0.lock().unwrap().dials.clone()
    }

    /// Cuts every connection served so far, as a crashed server would.
    pub fn cut(&self) {
        for link in self.0.lock().unwrap().links.drain(..) {
            link.abort();
        }
    }
}

impl Connector for Scripted {
    type Io = DuplexStream;

    async fn connect(&self, _: &Endpoint) -> std::io::Result<DuplexStream> {
        let step = {
            let mut inner = self.0.lock().unwrap();
            inner.dials.push(Instant::now());
            let next = inner.script.pop_front();
            next.or_else(|| inner.then.clone()).unwrap_or(Step::Refuse)
        };
        match step {
            Step::Refuse => Err(std::io::ErrorKind::ConnectionRefused.into()),
            Step::Hang => std::future::pending().await,
            Step::Serve(server) => {
                let (ours, theirs) = tokio::io::duplex(1 << 16);
                let link = server.spawn(theirs);
                self.0.lock().unwrap().links.push(link);
                Ok(ours)
            }
        }
    }
}

/// A connector with a script per endpoint, for groups: a dial to an
/// endpoint it has no script for is refused.
#[derive(Clone, Default)]
pub struct ByEndpoint(Arc<HashMap<Endpoint, Scripted>>);

impl ByEndpoint {
    /// One script per endpoint.
    pub fn new(scripts: impl IntoIterator<Item = (Endpoint, Scripted)>) -> Self {
        ByEndpoint(Arc::new(scripts.into_iter().collect()))
    }

    /// The script of `endpoint`.
    pub fn get(&self, endpoint: &Endpoint) -> &Scripted {
        &self.0[endpoint]
    }
}

impl Connector for ByEndpoint {
    type Io = DuplexStream;

    async fn connect(&self, endpoint: &Endpoint) -> std::io::Result<DuplexStream> {
        match self.0.get(endpoint) {
            Some(script) => script.connect(endpoint).await,
            None => Err(std::io::ErrorKind::ConnectionRefused.into()),
        }
    }
}
