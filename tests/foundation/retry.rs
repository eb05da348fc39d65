//! Behaviours 5, 6, 7: single-flight refresh on 401, retry at most once, body replay, gRPC.

use crate::common::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use meshx_auth::testing::FakeMeshx;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;
use tower::{Service, ServiceBuilder, ServiceExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_two_hundred_concurrent_401s_cause_one_login() {
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;
    let client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(http_client());
    // Warm up so the connection pool is not what we measure.
    let mut warm = client.clone();
    warm.ready()
        .await
        .unwrap()
        .call(get(&fake, "/api/warm"))
        .await
        .unwrap();
    fake.revoke_all_tokens();

    let start = Arc::new(tokio::sync::Barrier::new(200));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let mut client = client.clone();
        let start = start.clone();
        let request = get(&fake, &format!("/api/storm/{i}"));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            client
                .ready()
                .await
                .unwrap()
                .call(request)
                .await
                .unwrap()
                .status()
        }));
    }
    for task in tasks {
        assert_eq!(within(30, task).await.unwrap(), 200);
    }
    assert_eq!(fake.logins(), 2, "exactly one login after the revoke");
    assert_eq!(auth.status().logins, 2);
    assert!(fake.unauthorized_sent() >= 1 && fake.unauthorized_sent() <= 200);
}

#[tokio::test]
async fn a_401_for_an_older_generation_causes_no_login() {
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;
    // The first request is held after the token was added, so that it reaches the server after
    // the token has moved on.
    let arrived = Arc::new(Notify::new());
    let gate = Arc::new(Notify::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = {
        let (arrived, gate, calls) = (arrived.clone(), gate.clone(), calls.clone());
        let client = http_client();
        tower::service_fn(move |req: Request<Full<Bytes>>| {
            let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
            let (arrived, gate, client) = (arrived.clone(), gate.clone(), client.clone());
            async move {
                if first {
                    arrived.notify_one();
                    gate.notified().await;
                }
                client.request(req).await
            }
        })
    };
    let client = ServiceBuilder::new().layer(auth.layer()).service(inner);
    let mut held_client = client.clone();
    let held_request = get(&fake, "/api/held");
    let held = tokio::spawn(async move {
        held_client
            .ready()
            .await
            .unwrap()
            .call(held_request)
            .await
            .unwrap()
            .status()
    });
    within(10, arrived.notified()).await;

    fake.revoke_all_tokens();
    let mut other = client.clone();
    let response = other
        .ready()
        .await
        .unwrap()
        .call(get(&fake, "/api/now"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(fake.logins(), 2, "the current token's 401 caused one login");

    gate.notify_one();
    assert_eq!(
        within(10, held).await.unwrap(),
        200,
        "replayed with the newer token"
    );
    assert_eq!(
        fake.logins(),
        2,
        "the older generation's 401 caused no login"
    );
    assert_eq!(auth.status().retries, 2);
}

#[tokio::test]
async fn a_resource_that_always_answers_401_costs_one_retry_and_one_login() {
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(http_client());
    let response = within(
        10,
        client
            .ready()
            .await
            .unwrap()
            .call(get(&fake, "/api/test/always-401")),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 401, "the final 401 is handed back");
    assert_eq!(
        fake.unauthorized_sent(),
        2,
        "sent twice: the first try and one retry"
    );
    assert_eq!(fake.logins(), 2, "at most one login");
    assert_eq!(auth.status().retries, 1);
}

#[tokio::test]
async fn a_body_that_cannot_be_replayed_is_never_resent_but_the_refresh_completes() {
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;
    let client: Client<_, OneShotBody> = Client::builder(TokioExecutor::new()).build_http();
    let mut client = ServiceBuilder::new().layer(auth.layer()).service(client);
    fake.revoke_all_tokens();

    let request = Request::post(format!("http://{}/api/upload", fake.addr()))
        .body(OneShotBody(Some(Bytes::from_static(b"streamed payload"))))
        .unwrap();
    let response = within(10, client.ready().await.unwrap().call(request))
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "not replayable: the 401 is handed back"
    );
    assert_eq!(fake.unauthorized_sent(), 1, "the body was never re-sent");
    assert_eq!(
        fake.logins(),
        2,
        "the refresh finished before the 401 was handed back"
    );

    let request = Request::post(format!("http://{}/api/upload", fake.addr()))
        .body(OneShotBody(Some(Bytes::from_static(b"again"))))
        .unwrap();
    let response = client.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "the next request carries the new token"
    );
    assert_eq!(fake.logins(), 2);
    assert_eq!(auth.status().retries, 0);
}

#[tokio::test]
async fn a_replay_hook_retries_full_bodies_byte_for_byte() {
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;
    let mut client = ServiceBuilder::new()
        .layer(auth.layer().replay_cloneable_bodies())
        .service(http_client());
    fake.revoke_all_tokens();
    let response = within(
        10,
        client
            .ready()
            .await
            .unwrap()
            .call(post(&fake, "/api/echo", "payload \u{1F980} bytes")),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["body"], "payload \u{1F980} bytes");
    assert_eq!(fake.unauthorized_sent(), 1);
    assert_eq!(fake.logins(), 2);
    assert_eq!(auth.status().retries, 1);

    // The same with a function of the user's own.
    fake.revoke_all_tokens();
    let mut client = ServiceBuilder::new()
        .layer(
            auth.layer()
                .replay_body_with(|body: &Full<Bytes>| Some(body.clone())),
        )
        .service(http_client());
    let response = client
        .ready()
        .await
        .unwrap()
        .call(post(&fake, "/api/echo", "second"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["body"], "second");
    assert_eq!(fake.logins(), 3);
}

#[tokio::test]
async fn without_a_hook_a_full_body_is_not_replayed() {
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(http_client());
    fake.revoke_all_tokens();
    let response = client
        .ready()
        .await
        .unwrap()
        .call(post(&fake, "/api/echo", "not replayed"))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(fake.unauthorized_sent(), 1);
    assert_eq!(fake.logins(), 2);
}

/// An extension that counts its clones: the head copy clones the extensions.
#[derive(Debug)]
struct CloneCounter(Arc<AtomicUsize>);

impl Clone for CloneCounter {
    fn clone(&self) -> Self {
        self.0.fetch_add(1, Ordering::SeqCst);
        CloneCounter(self.0.clone())
    }
}

#[tokio::test]
async fn the_request_head_is_copied_only_for_replayable_requests() {
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;
    let inner = tower::service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(()))
    });
    let cases: Vec<(&str, Request<Full<Bytes>>, usize)> = vec![
        ("bodyless GET", get(&fake, "/api/a"), 1),
        ("POST with a body, no hook", post(&fake, "/api/a", "x"), 0),
    ];
    for (name, mut request, expected) in cases {
        let counter = Arc::new(AtomicUsize::new(0));
        request
            .extensions_mut()
            .insert(CloneCounter(counter.clone()));
        let mut svc = ServiceBuilder::new().layer(auth.layer()).service(inner);
        svc.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(counter.load(Ordering::SeqCst), expected, "{name}");
    }

    let counter = Arc::new(AtomicUsize::new(0));
    let mut request = post(&fake, "/api/a", "x");
    request
        .extensions_mut()
        .insert(CloneCounter(counter.clone()));
    let mut svc = ServiceBuilder::new()
        .layer(auth.layer().replay_cloneable_bodies())
        .service(inner);
    svc.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(counter.load(Ordering::SeqCst), 1, "POST with a hook");

    let counter = Arc::new(AtomicUsize::new(0));
    let mut request = get(&fake, "/api/a");
    request
        .extensions_mut()
        .insert(CloneCounter(counter.clone()));
    let mut svc = ServiceBuilder::new()
        .layer(auth.layer().retry_on_unauthorized(false))
        .service(inner);
    svc.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(counter.load(Ordering::SeqCst), 0, "retry off");
}

#[tokio::test]
async fn grpc_unauthenticated_in_headers_counts_as_401() {
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(http_client());
    let response = client
        .ready()
        .await
        .unwrap()
        .call(get(&fake, "/api/grpc/health.Check"))
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "0");
    fake.revoke_all_tokens();
    let response = within(
        10,
        client
            .ready()
            .await
            .unwrap()
            .call(get(&fake, "/api/grpc/health.Check")),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["grpc-status"],
        "0",
        "retried after UNAUTHENTICATED"
    );
    assert_eq!(fake.unauthorized_sent(), 1);
    assert_eq!(fake.logins(), 2);
    assert_eq!(auth.status().retries, 1);
}

/// Revokes in quick succession are each answered by an immediate login: only a login that did
/// not help (its replay got a 401 again) spaces the next one. The login timeout is shorter than
/// the spacing, so a spaced login would hand back the 401.
#[tokio::test]
async fn back_to_back_revokes_are_each_recovered_at_once() {
    let fake = FakeMeshx::start().await;
    let auth = builder_for(&fake)
        .login_timeout(std::time::Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(http_client());
    for round in 1..=3 {
        fake.revoke_all_tokens();
        let response = within(10, client.ready().await.unwrap().call(get(&fake, "/api/a")))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "round {round}");
        assert_eq!(fake.logins(), 1 + round);
    }
}
