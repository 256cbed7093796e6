//! tower layers around a server's dispatch: each command becomes an
//! [`Incoming`] request that the layers see (its command, its context)
//! before the service's own dispatch runs it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use super::BoxError;
use crate::codec::Codec;
use crate::error::ErrorCode;
use crate::server::{Call, CallContext, Dispatch};
use crate::service::{CommandInfo, ServiceInfo};

/// A command on its way through the server's layers: what it is and who
/// sent it, and the means to run it, which the innermost service
/// ([`Dispatcher`]) uses.
pub struct Incoming {
    command: &'static CommandInfo,
    context: CallContext,
    call: Arc<Mutex<Option<Box<dyn ErasedCall>>>>,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("command", &self.command.name)
            .finish_non_exhaustive()
    }
}

impl Incoming {
    /// The command.
    pub fn command(&self) -> &'static CommandInfo {
        self.command
    }

    /// Its deadline, metadata, trace context, connection and principal.
    pub fn context(&self) -> &CallContext {
        &self.context
    }

    fn take(&self) -> Option<Box<dyn ErasedCall>> {
        self.call
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// A call with its service, its codec erased, so that a layer stack is
/// built once for every codec.
trait ErasedCall: Send {
    fn run(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
    fn refuse(self: Box<Self>, message: String);
}

struct Pending<D, C> {
    dispatch: Arc<D>,
    call: Call<C>,
}

impl<D: Dispatch, C: Codec> ErasedCall for Pending<D, C> {
    fn run(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self.dispatch.dispatch(self.call))
    }

    fn refuse(self: Box<Self>, message: String) {
        self.call.fail(ErrorCode::Overloaded, message);
    }
}

/// The innermost service of a server's layers: runs the command with the
/// service's own dispatch. Its response is `()`: the command answers its
/// caller itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dispatcher;

impl Service<Incoming> for Dispatcher {
    type Response = ();
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, incoming: Incoming) -> Self::Future {
        let call = incoming.take();
        Box::pin(async move {
            if let Some(call) = call {
                call.run().await;
            }
            Ok(())
        })
    }
}

/// A service's dispatch with tower layers around it: serve it as any
/// other (`Server::builder().build(Layered::new(CalcServer::new(..), layer))`).
///
/// The layers see each command as an [`Incoming`]. One that refuses it
/// (a concurrency limit's load shedding, a rate limit, an authorisation
/// check returning an error) before it ran has the caller told
/// `Unavailable` with the error's message: nothing ran. One that stops it
/// while it runs (a timeout) drops it, and the caller is told so as for any
/// command dropped unanswered. The stack is built once, when this is made.
///
/// # Examples
///
/// ```no_run
/// # #[cmdstream::receiver] trait Calc { async fn add(&self, a: i64, b: i64) -> i64; }
/// # struct MyCalc;
/// # impl Calc for MyCalc { async fn add(&self, a: i64, b: i64) -> i64 { a + b } }
/// use cmdstream::tower::{Incoming, Layered};
/// use cmdstream::Server;
///
/// /// Logs every command.
/// #[derive(Clone)]
/// struct Log;
///
/// impl<S> tower_layer::Layer<S> for Log {
///     type Service = tower_util_fn::LogService<S>;
///     fn layer(&self, inner: S) -> Self::Service {
///         tower_util_fn::LogService(inner)
///     }
/// }
/// # mod tower_util_fn {
/// #     use std::task::{Context, Poll};
/// #     use cmdstream::tower::Incoming;
/// #     #[derive(Clone)]
/// #     pub struct LogService<S>(pub S);
/// #     impl<S: tower_service::Service<Incoming>> tower_service::Service<Incoming> for LogService<S> {
/// #         type Response = S::Response;
/// #         type Error = S::Error;
/// #         type Future = S::Future;
/// #         fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
/// #             self.0.poll_ready(cx)
/// #         }
/// #         fn call(&mut self, incoming: Incoming) -> S::Future {
/// #             println!("{}", incoming.command().name);
/// #             self.0.call(incoming)
/// #         }
/// #     }
/// # }
///
/// let server = Server::builder().build(Layered::new(CalcServer::new(MyCalc), Log));
/// ```
pub struct Layered<D, S> {
    dispatch: Arc<D>,
    service: S,
}

impl<D, S> std::fmt::Debug for Layered<D, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layered").finish_non_exhaustive()
    }
}

impl<D: Dispatch, S> Layered<D, S> {
    /// `dispatch` with `layer` around it.
    pub fn new<L>(dispatch: D, layer: L) -> Self
    where
        L: Layer<Dispatcher, Service = S>,
    {
        Layered {
            dispatch: Arc::new(dispatch),
            service: layer.layer(Dispatcher),
        }
    }
}

impl<D, S> Dispatch for Layered<D, S>
where
    D: Dispatch,
    S: Service<Incoming, Response = ()> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    const INFO: &'static ServiceInfo = D::INFO;

    fn dispatch<C: Codec>(self: Arc<Self>, call: Call<C>) -> impl Future<Output = ()> + Send {
        let command = call.command();
        let context = call.context().clone();
        let pending: Box<dyn ErasedCall> = Box::new(Pending {
            dispatch: self.dispatch.clone(),
            call,
        });
        let slot = Arc::new(Mutex::new(Some(pending)));
        let incoming = Incoming {
            command,
            context,
            call: slot.clone(),
        };
        let mut service = self.service.clone();
        async move {
            let ready: Result<(), BoxError> = std::future::poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(Into::into);
            let outcome = match ready {
                Ok(()) => service.call(incoming).await.map_err(Into::into),
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                // Refused before it ran: the caller may send it again.
                let pending = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(pending) = pending {
                    pending.refuse(format!("refused by a layer: {e}"));
                }
            }
        }
    }
}
