//! When a reconnecting client or a group sends a unary call again: the
//! rules ([`Sends`]), and the deadline all its sends share ([`Deadline`]).

use super::connection::Connection;
use crate::error::Error;

/// How many times a reconnecting client sends one call at most: the first
/// time, again for each connection that was lost before the call went out
/// (nothing ran), and once more for an idempotent call that had gone out.
const MAX_SENDS: u32 = 4;

/// How often a reconnecting client has sent one unary call, and whether it
/// may send it again.
pub(crate) struct Sends {
    idempotent: bool,
    count: u32,
    /// The loss of a send that had gone out, once the call was sent again
    /// after it: the call may have run.
    lost_after_sending: Option<Error>,
}

impl Sends {
    pub(crate) fn new(idempotent: bool) -> Self {
        Sends {
            idempotent,
            count: 0,
            lost_after_sending: None,
        }
    }

    /// The error to report: once a send may have run, not one that says
    /// this send never went out (a refusal, an unsent loss, an open
    /// circuit, a dial that failed or was refused).
    pub(crate) fn settle(&self, error: Error) -> Error {
        match (&self.lost_after_sending, &error) {
            (
                Some(lost),
                Error::Unavailable(_)
                | Error::ConnectionLost { sent: false, .. }
                | Error::CircuitOpen { .. }
                | Error::Io(_)
                | Error::Tls(_)
                | Error::Incompatible(_)
                | Error::Unauthenticated(_)
                | Error::PermissionDenied(_)
                | Error::InvalidMetadata(_),
            ) => lost.clone(),
            _ => error,
        }
    }

    /// Counts a send on `conn` that ended in `result`; true if the call is
    /// to be sent again.
    pub(crate) fn again(
        &mut self,
        result: &Result<bytes::Bytes, Error>,
        conn: &Connection,
    ) -> bool {
        self.count += 1;
        match result {
            _ if self.count >= MAX_SENDS => false,
            Err(Error::ConnectionLost { sent: false, .. }) => true,
            // Refused by a server going away: nothing ran. (Refused by one
            // that is merely busy, it would refuse again.)
            Err(Error::Unavailable(_)) => !conn.is_open(),
            Err(lost @ Error::ConnectionLost { sent: true, .. })
                if self.idempotent && self.lost_after_sending.is_none() =>
            {
                self.lost_after_sending = Some(lost.clone());
                true
            }
            _ => false,
        }
    }
}

/// A reconnecting call's deadline, fixed once for all its sends.
#[derive(Clone, Copy)]
pub(crate) struct Deadline {
    pub(crate) at: Option<tokio::time::Instant>,
}

impl Deadline {
    pub(crate) fn after(timeout: Option<std::time::Duration>) -> Self {
        Deadline {
            at: timeout.map(|t| tokio::time::Instant::now() + t),
        }
    }

    /// The time left, as a timeout for the next send.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] once none is left.
    pub(crate) fn left(&self) -> Result<Option<std::time::Duration>, Error> {
        match self.at {
            None => Ok(None),
            Some(at) => match at.checked_duration_since(tokio::time::Instant::now()) {
                Some(left) if !left.is_zero() => Ok(Some(left)),
                _ => Err(Error::Timeout),
            },
        }
    }
}
