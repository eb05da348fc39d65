//! The credential a request carries, and the lock-free cell that holds the current one.

use arc_swap::ArcSwap;
use http::HeaderValue;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::time::Instant;

/// One token, ready to be sent: the `Authorization` value is built once, here, and cloned (a
/// reference count) into each request.
pub(crate) struct Credential {
    /// `Bearer <token>`, marked sensitive.
    pub(crate) authorization: HeaderValue,
    /// Increases by one with every new token; a 401 is matched to the token that caused it.
    pub(crate) generation: u64,
    /// When the token stops working, measured from when its login was sent. `None`: never.
    pub(crate) expires_at: Option<Instant>,
    /// When the refresher should fetch the next one. `None`: never.
    pub(crate) refresh_at: Option<Instant>,
    /// Set by the refresher when `expires_at` passes (or on shutdown): from then on the token is
    /// not sent. A flag rather than a clock read keeps `Instant::now()` off the request path.
    expired: AtomicBool,
}

impl Credential {
    pub(crate) fn new(
        authorization: HeaderValue,
        generation: u64,
        expires_at: Option<Instant>,
        refresh_at: Option<Instant>,
    ) -> Self {
        Credential {
            authorization,
            generation,
            expires_at,
            refresh_at,
            expired: AtomicBool::new(false),
        }
    }

    /// True when this token may not be sent.
    #[inline]
    pub(crate) fn is_expired(&self) -> bool {
        self.expired.load(Ordering::Acquire)
    }

    pub(crate) fn mark_expired(&self) {
        self.expired.store(true, Ordering::Release);
    }

    /// True when the token is usable and newer than `generation`.
    pub(crate) fn is_fresh_after(&self, generation: u64) -> bool {
        self.generation > generation && !self.is_expired()
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("authorization", &"Bearer [REDACTED]")
            .field("generation", &self.generation)
            .field("expires_at", &self.expires_at)
            .field("expired", &self.is_expired())
            .finish()
    }
}

/// The shared cell: readers `load()` without a lock; the refresher `store()`s a new credential.
pub(crate) struct TokenCell {
    current: ArcSwap<Credential>,
}

impl TokenCell {
    pub(crate) fn new(first: Credential) -> Self {
        TokenCell {
            current: ArcSwap::from_pointee(first),
        }
    }

    /// A short-lived guard for the request path. Never hold it across an `.await`.
    #[inline]
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<Credential>> {
        self.current.load()
    }

    /// An owned reference, for code that keeps it.
    pub(crate) fn load_full(&self) -> Arc<Credential> {
        self.current.load_full()
    }

    pub(crate) fn store(&self, credential: Credential) {
        self.current.store(Arc::new(credential));
    }
}
