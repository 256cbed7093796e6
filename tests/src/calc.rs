//! `Calc`, written by hand: a receiver, its dispatch and its typed client.
//! This is exactly what `#[cmdstream::receiver]` generates.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cmdstream::codec::Codec;
use cmdstream::{
    ArgStream, Call, CallContext, Client, CommandInfo, CommandKind, Dispatch, Error, ResultStream,
    ServiceInfo, Stream,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

/// The service description both sides share.
pub static INFO: ServiceInfo = ServiceInfo::new(
    "Calc",
    cmdstream::fingerprint(b"Calc v1"),
    &[
        CommandInfo::new(
            1,
            "add",
            CommandKind::Unary,
            cmdstream::fingerprint(b"1 add Unary"),
        )
        .with_path("Calc/add"),
        CommandInfo::new(
            2,
            "div",
            CommandKind::Unary,
            cmdstream::fingerprint(b"2 div Unary"),
        )
        .with_path("Calc/div"),
        CommandInfo::new(
            3,
            "countdown",
            CommandKind::ServerStream,
            cmdstream::fingerprint(b"3 countdown ServerStream"),
        )
        .with_path("Calc/countdown"),
        CommandInfo::new(
            4,
            "total",
            CommandKind::ClientStream,
            cmdstream::fingerprint(b"4 total ClientStream"),
        )
        .with_path("Calc/total"),
        CommandInfo::new(
            5,
            "echo",
            CommandKind::Bidi,
            cmdstream::fingerprint(b"5 echo Bidi"),
        )
        .with_path("Calc/echo"),
        CommandInfo::new(
            6,
            "sleep",
            CommandKind::Unary,
            cmdstream::fingerprint(b"6 sleep Unary"),
        )
        .with_path("Calc/sleep"),
        CommandInfo::new(
            7,
            "boom",
            CommandKind::Unary,
            cmdstream::fingerprint(b"7 boom Unary"),
        )
        .with_path("Calc/boom"),
        CommandInfo::new(
            8,
            "whoami",
            CommandKind::Unary,
            cmdstream::fingerprint(b"8 whoami Unary"),
        )
        .with_path("Calc/whoami"),
        CommandInfo::new(
            9,
            "blob",
            CommandKind::Unary,
            cmdstream::fingerprint(b"9 blob Unary"),
        )
        .with_path("Calc/blob"),
    ],
);

/// An application error that travels typed inside the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DivError {
    /// Division by zero.
    DivideByZero,
}

/// What the receiver observed, for tests to assert on.
#[derive(Clone, Default)]
pub struct Probe {
    /// `sleep` commands started.
    pub started: Arc<AtomicUsize>,
    /// `sleep` commands that finished their sleep.
    pub finished: Arc<AtomicUsize>,
    /// `sleep` commands dropped before finishing (cancelled or timed out).
    pub dropped: Arc<AtomicUsize>,
    /// Items produced by `countdown`.
    pub produced: Arc<AtomicUsize>,
    /// `blob` commands run.
    pub blobs: Arc<AtomicUsize>,
}

impl Probe {
    /// Reads a counter.
    pub fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

/// The receiver.
pub struct Calc {
    probe: Probe,
}

impl Calc {
    /// A receiver reporting to `probe`.
    pub fn new(probe: Probe) -> Self {
        Calc { probe }
    }

    async fn add(&self, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    async fn div(&self, a: i64, b: i64) -> Result<i64, DivError> {
        if b == 0 {
            Err(DivError::DivideByZero)
        } else {
            Ok(a / b)
        }
    }

    fn countdown(&self, from: u32) -> impl Stream<Item = u32> + Send + 'static {
        let produced = self.probe.produced.clone();
        futures_util::stream::iter((0..=from).rev()).inspect(move |_| {
            produced.fetch_add(1, Ordering::SeqCst);
        })
    }

    async fn total(&self, nums: impl Stream<Item = i64> + Send) -> i64 {
        let mut nums = pin!(nums);
        let mut sum = 0i64;
        while let Some(n) = nums.next().await {
            sum = sum.wrapping_add(n);
        }
        sum
    }

    fn echo(
        &self,
        lines: impl Stream<Item = String> + Send + 'static,
    ) -> impl Stream<Item = String> + Send + 'static {
        lines.map(|l| l.to_uppercase())
    }

    async fn sleep(&self, millis: u64) -> u64 {
        struct Dropped(Option<Arc<AtomicUsize>>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                if let Some(c) = self.0.take() {
                    c.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        self.probe.started.fetch_add(1, Ordering::SeqCst);
        let mut guard = Dropped(Some(self.probe.dropped.clone()));
        tokio::time::sleep(Duration::from_millis(millis)).await;
        guard.0 = None;
        self.probe.finished.fetch_add(1, Ordering::SeqCst);
        millis
    }

    async fn boom(&self) -> u8 {
        panic!("boom on purpose")
    }

    async fn whoami(
        &self,
        ctx: &CallContext,
    ) -> (Option<String>, Option<String>, Option<String>, bool) {
        (
            ctx.metadata().get("user").map(str::to_owned),
            ctx.connection_metadata().get("app").map(str::to_owned),
            ctx.traceparent().map(str::to_owned),
            ctx.deadline().is_some(),
        )
    }

    async fn blob(&self, len: usize) -> Vec<u8> {
        self.probe.blobs.fetch_add(1, Ordering::SeqCst);
        vec![7; len]
    }
}

/// Serves a [`Calc`].
pub struct CalcServer {
    calc: Calc,
}

impl CalcServer {
    /// Wraps the receiver.
    pub fn new(calc: Calc) -> Self {
        CalcServer { calc }
    }
}

macro_rules! args_or_reject {
    ($call:ident, $ty:ty) => {
        match $call.args::<$ty>() {
            Ok(v) => v,
            Err(e) => return $call.reject_args(e),
        }
    };
}

impl Dispatch for CalcServer {
    const INFO: &'static ServiceInfo = &INFO;

    async fn dispatch<C: Codec>(self: Arc<Self>, mut call: Call<C>) {
        {
            let calc = &self.calc;
            match call.command().id {
                1 => {
                    let (a, b) = args_or_reject!(call, (i64, i64));
                    let r = calc.add(a, b).await;
                    call.reply(&r)
                }
                2 => {
                    let (a, b) = args_or_reject!(call, (i64, i64));
                    let r = calc.div(a, b).await;
                    call.reply(&r)
                }
                3 => {
                    let (from,) = args_or_reject!(call, (u32,));
                    let s = calc.countdown(from);
                    call.reply_stream(s).await
                }
                4 => {
                    let () = args_or_reject!(call, ());
                    let nums = call.arg_stream::<i64>();
                    let r = calc.total(nums).await;
                    call.reply(&r)
                }
                5 => {
                    let () = args_or_reject!(call, ());
                    let lines: ArgStream<String, C> = call.arg_stream();
                    let s = calc.echo(lines);
                    call.reply_stream(s).await
                }
                6 => {
                    let (ms,) = args_or_reject!(call, (u64,));
                    let r = calc.sleep(ms).await;
                    call.reply(&r)
                }
                7 => {
                    let () = args_or_reject!(call, ());
                    let r = calc.boom().await;
                    call.reply(&r)
                }
                8 => {
                    let () = args_or_reject!(call, ());
                    let r = calc.whoami(call.context()).await;
                    call.reply(&r)
                }
                9 => {
                    let (len,) = args_or_reject!(call, (usize,));
                    let r = calc.blob(len).await;
                    // As generated code sends a `Vec<u8>`: one byte string.
                    call.reply(&cmdstream::codec::ByteSlice(&r))
                }
                // The server checked the id against INFO before dispatching.
                other => call.fail(
                    cmdstream::ErrorCode::UnknownCommand,
                    format!("no command {other}"),
                ),
            }
        }
    }
}

/// The typed client.
#[derive(Clone, Debug)]
pub struct CalcClient<C: Codec = cmdstream::codec::DefaultCodec> {
    inner: Client<C>,
}

impl<C: Codec> CalcClient<C> {
    /// Wraps a connected runtime client.
    pub fn new(inner: Client<C>) -> Self {
        CalcClient { inner }
    }

    /// The runtime client underneath.
    pub fn inner(&self) -> &Client<C> {
        &self.inner
    }

    /// Same connection, other per-call options.
    pub fn with_options(&self, options: cmdstream::CallOptions) -> Self {
        CalcClient {
            inner: self.inner.with_options(options),
        }
    }

    /// Adds two numbers.
    pub async fn add(&self, a: i64, b: i64) -> Result<i64, Error> {
        self.inner.unary(&INFO.commands[0], &(a, b)).await
    }

    /// Divides, failing typed on zero.
    pub async fn div(&self, a: i64, b: i64) -> Result<Result<i64, DivError>, Error> {
        self.inner.unary(&INFO.commands[1], &(a, b)).await
    }

    /// Counts down from `from` to 0.
    pub fn countdown(&self, from: u32) -> Result<ResultStream<u32, C>, Error> {
        self.inner.server_stream(&INFO.commands[2], &(from,))
    }

    /// Sums a stream.
    pub async fn total(
        &self,
        nums: impl Stream<Item = i64> + Send + 'static,
    ) -> Result<i64, Error> {
        self.inner.client_stream(&INFO.commands[3], &(), nums).await
    }

    /// Upper-cases each line as it arrives.
    pub fn echo(
        &self,
        lines: impl Stream<Item = String> + Send + 'static,
    ) -> Result<ResultStream<String, C>, Error> {
        self.inner.bidi(&INFO.commands[4], &(), lines)
    }

    /// Sleeps on the server.
    pub async fn sleep(&self, millis: u64) -> Result<u64, Error> {
        self.inner.unary(&INFO.commands[5], &(millis,)).await
    }

    /// Panics on the server.
    pub async fn boom(&self) -> Result<u8, Error> {
        self.inner.unary(&INFO.commands[6], &()).await
    }

    /// What the server sees of this call's context.
    pub async fn whoami(
        &self,
    ) -> Result<(Option<String>, Option<String>, Option<String>, bool), Error> {
        self.inner.unary(&INFO.commands[7], &()).await
    }

    /// A result of `len` bytes.
    pub async fn blob(&self, len: usize) -> Result<Vec<u8>, Error> {
        self.inner.unary(&INFO.commands[8], &(len,)).await
    }

    /// Calls any command id with any arguments (for unknown-command tests).
    pub async fn raw_unary<A: Serialize, R: serde::de::DeserializeOwned>(
        &self,
        id: u32,
        args: &A,
    ) -> Result<R, Error> {
        let command = match INFO.command(id) {
            Some(known) => known,
            // A command the service does not define: leaked once per call,
            // which is fine in tests.
            None => Box::leak(Box::new(CommandInfo::new(
                id,
                "unknown",
                CommandKind::Unary,
                0,
            ))),
        };
        self.inner.unary(command, args).await
    }
}
