//! Backoff under paused tokio time, with `Retry-After`: the next attempt is never before the
//! `Retry-After` the IAM sent (capped at `MAX_RETRY_AFTER`), with or without requests waiting, and
//! a success resets everything. The plain capped-exponential/full-jitter schedule is verified by
//! `tests/foundation/outage.rs::backoff_is_capped_exponential_with_full_jitter_and_success_resets_it`.

use meshx_auth::{Error, MAX_RETRY_AFTER, MeshxAuth, Token, TokenFuture, TokenSource};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Fail like a 503, with this `Retry-After`.
    Fail(Option<Duration>),
    Succeed,
}

/// A source that plays a plan (then succeeds) and records when each fetch started.
#[derive(Clone, Default)]
struct Scripted {
    plan: Arc<Mutex<VecDeque<Plan>>>,
    times: Arc<Mutex<Vec<Instant>>>,
}

const LIFETIME: Duration = Duration::from_secs(40);

impl TokenSource for Scripted {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            let n = {
                let mut times = self.times.lock().unwrap();
                times.push(Instant::now());
                times.len()
            };
            match self
                .plan
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Plan::Succeed)
            {
                Plan::Fail(retry_after) => Err(Error::LoginStatus {
                    status: 503,
                    url: "https://iam.invalid/api/iam/login".into(),
                    retry_after,
                }),
                Plan::Succeed => Ok(Token::new(format!("token-{n}"), Some(LIFETIME))),
            }
        })
    }
}

impl Scripted {
    fn count(&self) -> usize {
        self.times.lock().unwrap().len()
    }
    fn time(&self, i: usize) -> Instant {
        self.times.lock().unwrap()[i]
    }
    async fn wait_for(&self, n: usize) {
        // Paused time: this advances instantly; bounded by the test's own virtual clock.
        let deadline = Instant::now() + Duration::from_secs(3_600);
        while self.count() < n {
            assert!(Instant::now() < deadline, "fetch {n} never came");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn assert_gap(source: &Scripted, i: usize, low: Duration, high: Duration) {
    let gap = source.time(i) - source.time(i - 1);
    assert!(
        gap >= low && gap <= high,
        "attempt {i} came {gap:?} after the previous one, expected within [{low:?}, {high:?}]"
    );
}

async fn auth_with(source: &Scripted, base: Duration, cap: Duration) -> MeshxAuth {
    MeshxAuth::builder()
        .token_source(source.clone())
        .org("acme")
        .refresh_margin(Duration::from_secs(10))
        .refresh_jitter(Duration::ZERO)
        .login_timeout(Duration::from_secs(1))
        .backoff(base, cap)
        .build()
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_capped_and_reset_by_success() {
    let source = Scripted::default();
    let (base, cap) = (Duration::from_millis(100), Duration::from_secs(2));
    let auth = auth_with(&source, base, cap).await;
    let tick = Duration::from_millis(15); // the polling step of `wait_for`, plus timer slack
    source.plan.lock().unwrap().extend([
        Plan::Fail(Some(Duration::from_secs(7))),
        Plan::Fail(None),
        Plan::Fail(Some(Duration::from_secs(10_000))),
        Plan::Fail(Some(Duration::from_millis(1))),
        Plan::Succeed,
    ]);
    // Fetch 0 at build; fetch 1 at the refresh point (30 s): fails with Retry-After: 7.
    source.wait_for(2).await;
    assert_gap(
        &source,
        1,
        Duration::from_secs(30),
        Duration::from_secs(30) + tick,
    );
    // Retry-After 7 s is above the backoff ceiling (100 ms): exactly 7 s.
    source.wait_for(3).await;
    assert_gap(
        &source,
        2,
        Duration::from_secs(7),
        Duration::from_secs(7) + tick,
    );
    // No Retry-After: back to full jitter under the second ceiling (200 ms).
    source.wait_for(4).await;
    assert_gap(&source, 3, Duration::ZERO, base * 2 + tick);
    // Retry-After: 10000 s is capped at MAX_RETRY_AFTER.
    source.wait_for(5).await;
    assert_gap(&source, 4, MAX_RETRY_AFTER, MAX_RETRY_AFTER + cap + tick);
    // A Retry-After shorter than the backoff does not shorten it: the larger of the two counts
    // (here full jitter under the fourth ceiling, 800 ms).
    source.wait_for(6).await;
    assert_gap(&source, 5, Duration::ZERO, base * 8 + tick);
    assert_eq!(
        auth.status().consecutive_failures,
        0,
        "the success reset it"
    );
    assert!(auth.status().last_error.is_none());
    // Back on the normal schedule: the next fetch is at the refresh point, 30 s later.
    source.wait_for(7).await;
    assert_gap(
        &source,
        6,
        Duration::from_secs(30),
        Duration::from_secs(30) + tick,
    );
}

#[tokio::test(start_paused = true)]
async fn waiting_requests_do_not_pull_an_attempt_before_retry_after() {
    let source = Scripted::default();
    let auth = auth_with(&source, Duration::from_millis(100), Duration::from_secs(2)).await;
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(tower::service_fn(|_: http::Request<String>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        }));
    // Every refresh fails with Retry-After: 20 s, so the token (40 s) expires during the outage.
    let retry_after = Duration::from_secs(20);
    source
        .plan
        .lock()
        .unwrap()
        .extend([Plan::Fail(Some(retry_after)); 4]);
    source.wait_for(2).await; // the refresh at 30 s fails
    tokio::time::sleep_until(source.time(1) + Duration::from_secs(11)).await; // expired now
    assert!(auth.status().expired);
    // Requests in the meantime: each fails at once (the next attempt is after their deadline),
    // typed, and none of them pulls an attempt forward.
    for _ in 0..5 {
        let started = Instant::now();
        let err = client
            .ready()
            .await
            .unwrap()
            .call(http::Request::new(String::new()))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.downcast_ref::<Error>(),
                Some(Error::TokenUnavailable(_))
            ),
            "{err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(10),
            "reported at once"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    source.wait_for(3).await;
    assert_gap(
        &source,
        2,
        retry_after,
        retry_after + Duration::from_millis(15),
    );
    // A request waiting when the IAM comes back gets the token.
    source.plan.lock().unwrap().clear();
    source.wait_for(4).await;
    assert_gap(
        &source,
        3,
        retry_after,
        retry_after + Duration::from_millis(15),
    );
    let response = client
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(String::new()))
        .await;
    assert!(response.is_ok(), "{response:?}");
}
