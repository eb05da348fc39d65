//! Cancellation and shutdown: a caller that gives up during a refresh cancels nothing for the
//! others; `shutdown()` during an in-flight login ends it and every waiting request promptly;
//! dropping every handle drops the token source and leaves no task running.

use crate::common::*;
use meshx_auth::testing::FakeMeshx;
use meshx_auth::{Error, MeshxAuth, Token, TokenFuture, TokenSource};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tower::{Service, ServiceBuilder, ServiceExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_gives_up_during_the_refresh_cancels_it_for_no_one() {
    let fake = FakeMeshx::start().await;
    let auth = builder(&fake, &fake.api_url())
        .login_timeout(Duration::from_secs(3))
        .build()
        .await
        .unwrap();
    let client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(http_client());
    fake.set_login_delay(Duration::from_millis(600));
    fake.revoke_all_tokens();

    // The first caller's 401 starts the refresh; then it gives up.
    let mut first = client.clone();
    let request = get(&fake, "/api/quitter");
    let quitter = tokio::spawn(async move { first.ready().await.unwrap().call(request).await });
    assert!(
        eventually(Duration::from_secs(3), || fake.login_attempts() == 2).await,
        "the refresh is in flight"
    );
    quitter.abort();
    assert!(quitter.await.unwrap_err().is_cancelled());

    // Others, arriving during the refresh, share it.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let mut client = client.clone();
        let request = get(&fake, "/api/after");
        tasks.push(tokio::spawn(async move {
            client
                .ready()
                .await
                .unwrap()
                .call(request)
                .await
                .map(|r| r.status())
        }));
    }
    for task in tasks {
        let status = within(Duration::from_secs(5), task).await.unwrap().unwrap();
        assert_eq!(status, 200);
    }
    assert_eq!(
        fake.login_attempts(),
        2,
        "the abandoned refresh was not cancelled nor repeated"
    );
    assert_eq!(fake.logins(), 2);
}

/// A token source that counts fetches started, finished and abandoned (dropped unfinished), and
/// whether it was dropped itself.
#[derive(Clone, Default)]
struct Counting {
    started: Arc<AtomicU64>,
    finished: Arc<AtomicU64>,
    abandoned: Arc<AtomicU64>,
    gate: Arc<Notify>,
    slow: Arc<AtomicBool>,
    alive: Arc<()>,
}

struct FetchGuard(Arc<AtomicU64>, bool);

impl Drop for FetchGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl TokenSource for Counting {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            let n = self.started.fetch_add(1, Ordering::SeqCst);
            let mut guard = FetchGuard(self.abandoned.clone(), false);
            if self.slow.load(Ordering::SeqCst) {
                self.gate.notified().await;
            }
            guard.1 = true;
            self.finished.fetch_add(1, Ordering::SeqCst);
            Ok(Token::new(format!("t{n}"), Some(Duration::from_secs(1))))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_an_inflight_login_ends_it_and_every_waiting_request() {
    let source = Counting::default();
    let auth = MeshxAuth::builder()
        .token_source(source.clone())
        .org("acme")
        .login_timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    let client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(tower::service_fn(|_: http::Request<String>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        }));
    source.slow.store(true, Ordering::SeqCst);
    // The refresh (at ~0.75 s) hangs; the token expires at 1 s; requests wait.
    assert!(
        eventually(Duration::from_secs(3), || source
            .started
            .load(Ordering::SeqCst)
            == 2)
        .await
    );
    assert!(eventually(Duration::from_secs(3), || auth.status().expired).await);
    let mut waiting = Vec::new();
    for _ in 0..20 {
        let mut client = client.clone();
        waiting.push(tokio::spawn(async move {
            client
                .ready()
                .await
                .unwrap()
                .call(http::Request::new(String::new()))
                .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    auth.shutdown();
    for task in waiting {
        let err = within(Duration::from_secs(1), task)
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(err.downcast_ref::<Error>(), Some(Error::Shutdown)),
            "{err:?}"
        );
    }
    assert!(
        eventually(Duration::from_secs(1), || source
            .abandoned
            .load(Ordering::SeqCst)
            == 1)
        .await,
        "the in-flight fetch was dropped"
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        source.started.load(Ordering::SeqCst),
        2,
        "no fetch after shutdown"
    );
    assert!(auth.status().stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_everything_drops_the_source_and_leaves_no_task() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let source = Counting::default();
    let alive = Arc::downgrade(&source.alive);
    let auth = MeshxAuth::builder()
        .token_source(source.clone())
        .org("acme")
        .login_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(tower::service_fn(|_: http::Request<String>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        }));
    // Refreshes happen (1 s tokens), requests go through.
    assert!(
        eventually(Duration::from_secs(3), || source
            .finished
            .load(Ordering::SeqCst)
            >= 2)
        .await
    );
    client
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(String::new()))
        .await
        .unwrap();
    // Drop everything while a refresh is in flight and a request waits for it.
    source.slow.store(true, Ordering::SeqCst);
    let started = source.started.load(Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(3), || source
            .started
            .load(Ordering::SeqCst)
            > started)
        .await
    );
    let pending = client
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(String::new()));
    drop((auth, client, pending, source));
    // The refresher sees the last handle go at once, or at the latest when the in-flight fetch
    // ends (bounded by the login timeout): then the source is dropped, and no task is left.
    assert!(
        eventually(Duration::from_secs(3), || alive.upgrade().is_none()
            && metrics.num_alive_tasks() == before)
        .await,
        "source alive: {}, tasks: {} (before: {before})",
        alive.upgrade().is_some(),
        metrics.num_alive_tasks()
    );
}
