//! The crate's error type.
//!
//! Every message is written for the person who reads the log: it says what failed and what to do,
//! and it never contains a password or a token.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Everything that can go wrong in `meshx-auth`.
///
/// Failures of the middleware itself reach the caller as a [`tower::BoxError`]; downcast it to
/// `meshx_auth::Error` to inspect them:
///
/// ```
/// # fn handle(err: tower::BoxError) {
/// if let Some(auth) = err.downcast_ref::<meshx_auth::Error>() {
///     eprintln!("no MeshX credentials: {auth}");
/// }
/// # }
/// ```
///
/// The type is `Clone` so that one failed refresh can be reported to every request that waited for
/// it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The builder or the environment was given something unusable.
    #[error("invalid meshx-auth configuration: {0}")]
    Config(String),

    /// The IAM answered the login with 400, 401 or 403: the user or the password is wrong, or the
    /// account cannot log in.
    #[error(
        "MeshX rejected the credentials (HTTP {status} from {url}): check the user name and the password"
    )]
    CredentialsRejected {
        /// HTTP status of the login answer.
        status: u16,
        /// The login URL.
        url: String,
    },

    /// The IAM answered the login with an unexpected status (5xx, 429, ...).
    #[error("MeshX login failed: HTTP {status} from {url}")]
    LoginStatus {
        /// HTTP status of the login answer.
        status: u16,
        /// The login URL.
        url: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },

    /// The login did not complete within the login timeout.
    #[error("MeshX login timed out after {0:?}")]
    LoginTimeout(Duration),

    /// The IAM could not be reached, or the connection broke.
    #[error("could not reach the MeshX IAM: {0}")]
    Transport(Arc<reqwest::Error>),

    /// The IAM answered 200 with something that is not a usable login answer.
    #[error("invalid MeshX login answer: {0}")]
    InvalidAnswer(String),

    /// A user-supplied [`TokenSource`](crate::TokenSource) failed.
    #[error("the token source failed: {0}")]
    Source(String),

    /// No valid token could be had for a request: the token expired and the refresh failed, or did
    /// not finish within the login timeout. No request was sent.
    #[error("no valid MeshX token, request not sent: {0}")]
    TokenUnavailable(Arc<Error>),

    /// The static token copied from the UI has expired (its JWT `exp` claim has passed).
    #[error(
        "the static MeshX token expired at {} (unix time): copy a fresh token from the MeshX UI (User Profile, Authentication Token)",
        unix_secs(*expired_at)
    )]
    StaticTokenExpired {
        /// When the token expired.
        expired_at: SystemTime,
    },

    /// The API rejected the static token copied from the UI; it cannot be refreshed.
    #[error(
        "the MeshX API rejected the static token: copy a fresh token from the MeshX UI (User Profile, Authentication Token)"
    )]
    StaticTokenRejected,

    /// [`MeshxAuth::shutdown`](crate::MeshxAuth::shutdown) was called, or the runtime that ran the
    /// refresher stopped: no credentials are sent any more.
    #[error(
        "meshx-auth was shut down (shutdown() was called, or the tokio runtime that ran its refresher ended): no credentials are sent any more"
    )]
    Shutdown,

    /// A call to the MeshX API made by this crate (such as listing organizations) failed.
    #[error("MeshX API call failed: {0}")]
    Api(String),
}

impl Error {
    /// True when retrying later may help (network trouble, 5xx, 429, timeouts); false when the
    /// configuration or the credentials must change first.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::LoginStatus { .. } | Error::LoginTimeout(_) | Error::Transport(_) => true,
            Error::InvalidAnswer(_) | Error::Source(_) | Error::Api(_) => true,
            Error::TokenUnavailable(inner) => inner.is_transient(),
            _ => false,
        }
    }

    /// The `Retry-After` the IAM asked for, if any.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::LoginStatus { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn transport(mut err: reqwest::Error) -> Self {
        // reqwest keeps the URL in its errors; ours never carry user info (the builder refuses it),
        // and the query string is dropped, so nothing secret can show.
        if let Some(url) = err.url_mut() {
            url.set_query(None);
            url.set_fragment(None);
        }
        Error::Transport(Arc::new(err))
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
