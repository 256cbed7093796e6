//! The baseline: the frames of `docs/PROTOCOL.md` (u32 length, kind, u64
//! request id, body) over plain tokio TCP, and nothing else. No handshake,
//! no flow control, no keepalive, no deadlines, no per-command tasks (except
//! for `slow_add`, whose answer waits for a timer).
//!
//! Each side has one reader task and one writer task. The client's writer
//! takes everything its callers queued and sends it in one write; its reader
//! hands each result to the caller waiting on that request id, through a
//! mutex-guarded map, and cuts consecutive RESULT frames of one stream as
//! one piece, which the stream's consumer walks in place (the same saving
//! cmdstream's client makes, so the baseline keeps its lead). The server's
//! reader answers every `add` of one read inline and passes the answers to
//! its writer as one chunk; a `count` stream gets a task that encodes items
//! into chunks of about 16 KiB. COMMAND bodies carry the same 5-byte head
//! (command id, flags) as cmdstream's, so both contenders put the same bytes
//! on the wire.
//!
//! Without flow control, a stream's results queue without limit in the
//! client until its consumer takes them: a slow consumer neither stalls the
//! other streams nor bounds the memory its backlog takes.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use cmdstream::codec::{Bincode, Codec};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

// Byte strings as the generated code sends them: one copy, not one
// serde call per byte.
use cmdstream::codec::{ByteBuf, ByteSlice};

use crate::service::{ADD, COUNT, ECHO, SLOW_ADD, SLOW_DELAY};
use crate::BenchError;

const COMMAND: u8 = 0x01;
const RESULT: u8 = 0x02;
const RESULT_LAST: u8 = 0x03;
const END: u8 = 0x07;

/// Bytes before a frame's body: length prefix, kind, request id.
const HEAD: usize = 4 + 1 + 8;
/// The largest frame either side accepts (as the length prefix counts it).
const MAX_FRAME: usize = 1 << 20;
/// How much the read buffer grows by when it runs low.
const READ_CHUNK: usize = 64 * 1024;
/// Below this much free space the read buffer is grown before reading.
const READ_MIN_FREE: usize = 4 * 1024;
/// The server's reader hands its answers to the writer every this many
/// frames of a large read, as cmdstream's server does.
const WRITE_EVERY: usize = 64;
/// A streaming producer hands its buffer to the writer at this size.
const STREAM_CHUNK: usize = 16 * 1024;

/// Request ids are sequential: a multiplicative hash spreads them well.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Starts a frame; returns where its length prefix is.
fn begin(buf: &mut BytesMut, kind: u8, id: u64) -> usize {
    let start = buf.len();
    buf.put_u32(0);
    buf.put_u8(kind);
    buf.put_u64(id);
    start
}

/// Fills in the length prefix of the frame begun at `start`.
fn finish(buf: &mut BytesMut, start: usize) {
    let len = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// One frame cut from the read buffer; the body shares its memory.
struct Frame {
    kind: u8,
    id: u64,
    body: Bytes,
}

/// The next whole frame in `rbuf`, if it holds one.
fn next_frame(rbuf: &mut BytesMut) -> Result<Option<Frame>, BenchError> {
    if rbuf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([rbuf[0], rbuf[1], rbuf[2], rbuf[3]]) as usize;
    if !(HEAD - 4..=MAX_FRAME).contains(&len) {
        return Err(BenchError::new(format!("raw: bad frame length {len}")));
    }
    if rbuf.len() < 4 + len {
        rbuf.reserve(4 + len - rbuf.len());
        return Ok(None);
    }
    let mut whole = rbuf.split_to(4 + len);
    let kind = whole[4];
    let id = u64::from_be_bytes(whole[5..HEAD].try_into().expect("8 bytes"));
    whole.advance(HEAD);
    Ok(Some(Frame {
        kind,
        id,
        body: whole.freeze(),
    }))
}

/// If `rbuf` starts with a whole RESULT frame: that frame and the whole
/// RESULT frames of the same call right after it, heads included, cut as
/// one piece, with their request id. One cut instead of one per result.
fn next_results(rbuf: &mut BytesMut) -> Result<Option<(u64, Bytes)>, BenchError> {
    let mut end = 0;
    let mut run_id = None;
    while let Some((len, kind, id)) = whole_head(&rbuf[end..])? {
        if kind != RESULT || run_id.is_some_and(|r| r != id) {
            break;
        }
        run_id = Some(id);
        end += 4 + len;
    }
    Ok(run_id.map(|id| (id, rbuf.split_to(end).freeze())))
}

/// The length, kind and id of the frame at the start of `buf`, if it is
/// all there.
fn whole_head(buf: &[u8]) -> Result<Option<(usize, u8, u64)>, BenchError> {
    if buf.len() < HEAD {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if !(HEAD - 4..=MAX_FRAME).contains(&len) {
        return Err(BenchError::new(format!("raw: bad frame length {len}")));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let id = u64::from_be_bytes(buf[5..HEAD].try_into().expect("8 bytes"));
    Ok(Some((len, buf[4], id)))
}

/// Reads once into `rbuf`, growing it first if it runs low. `false` at EOF.
async fn fill<R: AsyncRead + Unpin>(r: &mut R, rbuf: &mut BytesMut) -> Result<bool, BenchError> {
    if rbuf.capacity() - rbuf.len() < READ_MIN_FREE {
        rbuf.reserve(READ_CHUNK);
    }
    Ok(r.read_buf(rbuf).await? > 0)
}

// ---------------------------------------------------------------- client

/// What a caller asks the client's writer to send.
enum Request {
    Add { id: u64, a: i64, b: i64 },
    Count { id: u64, n: u64 },
    Echo { id: u64, data: Vec<u8> },
    SlowAdd { id: u64, a: i64, b: i64 },
}

/// Where the reader delivers a call's results.
enum Waiter {
    Once(oneshot::Sender<Bytes>),
    Many(mpsc::UnboundedSender<Vec<Bytes>>),
}

/// Calls in flight; `None` once the connection is gone.
type Pending = Arc<Mutex<Option<IdMap<Waiter>>>>;

fn lock(pending: &Pending) -> std::sync::MutexGuard<'_, Option<IdMap<Waiter>>> {
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Fails every waiting caller (by dropping its sender) and refuses new ones.
fn close(pending: &Pending) {
    let gone = lock(pending).take();
    drop(gone);
}

/// A cloneable handle on one raw connection.
#[derive(Clone)]
pub(crate) struct RawClient {
    out: mpsc::UnboundedSender<Request>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
}

fn lost() -> BenchError {
    BenchError::new("raw: connection lost")
}

impl RawClient {
    /// Connects (with `TCP_NODELAY`) and starts the reader and writer tasks.
    pub(crate) async fn connect(addr: SocketAddr) -> Result<RawClient, BenchError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        Ok(RawClient::start(r, w))
    }

    /// Connects over TLS (to `localhost`, trusting `tls`'s roots); the
    /// stream's halves share a lock, as TLS streams must.
    pub(crate) async fn connect_tls(
        addr: SocketAddr,
        tls: &tokio_rustls::TlsConnector,
    ) -> Result<RawClient, BenchError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost")
            .map_err(|e| BenchError::new(format!("raw: {e}")))?;
        let stream = tls.connect(name, stream).await?;
        let (r, w) = tokio::io::split(stream);
        Ok(RawClient::start(r, w))
    }

    fn start<R, W>(r: R, w: W) -> RawClient
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let (out, requests) = mpsc::unbounded_channel();
        let pending: Pending = Arc::new(Mutex::new(Some(IdMap::default())));
        let woken = Arc::new(AtomicUsize::new(0));
        tokio::spawn(client_writer(w, requests, pending.clone(), woken.clone()));
        tokio::spawn(client_reader(r, pending.clone(), woken));
        RawClient {
            out,
            pending,
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    fn register(&self, waiter: Waiter) -> Result<u64, BenchError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.pending)
            .as_mut()
            .ok_or_else(lost)?
            .insert(id, waiter);
        Ok(id)
    }

    /// Sends the request `make` builds for a fresh request id and decodes
    /// its one result, passed through `map`. The callers return this
    /// future as it is, without an async layer of their own.
    async fn unary<R: serde::de::DeserializeOwned, T>(
        &self,
        make: impl FnOnce(u64) -> Request,
        map: fn(R) -> T,
    ) -> Result<T, BenchError> {
        let (tx, rx) = oneshot::channel();
        let id = self.register(Waiter::Once(tx))?;
        self.out.send(make(id)).map_err(|_| lost())?;
        let body = rx.await.map_err(|_| lost())?;
        Ok(map(Bincode.decode(&body)?))
    }

    /// `a + b`, computed by the server.
    pub(crate) fn add(
        &self,
        a: i64,
        b: i64,
    ) -> impl Future<Output = Result<i64, BenchError>> + Send + '_ {
        self.unary(move |id| Request::Add { id, a, b }, |sum: i64| sum)
    }

    /// `data`, sent back by the server.
    pub(crate) fn echo(
        &self,
        data: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<u8>, BenchError>> + Send + '_ {
        self.unary(move |id| Request::Echo { id, data }, |b: ByteBuf| b.0)
    }

    /// `a + b`, after the server's delay.
    pub(crate) fn slow_add(
        &self,
        a: i64,
        b: i64,
    ) -> impl Future<Output = Result<i64, BenchError>> + Send + '_ {
        self.unary(move |id| Request::SlowAdd { id, a, b }, |sum: i64| sum)
    }

    /// The stream 0, 1, …, n − 1.
    pub(crate) fn count(&self, n: u64) -> Result<RawStream, BenchError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.register(Waiter::Many(tx))?;
        self.out
            .send(Request::Count { id, n })
            .map_err(|_| lost())?;
        Ok(RawStream {
            rx,
            ready: Vec::new().into_iter(),
            run: Bytes::new(),
        })
    }
}

/// The results of a `count` call.
pub(crate) struct RawStream {
    rx: mpsc::UnboundedReceiver<Vec<Bytes>>,
    /// Runs of RESULT frames received and not yet walked.
    ready: std::vec::IntoIter<Bytes>,
    /// The rest of the run being walked.
    run: Bytes,
}

impl RawStream {
    /// The next item, `None` at the end of the stream.
    ///
    /// The end is the END frame; a connection lost halfway also ends the
    /// stream, which the caller notices as too few items.
    pub(crate) async fn next(&mut self) -> Option<Result<u64, BenchError>> {
        while self.run.is_empty() {
            match self.ready.next() {
                Some(run) => self.run = run,
                None => self.ready = self.rx.recv().await?.into_iter(),
            }
        }
        // The reader checked every frame of the run whole.
        let len = u32::from_be_bytes(self.run[..4].try_into().expect("4 bytes")) as usize;
        let item = Bincode.decode(&self.run[HEAD..4 + len]);
        self.run.advance(4 + len);
        Some(item.map_err(BenchError::from))
    }
}

fn put_command<A: Serialize>(
    buf: &mut BytesMut,
    id: u64,
    command: u32,
    args: &A,
) -> Result<(), BenchError> {
    let start = begin(buf, COMMAND, id);
    buf.put_u32(command);
    buf.put_u8(0);
    Bincode.encode(args, buf)?;
    finish(buf, start);
    Ok(())
}

/// Sends everything queued since its last write in one write.
///
/// On a multi-thread runtime a woken task runs next, ahead of the tasks
/// already queued (tokio's LIFO slot), so the writer would otherwise wake
/// after the first of many callers the reader just answered and write for
/// that one alone. When fewer requests are queued than callers were
/// answered since the last write, it yields once to let the others queue
/// theirs. A lone caller never waits.
async fn client_writer<W: AsyncWrite + Unpin>(
    mut w: W,
    mut requests: mpsc::UnboundedReceiver<Request>,
    pending: Pending,
    woken: Arc<AtomicUsize>,
) {
    const BATCH: usize = 1024;
    let mut batch = Vec::with_capacity(BATCH);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let result: Result<(), BenchError> = async {
        while requests.recv_many(&mut batch, BATCH).await > 0 {
            if batch.len() < woken.swap(0, Ordering::Relaxed) {
                to_back_of_queue().await;
                while batch.len() < BATCH {
                    match requests.try_recv() {
                        Ok(req) => batch.push(req),
                        Err(_) => break,
                    }
                }
            }
            for req in batch.drain(..) {
                match req {
                    Request::Add { id, a, b } => put_command(&mut buf, id, ADD, &(a, b))?,
                    Request::Count { id, n } => put_command(&mut buf, id, COUNT, &(n,))?,
                    Request::Echo { id, data } => {
                        put_command(&mut buf, id, ECHO, &(ByteSlice(&data),))?
                    }
                    Request::SlowAdd { id, a, b } => put_command(&mut buf, id, SLOW_ADD, &(a, b))?,
                }
            }
            w.write_all(&buf).await?;
            buf.clear();
        }
        w.shutdown().await?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("{e}");
        close(&pending);
    }
}

/// Lets every other runnable task run first: the task wakes itself and
/// returns, which puts it at the back of the run queue; wakes from callers
/// that queue requests meanwhile find it already scheduled. (`yield_now`
/// would not do: a caller's wake would put it straight back in the LIFO
/// slot.)
async fn to_back_of_queue() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            return std::task::Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

/// Routes every result to its caller by request id.
async fn client_reader<R: AsyncRead + Unpin>(mut r: R, pending: Pending, woken: Arc<AtomicUsize>) {
    if let Err(e) = client_read_loop(&mut r, &pending, &woken).await {
        eprintln!("{e}");
    }
    close(&pending);
}

async fn client_read_loop<R: AsyncRead + Unpin>(
    r: &mut R,
    pending: &Pending,
    woken: &AtomicUsize,
) -> Result<(), BenchError> {
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    // Streams whose first result arrived: the reader owns their senders
    // until the END frame, also after their consumer went away. Each
    // gathers the results of one read and hands them over together.
    let mut streams: IdMap<(mpsc::UnboundedSender<Vec<Bytes>>, Vec<Bytes>)> = IdMap::default();
    while fill(r, &mut rbuf).await? {
        let mut answered = 0;
        loop {
            if let Some((id, run)) = next_results(&mut rbuf)? {
                let (_, batch) = match streams.entry(id) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let waiter = lock(pending).as_mut().and_then(|m| m.remove(&id));
                        match waiter {
                            Some(Waiter::Many(tx)) => e.insert((tx, Vec::new())),
                            _ => return Err(BenchError::new("raw: RESULT for no stream")),
                        }
                    }
                };
                batch.push(run);
                continue;
            }
            let Some(frame) = next_frame(&mut rbuf)? else {
                break;
            };
            match frame.kind {
                RESULT_LAST => {
                    answered += 1;
                    let waiter = lock(pending).as_mut().and_then(|m| m.remove(&frame.id));
                    match waiter {
                        Some(Waiter::Once(tx)) => drop(tx.send(frame.body)),
                        Some(Waiter::Many(_)) => {
                            return Err(BenchError::new("raw: RESULT_LAST for a stream"))
                        }
                        None => return Err(BenchError::new("raw: result for no call")),
                    }
                }
                END => match streams.remove(&frame.id) {
                    // A consumer that stopped listening drops the rest.
                    Some((tx, batch)) if !batch.is_empty() => drop(tx.send(batch)),
                    Some(_) => {}
                    None => {
                        // An empty stream: its sender is still registered.
                        lock(pending).as_mut().and_then(|m| m.remove(&frame.id));
                    }
                },
                kind => return Err(BenchError::new(format!("raw: unexpected kind {kind}"))),
            }
        }
        for (tx, batch) in streams.values_mut() {
            if !batch.is_empty() {
                let _ = tx.send(std::mem::take(batch));
            }
        }
        woken.fetch_add(answered, Ordering::Relaxed);
    }
    Ok(())
}

// ---------------------------------------------------------------- server

/// Accepts connections until the task is aborted; each gets its own reader
/// and writer.
pub(crate) async fn serve(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if stream.set_nodelay(true).is_ok() {
                    tokio::spawn(serve_connection(stream));
                }
            }
            Err(e) => {
                eprintln!("raw: accept failed: {e}");
                return;
            }
        }
    }
}

/// Accepts TLS connections until the task is aborted; each TLS handshake
/// runs in the connection's own task.
pub(crate) async fn serve_tls(listener: TcpListener, tls: tokio_rustls::TlsAcceptor) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if stream.set_nodelay(true).is_ok() {
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls.accept(stream).await {
                            Ok(stream) => {
                                let (r, w) = tokio::io::split(stream);
                                serve_halves(r, w).await;
                            }
                            Err(e) => eprintln!("raw: TLS handshake failed: {e}"),
                        }
                    });
                }
            }
            Err(e) => {
                eprintln!("raw: accept failed: {e}");
                return;
            }
        }
    }
}

async fn serve_connection(stream: TcpStream) {
    let (r, w) = stream.into_split();
    serve_halves(r, w).await;
}

async fn serve_halves<R, W>(mut r: R, w: W)
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    let writer = tokio::spawn(server_writer(w, rx));
    if let Err(e) = server_read_loop(&mut r, tx).await {
        eprintln!("{e}");
    }
    // The reader's sender is gone; the writer ends once the stream tasks'
    // are too.
    let _ = writer.await;
}

/// Answers every `add` of one read, then hands the answers over as one chunk.
async fn server_read_loop<R: AsyncRead + Unpin>(
    r: &mut R,
    tx: mpsc::Sender<BytesMut>,
) -> Result<(), BenchError> {
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = BytesMut::with_capacity(READ_CHUNK);
    while fill(r, &mut rbuf).await? {
        let mut frames = 0usize;
        while let Some(frame) = next_frame(&mut rbuf)? {
            frames += 1;
            if frames.is_multiple_of(WRITE_EVERY) && !out.is_empty() {
                // Hand over what is answered and let the writer send it
                // while the rest of the read is worked through.
                tx.send(out.split())
                    .await
                    .map_err(|_| BenchError::new("raw: server writer gone"))?;
                tokio::task::yield_now().await;
            }
            if frame.kind != COMMAND {
                return Err(BenchError::new(format!(
                    "raw: unexpected kind {}",
                    frame.kind
                )));
            }
            let mut body = frame.body;
            if body.len() < 5 || body[4] != 0 {
                return Err(BenchError::new("raw: bad COMMAND head"));
            }
            let command = body.get_u32();
            body.advance(1);
            match command {
                ADD => {
                    let (a, b): (i64, i64) = Bincode.decode(&body)?;
                    let start = begin(&mut out, RESULT_LAST, frame.id);
                    Bincode.encode(&a.wrapping_add(b), &mut out)?;
                    finish(&mut out, start);
                }
                ECHO => {
                    let (data,): (ByteBuf,) = Bincode.decode(&body)?;
                    let start = begin(&mut out, RESULT_LAST, frame.id);
                    Bincode.encode(&ByteSlice(&data.0), &mut out)?;
                    finish(&mut out, start);
                }
                COUNT => {
                    let (n,): (u64,) = Bincode.decode(&body)?;
                    tokio::spawn(produce(frame.id, n, tx.clone()));
                }
                SLOW_ADD => {
                    let (a, b): (i64, i64) = Bincode.decode(&body)?;
                    tokio::spawn(answer_later(frame.id, a.wrapping_add(b), tx.clone()));
                }
                other => return Err(BenchError::new(format!("raw: unknown command {other}"))),
            }
        }
        if !out.is_empty() {
            tx.send(out.split())
                .await
                .map_err(|_| BenchError::new("raw: server writer gone"))?;
        }
    }
    Ok(())
}

/// Streams 0, 1, …, n − 1 as RESULT frames, then END.
async fn produce(id: u64, n: u64, tx: mpsc::Sender<BytesMut>) {
    let mut buf = BytesMut::with_capacity(2 * STREAM_CHUNK);
    for i in 0..n {
        let start = begin(&mut buf, RESULT, id);
        if let Err(e) = Bincode.encode(&i, &mut buf) {
            eprintln!("raw: {e}");
            return;
        }
        finish(&mut buf, start);
        if buf.len() >= STREAM_CHUNK && tx.send(buf.split()).await.is_err() {
            return;
        }
    }
    let start = begin(&mut buf, END, id);
    finish(&mut buf, start);
    let _ = tx.send(buf.split()).await;
}

/// Sends `sum` as the result of `id` after the `slow_add` delay.
async fn answer_later(id: u64, sum: i64, tx: mpsc::Sender<BytesMut>) {
    tokio::time::sleep(SLOW_DELAY).await;
    let mut buf = BytesMut::with_capacity(32);
    let start = begin(&mut buf, RESULT_LAST, id);
    if let Err(e) = Bincode.encode(&sum, &mut buf) {
        eprintln!("raw: {e}");
        return;
    }
    finish(&mut buf, start);
    let _ = tx.send(buf).await;
}

/// Writes whatever chunks are queued, joined into one write.
async fn server_writer<W: AsyncWrite + Unpin>(mut w: W, mut rx: mpsc::Receiver<BytesMut>) {
    let mut chunks = Vec::with_capacity(64);
    let mut joined = BytesMut::with_capacity(READ_CHUNK);
    while rx.recv_many(&mut chunks, 64).await > 0 {
        let result = if let [one] = &chunks[..] {
            w.write_all(one).await
        } else {
            for c in &chunks {
                joined.extend_from_slice(c);
            }
            let r = w.write_all(&joined).await;
            joined.clear();
            r
        };
        chunks.clear();
        if let Err(e) = result {
            eprintln!("raw: server write failed: {e}");
            return;
        }
    }
    let _ = w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = BytesMut::new();
        put_command(&mut buf, 7, ADD, &(2i64, -3i64)).unwrap();
        let start = begin(&mut buf, END, 9);
        finish(&mut buf, start);
        let f = next_frame(&mut buf).unwrap().unwrap();
        assert_eq!((f.kind, f.id), (COMMAND, 7));
        assert_eq!(&f.body[..5], &[0, 0, 0, 1, 0]);
        let args: (i64, i64) = Bincode.decode(&f.body[5..]).unwrap();
        assert_eq!(args, (2, -3));
        let f = next_frame(&mut buf).unwrap().unwrap();
        assert_eq!((f.kind, f.id, f.body.len()), (END, 9, 0));
        assert!(next_frame(&mut buf).unwrap().is_none());
    }

    #[test]
    fn bad_lengths_are_refused() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, 1, 2, 3][..]);
        assert!(next_frame(&mut buf).is_err());
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        assert!(next_frame(&mut buf).is_err());
    }
}
