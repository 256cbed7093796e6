//! A call observed: run in a span of its own (when a subscriber wants
//! it), its result's size and its outcome reported when it ends. The
//! paths of [`Client`] that telemetry sees, boxed off the plain ones.

use futures_core::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument;

use super::Client;
use crate::codec::Codec;
use crate::error::Error;
use crate::service::CommandInfo;
use crate::telemetry::{CallTrace, Outcome};

impl<C: Codec> Client<C> {
    /// [`unary`](Self::unary), observed.
    pub(super) async fn unary_observed<A, R>(
        &self,
        command: &'static CommandInfo,
        args: &A,
    ) -> Result<R, Error>
    where
        A: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let trace = CallTrace::client(command, C::NAME);
        let span = trace.span().clone();
        let result = self.unary_bytes(command, args).instrument(span).await;
        self.decoded(trace, result)
    }

    /// [`client_stream`](Self::client_stream), observed.
    pub(super) async fn client_stream_observed<A, I, S, R>(
        &self,
        command: &'static CommandInfo,
        args: &A,
        items: S,
    ) -> Result<R, Error>
    where
        A: Serialize + ?Sized,
        I: Serialize + Send + 'static,
        S: Stream<Item = I> + Send + 'static,
        R: DeserializeOwned,
    {
        let trace = CallTrace::client(command, C::NAME);
        let span = trace.span().clone();
        let result = self
            .client_stream_bytes(command, args, items)
            .instrument(span)
            .await;
        self.decoded(trace, result)
    }

    /// The call's result decoded, and how it ended reported.
    fn decoded<R: DeserializeOwned>(
        &self,
        mut trace: CallTrace,
        result: Result<bytes::Bytes, Error>,
    ) -> Result<R, Error> {
        let result = result.and_then(|bytes| {
            trace.received(bytes.len());
            Ok(self.codec.decode(&bytes)?)
        });
        trace.finish(Outcome::of(&result));
        result
    }
}
