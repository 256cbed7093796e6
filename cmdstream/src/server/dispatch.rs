//! The seam between the server and a service: [`Dispatch`] runs one
//! command, answering through its [`Call`].

use std::future::Future;
use std::sync::Arc;

use super::call::Call;
use super::unary::{Ran, Unary};
use crate::codec::Codec;
use crate::service::ServiceInfo;

/// Runs the commands of one service on the server: the invoker of the
/// command pattern.
///
/// The server calls [`dispatch`](Dispatch::dispatch) once per incoming
/// command, in a task of its own, with the command id already checked
/// against [`INFO`](Dispatch::INFO). The implementation decodes the
/// arguments, runs the receiver and answers through the [`Call`]: exactly
/// one of [`Call::reply`], [`Call::reply_stream`] or [`Call::fail`]. A call
/// dropped without an answer (a panic, say) is reported to the client as an
/// internal error.
pub trait Dispatch: Send + Sync + 'static {
    /// The service this dispatches.
    const INFO: &'static ServiceInfo;

    /// Runs one command to completion.
    fn dispatch<C: Codec>(self: Arc<Self>, call: Call<C>) -> impl Future<Output = ()> + Send;

    /// Runs a unary command straight from its frame, without a [`Call`]
    /// unless its receiver has to wait; or gives it back, and the server
    /// runs it through [`dispatch`](Dispatch::dispatch). Generated code
    /// takes the unary commands whose receiver takes no context.
    #[doc(hidden)]
    #[inline]
    fn dispatch_unary<'a, C: Codec>(
        self: &Arc<Self>,
        unary: Unary<'a, C>,
    ) -> Result<Ran, Unary<'a, C>> {
        Err(unary)
    }
}
