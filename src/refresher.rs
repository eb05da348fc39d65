//! The background task that keeps the token fresh.
//!
//! One task per [`MeshxAuth`](crate::MeshxAuth). It sleeps until the refresh point of the current
//! token, wakes early when a request asks for a newer token (a 401, or an expired token), and backs
//! off with full jitter when a login fails. It holds only a weak reference to the shared state
//! while it sleeps, so dropping every handle ends it; so does `shutdown()`.

use crate::error::Error;
use crate::shared::{Shared, Signals};
use crate::source::Source;
use std::future::pending;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::{Instant, sleep_until};

/// How long before a static token's expiry we warn.
pub(crate) const STATIC_TOKEN_WARNING: Duration = Duration::from_secs(10 * 60);

pub(crate) fn spawn(shared: &Arc<Shared>) {
    let weak = Arc::downgrade(shared);
    let signals = shared.signals.clone();
    tokio::spawn(run(weak, signals));
}

/// Withdraws the credential if the task ends while handles still exist (the runtime that ran it
/// shut down): requests then fail with [`Error::Shutdown`] instead of sending a token nobody
/// watches any more.
struct EndGuard(Weak<Shared>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.withdraw();
        }
        tracing::debug!(target: "meshx_auth", "refresher stopped");
    }
}

#[derive(Default)]
struct Backoff {
    failures: u32,
    /// The next attempt, when the last one failed (with and without waiting requests).
    idle_at: Option<Instant>,
    demand_at: Option<Instant>,
    /// When the last successful login *on demand* (a 401) was sent. If its token did not help (a
    /// replay with it got a 401 again), the next login on demand waits until the demand interval
    /// after it: a resource that answers 401 whatever the token must not turn every request into
    /// a login. Otherwise (a plain revoke) the next demand is served at once.
    last_demanded_login: Option<Instant>,
}

async fn run(weak: Weak<Shared>, signals: Arc<Signals>) {
    let _guard = EndGuard(weak.clone());
    let mut backoff = Backoff::default();
    let mut warned = false;
    loop {
        if signals.stop.is_cancelled() {
            return;
        }
        let wake_at = {
            let Some(shared) = weak.upgrade() else { return };
            let current = shared.cell.load_full();
            let now = Instant::now();

            if let Some(expires_at) = current.expires_at {
                if now >= expires_at && !current.is_expired() {
                    shared.expire(&current);
                    expired(&shared);
                }
                let is_static = matches!(shared.source, Source::Static { .. });
                let soon = now + STATIC_TOKEN_WARNING >= expires_at;
                if is_static && !warned && !current.is_expired() && soon {
                    warned = true;
                    tracing::warn!(
                        target: "meshx_auth",
                        expires_in_secs = expires_at.saturating_duration_since(now).as_secs(),
                        "the static MeshX token expires soon: copy a fresh token from the MeshX UI (User Profile, Authentication Token)"
                    );
                }
            }

            let demanded = signals.demanded.load(Ordering::Acquire) >= current.generation;
            let attempt_at = if !shared.source.can_refresh() {
                None
            } else if backoff.failures > 0 {
                if demanded {
                    backoff.demand_at
                } else {
                    backoff.idle_at
                }
            } else if demanded {
                // Spaced only when the token of the last login on demand did not help (a request
                // replayed with it got a 401 again: the resource answers 401 whatever the token).
                // A plain revoke is always served at once.
                let unhelpful = signals.unhelpful.load(Ordering::Acquire) >= current.generation;
                let spaced = backoff
                    .last_demanded_login
                    .filter(|_| unhelpful)
                    .map(|at| at + shared.timing.demand_interval);
                Some(spaced.map_or(now, |at| at.max(now)))
            } else {
                current.refresh_at
            };

            if attempt_at.is_some_and(|at| at <= now) {
                if !attempt(&shared, &signals, &mut backoff, demanded).await {
                    return;
                }
                continue;
            }
            let watch_expiry = current.expires_at.filter(|_| !current.is_expired());
            let warn_at = match shared.source {
                Source::Static { .. } if !warned => {
                    watch_expiry.map(|at| at.checked_sub(STATIC_TOKEN_WARNING).unwrap_or(now))
                }
                _ => None,
            };
            [attempt_at, watch_expiry, warn_at]
                .into_iter()
                .flatten()
                .min()
            // `shared` is dropped here: the task sleeps holding only a weak reference.
        };
        tokio::select! {
            _ = signals.stop.cancelled() => return,
            _ = signals.demand.notified() => {}
            _ = sleep_or_forever(wake_at) => {}
        }
    }
}

async fn sleep_or_forever(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => pending().await,
    }
}

fn expired(shared: &Shared) {
    match &shared.source {
        Source::Static { .. } => tracing::error!(
            target: "meshx_auth",
            "the static MeshX token has expired; requests fail until a fresh token is copied from the MeshX UI (User Profile, Authentication Token)"
        ),
        _ => tracing::warn!(
            target: "meshx_auth",
            "the MeshX token expired before it could be refreshed; requests wait for the next login"
        ),
    }
    // Wake waiting requests so that they can report the failure promptly.
    shared.progress.send_modify(|_| {});
}

/// One login. Returns false when the refresher must stop.
async fn attempt(
    shared: &Arc<Shared>,
    signals: &Signals,
    backoff: &mut Backoff,
    demanded: bool,
) -> bool {
    let sent_at = Instant::now();
    tracing::debug!(target: "meshx_auth", source = shared.source.kind(), "refreshing the MeshX token");
    let timeout = shared.timing.login_timeout;
    let fetch = tokio::time::timeout(timeout, shared.source.fetch());
    tokio::pin!(fetch);
    // A login may outlast the current token: it is still marked expired on time.
    let current = shared.cell.load_full();
    let mut expiry = current.expires_at.filter(|_| !current.is_expired());
    let fetched = loop {
        tokio::select! {
            biased;
            _ = signals.stop.cancelled() => return false,
            fetched = &mut fetch => break fetched.unwrap_or(Err(Error::LoginTimeout(timeout))),
            _ = sleep_or_forever(expiry) => {
                shared.expire(&current);
                expired(shared);
                expiry = None;
            }
        }
    };
    let result = fetched
        .and_then(|token| shared.install(&token, sent_at))
        .and_then(|()| match shared.cell.load().refresh_at {
            // A token due for refresh as soon as it arrives (a zero or tiny lifetime) must not
            // make the refresher fetch again at once, in a loop that never yields: it counts as
            // a failure, and the backoff spaces the next attempts.
            Some(at) if at <= Instant::now() => Err(Error::InvalidAnswer(
                "the token's lifetime is too short to use: it is due for refresh as soon as it arrives"
                    .into(),
            )),
            _ => Ok(()),
        });
    match result {
        Ok(()) => {
            *backoff = Backoff {
                last_demanded_login: demanded.then_some(sent_at),
                ..Backoff::default()
            };
            shared.progress.send_modify(|p| {
                p.finished += 1;
                p.last_error = None;
                p.next_attempt = None;
            });
        }
        Err(error) => {
            backoff.failures = backoff.failures.saturating_add(1);
            let timing = &shared.timing;
            let jittered = timing.backoff.delay(backoff.failures, fastrand::f64());
            let floor = error
                .retry_after()
                .map_or(Duration::ZERO, |d| d.min(crate::backoff::MAX_RETRY_AFTER));
            let now = Instant::now();
            let idle_at = now + jittered.max(floor);
            let demand_at = now + jittered.min(timing.demand_interval).max(floor);
            backoff.idle_at = Some(idle_at);
            backoff.demand_at = Some(demand_at);
            tracing::warn!(
                target: "meshx_auth",
                error = %error,
                consecutive_failures = backoff.failures,
                retry_in_ms = (idle_at - now).as_millis() as u64,
                "MeshX token refresh failed; backing off"
            );
            {
                let mut status = shared.status_data();
                status.last_error = Some(error.clone());
                status.consecutive_failures = backoff.failures;
                status.failed_logins += 1;
            }
            let error = Arc::new(error);
            shared.progress.send_modify(|p| {
                p.finished += 1;
                p.last_error = Some(error);
                p.next_attempt = Some(demand_at);
            });
        }
    }
    true
}
