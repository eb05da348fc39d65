//! Behaviour 4: the refresher renews tokens before they expire, under load.

use crate::common::*;
use meshx_auth::testing::FakeMeshx;
use meshx_auth::{MeshxAuth, Token};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_second_tokens_under_concurrent_load_never_expire_on_the_wire() {
    let fake = FakeMeshx::builder()
        .token_lifetime(Duration::from_secs(2))
        .start()
        .await;
    let auth = auth_for(&fake).await;
    let client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(http_client());

    let deadline = tokio::time::Instant::now() + Duration::from_millis(5_500);
    let mut tasks = Vec::new();
    for task in 0..16 {
        let mut client = client.clone();
        let fake_addr = fake.addr();
        tasks.push(tokio::spawn(async move {
            let mut sent = 0u32;
            while tokio::time::Instant::now() < deadline && sent < 5_000 {
                let request = http::Request::get(format!("http://{fake_addr}/api/load/{task}"))
                    .body(Default::default())
                    .unwrap();
                let response = client.ready().await.unwrap().call(request).await.unwrap();
                assert_eq!(response.status(), 200, "the caller saw a non-200");
                sent += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            sent
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += within(30, task).await.unwrap();
    }
    assert!(total > 100, "load ran: {total} requests");
    assert_eq!(
        fake.expired_seen(),
        0,
        "a request reached the server with an expired token"
    );
    assert_eq!(fake.unauthorized_sent(), 0, "the server sent a 401");
    assert_eq!(fake.missing_credentials(), 0);
    // 5.5 s of 2-second tokens refreshed at ~1.5 s: at least three proactive refreshes.
    assert!(fake.logins() >= 4, "logins: {}", fake.logins());
    assert_eq!(auth.status().retries, 0);
}

#[tokio::test]
async fn one_second_tokens_are_refreshed_before_expiry() {
    let fake = FakeMeshx::builder()
        .token_lifetime(Duration::from_secs(1))
        .start()
        .await;
    let auth = auth_for(&fake).await;
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(http_client());
    for _ in 0..30 {
        let response = client
            .ready()
            .await
            .unwrap()
            .call(get(&fake, "/api/tick"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(fake.expired_seen(), 0);
    assert_eq!(fake.unauthorized_sent(), 0);
    assert!(fake.logins() >= 3, "logins: {}", fake.logins());
}

/// A source whose every fetch takes `delay` (in paused time) and returns a `lifetime` token.
fn slow_source(
    delay: Duration,
    lifetime: Duration,
    fetches: Arc<AtomicUsize>,
) -> impl meshx_auth::TokenSource {
    move || {
        let fetches = fetches.clone();
        async move {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            Ok(Token::new(format!("token-{n}"), Some(lifetime)))
        }
    }
}

/// For lifetimes from 1 s to days, the next fetch starts before the token expires, and the
/// lifetime is counted from when the fetch was *sent* (a slow login eats into it).
#[tokio::test(start_paused = true)]
async fn refresh_point_is_before_expiry_for_any_lifetime_counted_from_the_send() {
    for lifetime_secs in [1u64, 2, 10, 60, 600, 3_600, 18_000, 86_400, 7 * 86_400] {
        let lifetime = Duration::from_secs(lifetime_secs);
        let delay = lifetime / 10;
        let fetches = Arc::new(AtomicUsize::new(0));
        let started = tokio::time::Instant::now();
        let auth = MeshxAuth::builder()
            .token_source(slow_source(delay, lifetime, fetches.clone()))
            .org("acme")
            .login_timeout(Duration::from_secs(30 * 86_400))
            .build()
            .await
            .unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // The token expires `lifetime` after the fetch was sent, not after it answered.
        let valid_for = auth
            .status()
            .valid_until
            .unwrap()
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        let expected = lifetime - delay;
        assert!(
            valid_for <= expected + Duration::from_millis(50),
            "{lifetime_secs}s: valid for {valid_for:?}, expected at most {expected:?}"
        );
        // The refresh starts `margin` before expiry (5 min, at most a quarter of the lifetime),
        // minus at most `jitter` (30 s, at most a twentieth): not later, and not much earlier.
        let expiry = started + lifetime;
        let margin = Duration::from_secs(300).min(lifetime / 4);
        let jitter = Duration::from_secs(30).min(lifetime / 20);
        let earliest = expiry - margin - jitter;
        tokio::time::sleep_until(earliest - Duration::from_millis(2)).await;
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            1,
            "{lifetime_secs}s token: refreshed too early"
        );
        tokio::time::sleep_until(expiry - margin + Duration::from_millis(1)).await;
        assert!(
            fetches.load(Ordering::SeqCst) >= 2,
            "{lifetime_secs}s token: no refresh started {margin:?} before expiry"
        );
        // And the new token is installed before the old one runs out, whenever the fetch takes
        // less than the margin.
        assert!(!auth.status().expired, "{lifetime_secs}s token expired");
        auth.shutdown();
    }
}

/// A login slower than the token's remaining life: the old token is not sent after it expires;
/// requests wait for the new one instead.
#[tokio::test]
async fn a_token_expires_on_time_even_while_its_refresh_is_in_flight() {
    let fake = FakeMeshx::builder()
        .token_lifetime(Duration::from_secs(1))
        .start()
        .await;
    let auth = builder_for(&fake)
        .login_timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    // From now on every login takes 0.4 s: the refresh at ~0.75 s ends after the expiry at 1 s
    // (and the new token, counted from the send, lives until ~1.75 s: the same again).
    fake.set_login_delay(Duration::from_millis(400));
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(http_client());
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_millis(2_600) {
        let response = within(10, client.ready().await.unwrap().call(get(&fake, "/api/a")))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fake.expired_seen(), 0, "an expired token was sent");
    assert_eq!(fake.unauthorized_sent(), 0);
    assert!(fake.logins() >= 2);
}
