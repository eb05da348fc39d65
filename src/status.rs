//! [`AuthStatus`]: what a `MeshxAuth` can tell about itself.

use crate::error::Error;
use std::time::SystemTime;

/// A snapshot of a [`MeshxAuth`](crate::MeshxAuth)'s state, for health checks and metrics.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthStatus {
    /// When the current token stops working (`None`: no known expiry).
    pub valid_until: Option<SystemTime>,
    /// The current token's generation: 1 for the first, one more for each new token.
    pub generation: u64,
    /// The current token has expired (or was withdrawn by shutdown) and is not sent.
    pub expired: bool,
    /// The error of the last failed refresh, cleared by the next success.
    pub last_error: Option<Error>,
    /// Failed refreshes since the last success.
    pub consecutive_failures: u32,
    /// Successful logins (or fetches from a custom source), the first one included.
    pub logins: u64,
    /// Failed login attempts.
    pub failed_logins: u64,
    /// Requests re-sent after a 401 or UNAUTHENTICATED.
    pub retries: u64,
    /// The refresher has stopped (shutdown, or every handle dropped).
    pub stopped: bool,
    /// `"password login"`, `"static token"` or `"custom token source"`.
    pub source: &'static str,
}
