//! The fault matrix: each IAM or API fault, over real HTTP against the fake server, as its own
//! test. For every case: no panic, no hang (every request ends within the login timeout plus a
//! little), no request without credentials (the fake counts requests without a bearer token and
//! requests with an expired one), a bounded number of login attempts (the bound is written in each
//! test), and recovery once the fault ends, without rebuilding anything.

use crate::common::*;
use crate::proxy::{Mode, Proxy};
use meshx_auth::MeshxAuth;
use meshx_auth::testing::{FakeMeshx, LoginFault};
use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt};

/// How long each fault lasts: longer than the token lifetime, so the token expires during it.
const FAULT: Duration = Duration::from_millis(2_000);
/// A request every so often during the fault.
const EVERY: Duration = Duration::from_millis(25);
/// No request may take longer than the login timeout plus this.
const SLACK: Duration = Duration::from_millis(400);
/// Once the fault ends, a request must succeed within this.
const RECOVERY: Duration = Duration::from_secs(3);

/// Login attempts a fault that fails at once may cost during `fault`. Full jitter has no lower
/// bound per attempt, so the bound is statistical: after the first few failures the ceiling is the
/// cap, the mean gap half of it; a few attempts of ramp-up, then at most twice the expected count.
/// (Mean for 2 s: ~12; bound: 28; the chance of exceeding it is below 1e-6.)
fn bound_fast_failures(fault: Duration) -> u64 {
    8 + 2 * (fault.as_millis() / (BACKOFF_CAP.as_millis() / 2)) as u64
}

/// Login attempts a fault that fails by timing out may cost: each attempt lasts the login timeout.
fn bound_timeouts(fault: Duration) -> u64 {
    2 + (fault.as_millis() / LOGIN_TIMEOUT.as_millis()) as u64
}

/// The client's count of login attempts (successes and failures, the first one included).
fn attempts(auth: &MeshxAuth) -> u64 {
    let status = auth.status();
    status.logins + status.failed_logins
}

struct Setup {
    fake: FakeMeshx,
    auth: MeshxAuth,
    proxy: Option<Proxy>,
}

async fn setup(lifetime: Duration, through_proxy: bool) -> Setup {
    let fake = FakeMeshx::builder().token_lifetime(lifetime).start().await;
    let proxy = if through_proxy {
        Some(Proxy::start(fake.addr()).await)
    } else {
        None
    };
    let url = proxy
        .as_ref()
        .map_or_else(|| fake.api_url(), Proxy::api_url);
    let auth = within(Duration::from_secs(5), builder(&fake, &url).build())
        .await
        .expect("first login");
    Setup { fake, auth, proxy }
}

/// Runs one fault: `on` before, `off` after; checks the invariants and returns what happened.
async fn run_fault(
    s: &Setup,
    name: &str,
    expect_refusals: bool,
    max_attempts: u64,
    on: impl AsyncFnOnce(),
    off: impl AsyncFnOnce(),
) -> Outcomes {
    let mut client = ServiceBuilder::new()
        .layer(s.auth.layer())
        .service(http_client());
    let warm = within(
        Duration::from_secs(5),
        client
            .ready()
            .await
            .unwrap()
            .call(get(&s.fake, "/api/warm")),
    )
    .await
    .unwrap();
    assert_eq!(warm.status(), 200);

    let before = attempts(&s.auth);
    on().await;
    let out = drive(
        &mut client,
        &s.fake,
        FAULT,
        EVERY,
        LOGIN_TIMEOUT + Duration::from_secs(2),
    )
    .await;
    off().await;
    let during = attempts(&s.auth) - before;
    eprintln!(
        "[fault matrix] {name}: {during} login attempts during {FAULT:?} (bound {max_attempts}); \
         ok {}, 401 {}, refused {} {:?}, slowest {:?}",
        out.ok,
        out.unauthorized,
        out.refused.len(),
        out.refused
            .iter()
            .collect::<std::collections::BTreeSet<_>>(),
        out.slowest,
    );

    assert!(
        out.other_errors.is_empty(),
        "{name}: {:?}",
        out.other_errors
    );
    assert!(
        out.slowest <= LOGIN_TIMEOUT + SLACK,
        "{name}: a request took {:?}",
        out.slowest
    );
    assert!(
        out.refused
            .iter()
            .all(|r| r.starts_with("TokenUnavailable(")),
        "{name}: {:?}",
        out.refused
    );
    if expect_refusals {
        assert!(
            !out.refused.is_empty(),
            "{name}: the token should have expired during the fault"
        );
    }
    assert_eq!(
        s.fake.missing_credentials(),
        0,
        "{name}: sent without credentials"
    );
    // A token stops being sent a twentieth of its lifetime before its end, so a late timer on a
    // loaded machine does not let an expired one out.
    assert_eq!(
        s.fake.expired_seen(),
        0,
        "{name}: sent expired tokens {} times",
        s.fake.expired_seen()
    );
    assert!(
        during <= max_attempts,
        "{name}: {during} login attempts during the fault, bound {max_attempts}"
    );

    // Recovery: the same client works again, nothing rebuilt.
    let healed_by = tokio::time::Instant::now() + RECOVERY;
    let mut healed = false;
    while tokio::time::Instant::now() < healed_by {
        let result = within(
            LOGIN_TIMEOUT + SLACK,
            client
                .ready()
                .await
                .unwrap()
                .call(get(&s.fake, "/api/after")),
        )
        .await;
        if result.is_ok_and(|r| r.status() == 200) {
            healed = true;
            break;
        }
        tokio::time::sleep(EVERY).await;
    }
    assert!(healed, "{name}: no recovery within {RECOVERY:?}");
    assert!(
        eventually(Duration::from_secs(1), || {
            let st = s.auth.status();
            st.consecutive_failures == 0 && !st.expired && st.last_error.is_none()
        })
        .await,
        "{name}: status after recovery {:?}",
        s.auth.status()
    );
    assert_eq!(
        s.fake.missing_credentials(),
        0,
        "{name}: sent without credentials"
    );
    out
}

async fn iam_status(code: u16) {
    let s = setup(TOKEN_LIFETIME, false).await;
    let out = run_fault(
        &s,
        &format!("IAM answers {code}"),
        true,
        bound_fast_failures(FAULT),
        async || s.fake.set_login_fault(Some(LoginFault::Status(code))),
        async || s.fake.set_login_fault(None),
    )
    .await;
    assert!(out.ok > 0, "requests worked while the token was valid");
    let last = s.auth.status().last_error;
    assert!(last.is_none(), "healed: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_answers_500() {
    iam_status(500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_answers_502() {
    iam_status(502).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_answers_503() {
    iam_status(503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_answers_429() {
    iam_status(429).await;
}

/// 429 and 503 with `Retry-After: 1`: no attempt comes sooner than a second after the previous
/// one, so during 2 s at most 2 more attempts (plus the one in flight when the fault began)
/// instead of the ~12 plain backoff would make.
async fn iam_status_with_retry_after(code: u16) {
    let s = setup(TOKEN_LIFETIME, false).await;
    let retry_after = Duration::from_secs(1);
    let bound = 2 + (FAULT.as_millis() / retry_after.as_millis()) as u64;
    let out = run_fault(
        &s,
        &format!("IAM answers {code} with Retry-After: 1"),
        true,
        bound,
        async || {
            s.fake
                .set_login_fault(Some(LoginFault::StatusWithRetryAfter(
                    code,
                    retry_after.as_secs(),
                )))
        },
        async || s.fake.set_login_fault(None),
    )
    .await;
    // A backoff that ends after the request's deadline is reported at once, not waited for.
    assert!(out.slowest <= LOGIN_TIMEOUT + SLACK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_answers_429_with_retry_after() {
    iam_status_with_retry_after(429).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_answers_503_with_retry_after() {
    iam_status_with_retry_after(503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_refuses_connections() {
    let s = setup(TOKEN_LIFETIME, true).await;
    let proxy = s.proxy.as_ref().unwrap();
    let out = run_fault(
        &s,
        "IAM refuses connections",
        true,
        bound_fast_failures(FAULT),
        async || proxy.set_mode(Mode::Refuse).await,
        async || proxy.set_mode(Mode::Forward).await,
    )
    .await;
    assert!(
        out.refused
            .iter()
            .any(|r| r == "TokenUnavailable(Transport)"),
        "{:?}",
        out.refused
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_accepts_connections_and_never_answers() {
    let s = setup(TOKEN_LIFETIME, true).await;
    let proxy = s.proxy.as_ref().unwrap();
    let out = run_fault(
        &s,
        "IAM accepts TCP, never answers",
        true,
        bound_timeouts(FAULT),
        async || proxy.set_mode(Mode::BlackHole).await,
        async || proxy.set_mode(Mode::Forward).await,
    )
    .await;
    assert!(
        out.refused
            .iter()
            .any(|r| r == "TokenUnavailable(LoginTimeout)"),
        "{:?}",
        out.refused
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_reads_the_request_and_never_answers() {
    let s = setup(TOKEN_LIFETIME, false).await;
    run_fault(
        &s,
        "IAM reads the login, never answers",
        true,
        bound_timeouts(FAULT),
        async || s.fake.set_login_fault(Some(LoginFault::Hang)),
        async || s.fake.set_login_fault(None),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_closes_the_connection_mid_body() {
    let s = setup(TOKEN_LIFETIME, false).await;
    run_fault(
        &s,
        "IAM closes mid-body",
        true,
        bound_fast_failures(FAULT),
        async || s.fake.set_login_fault(Some(LoginFault::CloseMidBody)),
        async || s.fake.set_login_fault(None),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_answers_200_with_an_html_page() {
    let s = setup(TOKEN_LIFETIME, false).await;
    let out = run_fault(
        &s,
        "IAM answers 200 with HTML",
        true,
        bound_fast_failures(FAULT),
        async || {
            s.fake.set_login_fault(Some(LoginFault::Body {
                content_type: "text/html".into(),
                body: b"<html><body>maintenance</body></html>".to_vec(),
            }))
        },
        async || s.fake.set_login_fault(None),
    )
    .await;
    assert!(
        out.refused
            .iter()
            .any(|r| r == "TokenUnavailable(InvalidAnswer)")
    );
}

/// Slow, just under the timeout: every login succeeds; requests never fail. Tokens of 2 s are
/// refreshed 0.4-0.5 s before expiry, and each login takes 0.4 s, so logins are at most one per
/// 1.5 s (plus the one in flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_slow_just_under_the_timeout() {
    let lifetime = Duration::from_secs(2);
    let s = setup(lifetime, false).await;
    let delay = LOGIN_TIMEOUT * 4 / 5;
    let bound = 2 + (FAULT.as_millis() / (lifetime.as_millis() * 3 / 4 - 50)) as u64;
    let out = run_fault(
        &s,
        "IAM slow, just under the timeout",
        false,
        bound,
        async || s.fake.set_login_delay(delay),
        async || s.fake.set_login_delay(Duration::ZERO),
    )
    .await;
    assert!(out.refused.is_empty(), "{:?}", out.refused);
    assert_eq!(out.unauthorized, 0);
    assert_eq!(s.auth.status().failed_logins, 0, "no login timed out");
}

/// Slow, just over the timeout: every login times out, after exactly the login timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_slow_just_over_the_timeout() {
    let s = setup(TOKEN_LIFETIME, false).await;
    let delay = LOGIN_TIMEOUT * 6 / 5;
    let out = run_fault(
        &s,
        "IAM slow, just over the timeout",
        true,
        bound_timeouts(FAULT),
        async || s.fake.set_login_delay(delay),
        async || s.fake.set_login_delay(Duration::ZERO),
    )
    .await;
    assert!(
        out.refused
            .iter()
            .any(|r| r == "TokenUnavailable(LoginTimeout)"),
        "{:?}",
        out.refused
    );
}

/// The API answers 401 to everything, whatever the token (a resource misconfigured, a clock skew
/// at the API). The answer is handed back (after one refresh and one replay); the IAM must not be
/// hammered with a login per request: 401-driven logins are bounded by one per
/// `DEFAULT_DEMAND_INTERVAL` (1 s) after the first, so at most 2 + 2 s / 1 s during the fault,
/// while the client sends ~80 requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_401_forever() {
    let s = setup(Duration::from_secs(30), false).await;
    let bound = 2 + FAULT.as_secs();
    let out = run_fault(
        &s,
        "API answers 401 forever",
        false,
        bound,
        async || s.fake.set_reject_all(true),
        async || s.fake.set_reject_all(false),
    )
    .await;
    assert_eq!(out.ok, 0);
    assert!(out.unauthorized > 0);
    assert!(
        s.auth.status().retries <= out.unauthorized,
        "at most one replay per request"
    );
}

/// A token source (of a user's own) that hands out tokens with a zero lifetime, at once: the
/// refresher must neither spin without yielding (which would freeze a current-thread runtime)
/// nor fetch in a loop. Run on a runtime of its own in a thread of its own, so that a freeze
/// fails this test instead of stalling the binary. A token due for refresh on arrival counts as a
/// failed refresh, so the default backoff (250 ms doubling) spaces the fetches: at most 8 in a
/// second (7 jittered delays with ceilings 0.25, 0.5, 1, 2, 4, 8, 16 s summing under 1 s: p < 1e-6).
#[test]
fn a_source_of_zero_lifetime_tokens_neither_freezes_nor_storms() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let fetches = std::sync::Arc::new(AtomicU64::new(0));
    let counter = fetches.clone();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let auth = MeshxAuth::builder()
                .token_source(move || {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    async move {
                        Ok(meshx_auth::Token::new(
                            format!("t{n}"),
                            Some(Duration::ZERO),
                        ))
                    }
                })
                .org("acme")
                .login_timeout(LOGIN_TIMEOUT)
                .build()
                .await
                .unwrap();
            let before = auth.status().logins;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let during = auth.status().logins - before;
            let mut client = ServiceBuilder::new()
                .layer(auth.layer())
                .service(tower::service_fn(|_: http::Request<String>| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(()))
                }));
            let result = tokio::time::timeout(
                LOGIN_TIMEOUT + SLACK,
                client
                    .ready()
                    .await
                    .unwrap()
                    .call(http::Request::new(String::new())),
            )
            .await;
            let _ = done.send((during, result.is_ok()));
        });
    });
    let (during, ended) = finished
        .recv_timeout(Duration::from_secs(5))
        .expect("the runtime froze: the refresher never yielded");
    eprintln!(
        "[fault matrix] zero-lifetime source: {during} fetches in 1 s (bound 8), {} in all",
        fetches.load(Ordering::SeqCst)
    );
    assert!(ended, "the request hung");
    assert!(during <= 8, "{during} fetches in one second");
}
