//! A command's future that reports a panic of its receiver at ERROR, with
//! the command, the request id and the panic's message, then lets the
//! panic go on to where the driver (or the command's task) handles it.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project_lite::pin_project! {
    /// `inner`, whose panics are logged.
    pub(crate) struct Reported<F> {
        #[pin]
        inner: F,
        command: &'static str,
        id: u64,
    }
}

impl<F> Reported<F> {
    pub(crate) fn new(inner: F, command: &'static str, id: u64) -> Self {
        Reported { inner, command, id }
    }
}

impl<F: Future> Future for Reported<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => {
                report(payload.as_ref(), this.command, *this.id);
                std::panic::resume_unwind(payload)
            }
        }
    }
}

/// Logs the panic `payload` of the command `command` serving request `id`.
pub(crate) fn report(payload: &(dyn Any + Send), command: &str, id: u64) {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic without a message)");
    tracing::error!(
        command,
        request_id = id,
        panic = message,
        "a command panicked; its caller is told so"
    );
}
