//! The state every handle, layer, service and in-flight request shares.

use crate::backoff::Backoff;
use crate::credential::{Credential, TokenCell};
use crate::error::Error;
use crate::login;
use crate::source::{Source, Token};
use crate::status::AuthStatus;
use http::HeaderValue;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How much earlier than its real end a token stops being sent, at most.
pub(crate) const EXPIRY_SAFETY: Duration = Duration::from_secs(1);

/// Timing settings, fixed at build time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) login_timeout: Duration,
    pub(crate) refresh_margin: Duration,
    pub(crate) refresh_jitter: Duration,
    pub(crate) backoff: Backoff,
    pub(crate) demand_interval: Duration,
}

impl Timing {
    /// How long after the login was sent the next refresh should start: `lifetime` minus a margin
    /// (capped at a quarter of the lifetime, so a 1-second token refreshes after 0.7-0.75 s)
    /// minus random jitter (capped at a twentieth of the lifetime). `unit` is in `[0, 1)`.
    pub(crate) fn refresh_after(&self, lifetime: Duration, unit: f64) -> Duration {
        let margin = self.refresh_margin.min(lifetime / 4);
        let jitter = self
            .refresh_jitter
            .min(lifetime / 20)
            .mul_f64(unit.clamp(0.0, 1.0));
        lifetime.saturating_sub(margin).saturating_sub(jitter)
    }
}

/// Signals between the handles and the refresher. Kept apart from [`Shared`] so that the
/// refresher can wait on them without keeping `Shared` alive.
#[derive(Debug, Default)]
pub(crate) struct Signals {
    /// Wakes the refresher (a stored permit, so no wake-up is lost).
    pub(crate) demand: Notify,
    /// The highest generation some request found unusable (401 or expired).
    pub(crate) demanded: AtomicU64,
    /// The highest generation a *replayed* request got a 401 with: a new token did not help.
    pub(crate) unhelpful: AtomicU64,
    /// Cancelled by `shutdown()` or when the last handle is dropped.
    pub(crate) stop: CancellationToken,
}

/// What the refresher publishes after each attempt, for requests waiting on it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    /// Attempts finished so far.
    pub(crate) finished: u64,
    /// The error of the last attempt; `None` when it succeeded.
    pub(crate) last_error: Option<Arc<Error>>,
    /// When the refresher will try next, while it is backing off.
    pub(crate) next_attempt: Option<Instant>,
    /// The refresher has stopped.
    pub(crate) stopped: bool,
}

/// Counters and facts for [`AuthStatus`]; never touched on the request path.
#[derive(Debug, Default)]
pub(crate) struct StatusData {
    pub(crate) valid_until: Option<SystemTime>,
    pub(crate) last_error: Option<Error>,
    pub(crate) consecutive_failures: u32,
    pub(crate) logins: u64,
    pub(crate) failed_logins: u64,
}

pub(crate) struct Shared {
    /// Unique for the life of the process (thread-local copies are keyed by it).
    pub(crate) id: u64,
    pub(crate) cell: TokenCell,
    /// `generation << 1 | expired` of the current credential: what the request path reads (one
    /// plain atomic load) to know whether its thread's copy is current (see local.rs). The cell
    /// stays the source of truth; this word is published after it.
    pub(crate) state: AtomicU64,
    pub(crate) org: HeaderValue,
    pub(crate) org_name: String,
    pub(crate) api_url: reqwest::Url,
    pub(crate) http: reqwest::Client,
    pub(crate) source: Source,
    pub(crate) timing: Timing,
    pub(crate) signals: Arc<Signals>,
    pub(crate) progress: watch::Sender<Progress>,
    pub(crate) status: Mutex<StatusData>,
    pub(crate) retries: AtomicU64,
    pub(crate) retry_on_unauthorized: bool,
    /// `None`: every request receives the credentials.
    pub(crate) scope: Option<crate::scope::Scope>,
}

/// The `expired` bit of [`Shared::state`].
pub(crate) const EXPIRED: u64 = 1;

/// [`Shared::state`] for a credential.
pub(crate) const fn state_word(generation: u64, expired: bool) -> u64 {
    generation << 1 | expired as u64
}

/// A fresh [`Shared::id`].
pub(crate) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle is gone: the refresher ends.
        self.signals.stop.cancel();
    }
}

impl Shared {
    pub(crate) fn status_data(&self) -> MutexGuard<'_, StatusData> {
        // A panic while holding this lock cannot leave the counters in a state worth refusing.
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Turns a fetched token into the current credential. `sent_at` is when the request for it
    /// was sent: the lifetime counts from then.
    pub(crate) fn install(&self, token: &Token, sent_at: Instant) -> Result<(), Error> {
        let generation = self.cell.load().generation + 1;
        let credential = make_credential(
            token,
            sent_at,
            generation,
            &self.timing,
            self.source.can_refresh(),
        )?;
        let (expires_at, refresh_at) = (credential.expires_at, credential.refresh_at);
        self.cell.store(credential);
        self.state
            .store(state_word(generation, false), Ordering::Release);
        {
            let mut status = self.status_data();
            status.valid_until = expires_at.map(system_time);
            status.last_error = None;
            status.consecutive_failures = 0;
            status.logins += 1;
        }
        log_new_token(generation, self.source.kind(), token, refresh_at);
        Ok(())
    }

    /// Marks `credential` expired: it is not sent any more.
    pub(crate) fn expire(&self, credential: &Credential) {
        credential.mark_expired();
        let live = state_word(credential.generation, false);
        // A no-op when the state has moved on to a newer credential.
        let _ =
            self.state
                .compare_exchange(live, live | EXPIRED, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// Stops the refresher and withdraws the credential: nothing is sent after this.
    pub(crate) fn withdraw(&self) {
        self.signals.stop.cancel();
        self.expire(&self.cell.load());
        self.progress.send_modify(|p| p.stopped = true);
    }

    /// A credential newer than `generation` that may be sent, waiting (at most the login timeout)
    /// for the refresher when there is none yet. Many requests may wait at once; they share the one
    /// refresh (single flight), and giving up (dropping this future) cancels nothing.
    pub(crate) async fn fresh_credential(&self, generation: u64) -> Result<Arc<Credential>, Error> {
        let current = self.cell.load_full();
        if current.is_fresh_after(generation) {
            return Ok(current);
        }
        if self.signals.stop.is_cancelled() {
            return Err(Error::Shutdown);
        }
        if let Source::Static { expires_at, .. } = &self.source {
            return Err(match expires_at {
                Some(at) if current.is_expired() => Error::StaticTokenExpired { expired_at: *at },
                _ => Error::StaticTokenRejected,
            });
        }
        let mut progress = self.progress.subscribe();
        let seen = progress.borrow_and_update().finished;
        self.signals
            .demanded
            .fetch_max(generation, Ordering::AcqRel);
        self.signals.demand.notify_one();

        let timeout = self.timing.login_timeout;
        let deadline = Instant::now() + timeout;
        let wait = async {
            loop {
                let current = self.cell.load_full();
                if current.is_fresh_after(generation) {
                    return Ok(current);
                }
                {
                    let p = progress.borrow_and_update();
                    if p.stopped {
                        return Err(Error::Shutdown);
                    }
                    if let Some(error) = &p.last_error {
                        // A failure that happened after we asked, or a backoff that ends too late
                        // to help: say why now rather than wait.
                        let late = p.next_attempt.is_some_and(|t| t >= deadline);
                        if p.finished > seen || late {
                            return Err(Error::TokenUnavailable(error.clone()));
                        }
                    }
                }
                if progress.changed().await.is_err() {
                    return Err(Error::Shutdown);
                }
            }
        };
        match tokio::time::timeout_at(deadline, wait).await {
            Ok(result) => result,
            Err(_) => Err(Error::TokenUnavailable(
                progress
                    .borrow()
                    .last_error
                    .clone()
                    .unwrap_or_else(|| Arc::new(Error::LoginTimeout(timeout))),
            )),
        }
    }

    pub(crate) fn status(&self) -> AuthStatus {
        let data = self.status_data();
        AuthStatus {
            valid_until: data.valid_until,
            generation: self.cell.load().generation,
            expired: self.cell.load().is_expired(),
            last_error: data.last_error.clone(),
            consecutive_failures: data.consecutive_failures,
            logins: data.logins,
            failed_logins: data.failed_logins,
            retries: self.retries.load(Ordering::Relaxed),
            stopped: self.signals.stop.is_cancelled(),
            source: self.source.kind(),
        }
    }
}

/// Validates a token and prepares its credential: the header value is built here, once.
pub(crate) fn make_credential(
    token: &Token,
    sent_at: Instant,
    generation: u64,
    timing: &Timing,
    can_refresh: bool,
) -> Result<Credential, Error> {
    use secrecy::ExposeSecret;
    let secret = token.access_token.expose_secret();
    login::validate_token(secret)?;
    let authorization = login::bearer_header(secret)?;
    let (expires_at, refresh_at) = match token.lifetime {
        Some(lifetime) => {
            let lifetime = lifetime.min(login::MAX_TOKEN_LIFETIME);
            let refresh_at =
                can_refresh.then(|| sent_at + timing.refresh_after(lifetime, fastrand::f64()));
            // Stop sending a little before the end (a twentieth of the lifetime, at most
            // EXPIRY_SAFETY), so that a late timer on a loaded machine never lets an expired
            // token out. The refresh point comes well before.
            let safety = (lifetime / 20).min(EXPIRY_SAFETY);
            (Some(sent_at + lifetime - safety), refresh_at)
        }
        None => (None, None),
    };
    Ok(Credential::new(
        authorization,
        generation,
        expires_at,
        refresh_at,
    ))
}

pub(crate) fn log_new_token(
    generation: u64,
    source: &'static str,
    token: &Token,
    refresh_at: Option<Instant>,
) {
    tracing::info!(
        target: "meshx_auth",
        generation,
        source,
        expires_in_secs = token.lifetime.map(|l| l.as_secs()),
        refresh_in_secs = refresh_at.map(|r| r.saturating_duration_since(Instant::now()).as_secs()),
        "new MeshX token"
    );
}

/// The wall-clock time of a (tokio) instant, for people to read.
pub(crate) fn system_time(at: Instant) -> SystemTime {
    let now = Instant::now();
    if at >= now {
        SystemTime::now() + (at - now)
    } else {
        SystemTime::now() - (now - at)
    }
}
