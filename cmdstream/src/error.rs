//! The one error type users match on.

use std::fmt;
use std::sync::Arc;

use crate::codec::CodecError;

/// Everything that can go wrong with a call or a connection.
///
/// Each variant is a decision the caller can make: retry elsewhere
/// ([`Error::Unavailable`], [`Error::ConnectionLost`]), give up or raise the
/// timeout ([`Error::Timeout`]), fix the program ([`Error::UnknownCommand`],
/// [`Error::Incompatible`], [`Error::Codec`]), or report the server's
/// failure ([`Error::Remote`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The call did not complete before its deadline; it was cancelled on the
    /// server too.
    Timeout,
    /// The connection closed or the peer stopped answering.
    ConnectionLost {
        /// What happened.
        reason: Arc<str>,
        /// Whether any of the call reached the socket. `false`: it was
        /// never sent, so it did not run and retrying is safe. `true`: it
        /// was sent and may or may not have run on the server.
        sent: bool,
    },
    /// The server refused the work: it is at its connection or in-flight
    /// limit, or shutting down. Nothing ran; retrying later is safe.
    Unavailable(Arc<str>),
    /// The command ran on the server and failed there.
    Remote(RemoteError),
    /// The server does not know this command id.
    UnknownCommand {
        /// The command id the server did not recognise.
        id: u32,
    },
    /// A frame was larger than the limit of the side that would receive it.
    FrameTooLarge {
        /// The size of the frame, in bytes.
        size: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// Client and server disagree on the protocol or the command set; the
    /// message names both sides' values.
    Incompatible(Arc<str>),
    /// A payload could not be encoded or decoded with the connection's codec.
    Codec(CodecError),
    /// Metadata given to a call or a connection cannot be sent: a key or
    /// value over 65 535 bytes, more than 64 KiB in all, or more than 256
    /// entries. Nothing was sent.
    InvalidMetadata(Arc<str>),
    /// The peer broke the wire protocol; the connection was closed.
    Protocol(Arc<str>),
    /// The TLS handshake failed, or one side spoke TLS and the other did
    /// not; [`TlsError::kind`] says which way.
    Tls(TlsError),
    /// The server did not accept who the client said it is (its token,
    /// its certificate): the message names why. Nothing ran.
    Unauthenticated(Arc<str>),
    /// The server knows who the client is, and that it may not connect.
    /// Nothing ran.
    PermissionDenied(Arc<str>),
    /// An I/O error while connecting or accepting.
    Io(Arc<std::io::Error>),
    /// The client's [circuit breaker](crate::CircuitBreaker) for this
    /// endpoint is open after repeated failures: the call was not sent.
    CircuitOpen {
        /// The endpoint whose circuit is open.
        endpoint: Arc<str>,
        /// When the breaker lets a probe through.
        retry_in: std::time::Duration,
    },
}

impl Error {
    /// A connection lost; for a call, one that was never sent.
    pub(crate) fn connection_lost(reason: impl Into<Arc<str>>) -> Self {
        Error::ConnectionLost {
            reason: reason.into(),
            sent: false,
        }
    }

    pub(crate) fn unavailable(reason: impl Into<Arc<str>>) -> Self {
        Error::Unavailable(reason.into())
    }

    pub(crate) fn protocol(reason: impl Into<Arc<str>>) -> Self {
        Error::Protocol(reason.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout => f.write_str(
                "the call timed out before a result arrived; it was cancelled on the server (raise the timeout if the command needs longer)",
            ),
            Error::ConnectionLost { reason, sent: true } => write!(
                f,
                "connection lost: {reason}; the call was sent and may or may not have run"
            ),
            Error::ConnectionLost {
                reason,
                sent: false,
            } => write!(
                f,
                "connection lost: {reason}; the call was never sent, so nothing ran"
            ),
            Error::Unavailable(reason) => {
                write!(f, "the server refused the call: {reason}; nothing ran")
            }
            Error::Remote(e) => write!(f, "the command failed on the server: {e}"),
            Error::UnknownCommand { id } => write!(
                f,
                "the server does not know command id {id}; client and server were built from different service definitions"
            ),
            Error::FrameTooLarge { size, max } => write!(
                f,
                "frame of {size} bytes exceeds the limit of {max} bytes; send less per call or raise max_frame_size on both sides"
            ),
            Error::Incompatible(msg) => write!(f, "incompatible peers: {msg}"),
            Error::Codec(e) => write!(f, "{e}"),
            Error::InvalidMetadata(why) => write!(f, "metadata cannot be sent: {why}"),
            Error::Protocol(msg) => {
                write!(f, "protocol violation: {msg}; the connection was closed")
            }
            Error::Tls(e) => write!(f, "{e}"),
            Error::Unauthenticated(why) => {
                write!(f, "the server refused to authenticate the client: {why}")
            }
            Error::PermissionDenied(why) => {
                write!(f, "the server denied the client permission to connect: {why}")
            }
            Error::Io(e) => write!(f, "i/o error: {e}"),
            Error::CircuitOpen { endpoint, retry_in } => write!(
                f,
                "the circuit to {endpoint} is open after repeated failures; nothing was sent, and a probe goes through in {retry_in:?}"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Codec(e) => Some(e),
            Error::Io(e) => Some(&**e),
            Error::Remote(e) => Some(e),
            Error::Tls(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(Arc::new(e))
    }
}

impl From<CodecError> for Error {
    fn from(e: CodecError) -> Self {
        Error::Codec(e)
    }
}

/// Why a TLS connection could not be made.
#[derive(Debug, Clone)]
pub struct TlsError {
    kind: TlsErrorKind,
    message: Arc<str>,
}

/// What went wrong with TLS, as far as a program can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// The peer's certificate is not signed by an authority we trust.
    UnknownIssuer,
    /// The peer's certificate has expired, or is not valid yet.
    Expired,
    /// The server's certificate is not valid for the name dialed.
    NameMismatch,
    /// The server requires a client certificate, and none was sent.
    CertificateRequired,
    /// The peer refused the certificate we presented.
    CertificateRefused,
    /// The peer does not speak TLS: a plaintext server on a TLS client's
    /// dial, say.
    NotTls,
    /// We spoke plaintext to a server that speaks TLS.
    TlsRequired,
    /// The TLS configuration itself is unusable (a key that does not match
    /// its certificate, a file that holds no certificate).
    Config,
    /// Anything else the TLS library reported.
    Other,
}

impl TlsError {
    pub(crate) fn new(kind: TlsErrorKind, message: impl Into<Arc<str>>) -> Self {
        TlsError {
            kind,
            message: message.into(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> TlsErrorKind {
        self.kind
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hint = match self.kind {
            TlsErrorKind::UnknownIssuer => " (trust the CA that signed the peer's certificate)",
            TlsErrorKind::Expired => " (renew the certificate)",
            TlsErrorKind::NameMismatch => {
                " (dial the name the certificate was issued for, or set the server name)"
            }
            TlsErrorKind::CertificateRequired => " (configure a client certificate)",
            TlsErrorKind::NotTls => " (the server speaks plaintext: connect without TLS)",
            TlsErrorKind::TlsRequired => " (the server speaks TLS: connect with TLS)",
            _ => "",
        };
        write!(f, "TLS failed: {}{hint}", self.message)
    }
}

impl std::error::Error for TlsError {}

/// Why a command failed on the server, as the server described it.
#[derive(Debug, Clone)]
pub struct RemoteError {
    /// What kind of failure it was.
    pub code: ErrorCode,
    /// The server's description.
    pub message: Arc<str>,
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.message, self.code)
    }
}

impl std::error::Error for RemoteError {}

/// The error codes of ERROR frames (see `docs/PROTOCOL.md`, §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The server does not know the command id.
    UnknownCommand,
    /// The arguments (or a streamed item) did not decode on the server.
    BadPayload,
    /// The deadline expired on the server.
    DeadlineExceeded,
    /// The command panicked or ended without producing a result.
    Internal,
    /// Too many calls in flight on the connection.
    Overloaded,
    /// The server is shutting down.
    ShuttingDown,
    /// The handler failed and described the failure as text.
    Application,
    /// The result was larger than the client accepts.
    FrameTooLarge,
    /// A code this version does not know.
    Other(u16),
}

impl ErrorCode {
    /// The code's name as spans report it (`rpc.response.status_code`):
    /// `UNKNOWN_COMMAND`, `BAD_PAYLOAD`, `DEADLINE_EXCEEDED`, `INTERNAL`,
    /// `OVERLOADED`, `SHUTTING_DOWN`, `APPLICATION`, `FRAME_TOO_LARGE`, or
    /// `OTHER` for a code this version does not know.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnknownCommand => "UNKNOWN_COMMAND",
            ErrorCode::BadPayload => "BAD_PAYLOAD",
            ErrorCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Overloaded => "OVERLOADED",
            ErrorCode::ShuttingDown => "SHUTTING_DOWN",
            ErrorCode::Application => "APPLICATION",
            ErrorCode::FrameTooLarge => "FRAME_TOO_LARGE",
            ErrorCode::Other(_) => "OTHER",
        }
    }

    /// The code's number on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            ErrorCode::UnknownCommand => 1,
            ErrorCode::BadPayload => 2,
            ErrorCode::DeadlineExceeded => 3,
            ErrorCode::Internal => 4,
            ErrorCode::Overloaded => 5,
            ErrorCode::ShuttingDown => 6,
            ErrorCode::Application => 7,
            ErrorCode::FrameTooLarge => 8,
            ErrorCode::Other(n) => n,
        }
    }

    /// The code for a number read from the wire.
    pub fn from_u16(n: u16) -> Self {
        match n {
            1 => ErrorCode::UnknownCommand,
            2 => ErrorCode::BadPayload,
            3 => ErrorCode::DeadlineExceeded,
            4 => ErrorCode::Internal,
            5 => ErrorCode::Overloaded,
            6 => ErrorCode::ShuttingDown,
            7 => ErrorCode::Application,
            8 => ErrorCode::FrameTooLarge,
            n => ErrorCode::Other(n),
        }
    }
}

/// The result type of cmdstream operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
