//! Behaviour 8: the IAM goes down and comes back; backoff is capped, jittered and reset.

use crate::common::*;
use meshx_auth::testing::FakeMeshx;
use meshx_auth::{Error, MeshxAuth, Token};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

/// Polls `cond` every 20 ms for at most `secs` seconds.
async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_down_valid_token_keeps_working_expired_fails_typed_and_heals() {
    let fake = FakeMeshx::builder()
        .token_lifetime(Duration::from_secs(2))
        .start()
        .await;
    let login_timeout = Duration::from_millis(500);
    let auth = builder_for(&fake)
        .login_timeout(login_timeout)
        .backoff(Duration::from_millis(50), Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(http_client());
    fake.set_outage(true);

    // Phase 1: the token is still valid; requests keep working while the refresher fails.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1_700) {
        let response = client
            .ready()
            .await
            .unwrap()
            .call(get(&fake, "/api/a"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        eventually(5, || auth.status().consecutive_failures >= 2).await,
        "the refresher keeps retrying"
    );
    let status = auth.status();
    assert!(status.last_error.as_ref().is_some_and(Error::is_transient));

    // Phase 2: expired and the IAM still down: each request ends promptly with a typed error.
    assert!(eventually(5, || auth.status().expired).await);
    let sent_before = fake.requests();
    for _ in 0..3 {
        let started = Instant::now();
        let err = within(10, client.ready().await.unwrap().call(get(&fake, "/api/b")))
            .await
            .unwrap_err();
        let err = err.downcast_ref::<Error>().expect("a meshx_auth::Error");
        assert!(matches!(err, Error::TokenUnavailable(_)), "{err:?}");
        assert!(err.to_string().contains("request not sent"), "{err}");
        assert!(
            started.elapsed() <= login_timeout + Duration::from_millis(500),
            "took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        fake.requests(),
        sent_before,
        "nothing sent without a valid token"
    );
    assert_eq!(fake.expired_seen(), 0);
    assert_eq!(fake.missing_credentials(), 0);
    // Backoff kept the IAM from being hammered: a few attempts per second at most.
    let outage_secs = started.elapsed().as_secs_f64() + 2.0;
    assert!(
        (fake.login_attempts() as f64) < 1.0 + 30.0 * outage_secs,
        "{} attempts",
        fake.login_attempts()
    );

    // Phase 3: the IAM is back: requests work again, nothing rebuilt.
    fake.set_outage(false);
    let mut healed = false;
    for _ in 0..100 {
        match client
            .ready()
            .await
            .unwrap()
            .call(get(&fake, "/api/c"))
            .await
        {
            Ok(response) if response.status() == 200 => {
                healed = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(healed, "requests work again once the IAM is back");
    let status = auth.status();
    assert!(!status.expired);
    assert_eq!(status.consecutive_failures, 0);
    assert!(status.last_error.is_none());
}

/// A source whose fetches fail while `failing` says so; it records when each fetch started.
#[derive(Clone, Default)]
struct FlakySource {
    failing: Arc<Mutex<bool>>,
    times: Arc<Mutex<Vec<Instant>>>,
    count: Arc<AtomicUsize>,
}

impl meshx_auth::TokenSource for FlakySource {
    fn fetch(&self) -> meshx_auth::TokenFuture<'_> {
        Box::pin(async move {
            self.times.lock().unwrap().push(Instant::now());
            let n = self.count.fetch_add(1, Ordering::SeqCst);
            if *self.failing.lock().unwrap() {
                Err(Error::Source("flaky".into()))
            } else {
                Ok(Token::new(format!("t{n}"), Some(Duration::from_secs(40))))
            }
        })
    }
}

#[tokio::test(start_paused = true)]
async fn backoff_is_capped_exponential_with_full_jitter_and_success_resets_it() {
    let source = FlakySource::default();
    let base = Duration::from_millis(100);
    let cap = Duration::from_secs(2);
    let auth = MeshxAuth::builder()
        .token_source(source.clone())
        .org("acme")
        .refresh_margin(Duration::from_secs(10))
        .refresh_jitter(Duration::ZERO)
        .backoff(base, cap)
        .build()
        .await
        .unwrap();
    *source.failing.lock().unwrap() = true;
    // First refresh at 40 s - 10 s = 30 s; then 12 failures.
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(
        source.count.load(Ordering::SeqCst),
        1,
        "no refresh before its point"
    );
    while source.count.load(Ordering::SeqCst) < 13 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let times = source.times.lock().unwrap().clone();
    for (i, pair) in times[1..].windows(2).enumerate() {
        let failures = i as u32 + 1;
        let ceiling = base.saturating_mul(1 << (failures - 1)).min(cap);
        let gap = pair[1] - pair[0];
        assert!(
            gap <= ceiling + Duration::from_millis(5),
            "after failure {failures}: waited {gap:?}, ceiling {ceiling:?}"
        );
    }
    assert_eq!(auth.status().consecutive_failures, 12);

    // Success resets: the next attempt after a success is the refresh point, not a backoff.
    *source.failing.lock().unwrap() = false;
    while source.count.load(Ordering::SeqCst) < 14 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(auth.status().consecutive_failures, 0);
    let recovered = *source.times.lock().unwrap().last().unwrap();
    tokio::time::sleep_until(recovered + Duration::from_secs(29)).await;
    assert_eq!(
        source.count.load(Ordering::SeqCst),
        14,
        "back on the normal schedule"
    );
    tokio::time::sleep_until(recovered + Duration::from_secs(31)).await;
    assert_eq!(source.count.load(Ordering::SeqCst), 15);
}
