//! How a call ended, in the few words spans and metrics use for it.

use crate::error::{Error, ErrorCode};

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A result (for a stream, its end).
    Ok,
    /// The receiver failed with an application error.
    ApplicationError,
    /// Another failure: the server's code, or the client's reason, named.
    Error(&'static str),
    /// The deadline passed first.
    Timeout,
    /// The caller stopped waiting (client), or the command was stopped
    /// before it answered (server).
    Cancelled,
    /// The connection ended under the call.
    ConnectionLost,
    /// Refused before it ran: the server is overloaded or going away, or a
    /// circuit is open.
    Unavailable(&'static str),
}

impl Outcome {
    /// How a client's call that returned `result` ended.
    pub(crate) fn of<T>(result: &Result<T, Error>) -> Self {
        match result {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::of_error(e),
        }
    }

    /// How a client's call that failed with `error` ended.
    pub(crate) fn of_error(error: &Error) -> Self {
        match error {
            Error::Remote(remote) => Outcome::of_code(remote.code),
            Error::Timeout => Outcome::Timeout,
            Error::ConnectionLost { .. } => Outcome::ConnectionLost,
            Error::Unavailable(_) => Outcome::Unavailable("UNAVAILABLE"),
            Error::CircuitOpen { .. } => Outcome::Unavailable("CIRCUIT_OPEN"),
            Error::UnknownCommand { .. } => Outcome::Error("UNKNOWN_COMMAND"),
            Error::FrameTooLarge { .. } => Outcome::Error("FRAME_TOO_LARGE"),
            Error::Codec(_) => Outcome::Error("CODEC"),
            Error::InvalidMetadata(_) => Outcome::Error("INVALID_METADATA"),
            Error::Protocol(_) => Outcome::Error("PROTOCOL"),
            Error::Incompatible(_) => Outcome::Error("INCOMPATIBLE"),
            Error::Tls(_) => Outcome::Error("TLS"),
            Error::Unauthenticated(_) => Outcome::Error("UNAUTHENTICATED"),
            Error::PermissionDenied(_) => Outcome::Error("PERMISSION_DENIED"),
            Error::Io(_) => Outcome::Error("IO"),
        }
    }

    /// How a call answered with `code` ended.
    pub(crate) fn of_code(code: ErrorCode) -> Self {
        match code {
            ErrorCode::Application => Outcome::ApplicationError,
            ErrorCode::DeadlineExceeded => Outcome::Timeout,
            ErrorCode::Overloaded | ErrorCode::ShuttingDown => Outcome::Unavailable(code.as_str()),
            code => Outcome::Error(code.as_str()),
        }
    }

    /// The outcome's name: the `outcome` label of the metrics and the
    /// `cmdstream.outcome` field of spans; for a failure, also its
    /// `error.type`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ApplicationError => "application_error",
            Outcome::Error(_) => "error",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::ConnectionLost => "connection_lost",
            Outcome::Unavailable(_) => "unavailable",
        }
    }

    /// The status, as `rpc.response.status_code` names it.
    pub(crate) fn status(self) -> &'static str {
        match self {
            Outcome::Ok => "OK",
            Outcome::ApplicationError => "APPLICATION",
            Outcome::Error(code) | Outcome::Unavailable(code) => code,
            Outcome::Timeout => "DEADLINE_EXCEEDED",
            Outcome::Cancelled => "CANCELLED",
            Outcome::ConnectionLost => "CONNECTION_LOST",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RemoteError;

    #[test]
    fn every_failure_has_a_label_and_a_status() {
        let remote = |code| {
            Error::Remote(RemoteError {
                code,
                message: "m".into(),
            })
        };
        let cases = [
            (
                remote(ErrorCode::Application),
                "application_error",
                "APPLICATION",
            ),
            (remote(ErrorCode::Internal), "error", "INTERNAL"),
            (
                remote(ErrorCode::DeadlineExceeded),
                "timeout",
                "DEADLINE_EXCEEDED",
            ),
            (remote(ErrorCode::Overloaded), "unavailable", "OVERLOADED"),
            (Error::Timeout, "timeout", "DEADLINE_EXCEEDED"),
            (
                Error::connection_lost("x"),
                "connection_lost",
                "CONNECTION_LOST",
            ),
            (Error::unavailable("x"), "unavailable", "UNAVAILABLE"),
        ];
        for (error, label, status) in cases {
            let outcome = Outcome::of_error(&error);
            assert_eq!(
                (outcome.label(), outcome.status()),
                (label, status),
                "{error}"
            );
        }
        assert_eq!(Outcome::of(&Ok::<_, Error>(())).status(), "OK");
    }
}
