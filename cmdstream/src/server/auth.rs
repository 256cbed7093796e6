//! Authentication: a hook that sees a connection's handshake (its
//! metadata and, over TLS, the client's verified certificate) and accepts
//! it with a principal or refuses it, before any command runs.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::hooks::ConnectionInfo;

/// Who a connection's client is, as the authentication hook established:
/// any value, seen again through [`ConnectionInfo::principal`] and
/// [`CallContext::principal`](crate::CallContext::principal).
#[derive(Clone)]
pub struct Principal(Arc<dyn Any + Send + Sync>);

impl Principal {
    /// Wraps `value`.
    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        Principal(Arc::new(value))
    }

    /// The value, if it is a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Principal(..)")
    }
}

/// Why the authentication hook refused a connection; the client gets the
/// matching [`Error`](crate::Error) with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// Who the client is could not be established (no token, a bad one,
    /// an unknown certificate): [`Error::Unauthenticated`](crate::Error::Unauthenticated).
    Unauthenticated(String),
    /// The client is known and may not connect:
    /// [`Error::PermissionDenied`](crate::Error::PermissionDenied).
    PermissionDenied(String),
}

impl AuthError {
    /// The client could not be identified, for `reason`.
    pub fn unauthenticated(reason: impl Into<String>) -> Self {
        AuthError::Unauthenticated(reason.into())
    }

    /// The client may not connect, for `reason`.
    pub fn permission_denied(reason: impl Into<String>) -> Self {
        AuthError::PermissionDenied(reason.into())
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Unauthenticated(why) => write!(f, "unauthenticated: {why}"),
            AuthError::PermissionDenied(why) => write!(f, "permission denied: {why}"),
        }
    }
}

impl std::error::Error for AuthError {}

type Verdict = Pin<Box<dyn Future<Output = Result<Principal, AuthError>> + Send>>;

/// The hook, boxed: one boxed future per connection.
pub(crate) type Authenticator = Arc<dyn Fn(&ConnectionInfo) -> Verdict + Send + Sync>;

pub(crate) fn boxed<F, Fut>(hook: F) -> Authenticator
where
    F: Fn(&ConnectionInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Principal, AuthError>> + Send + 'static,
{
    Arc::new(move |info| Box::pin(hook(info)))
}
