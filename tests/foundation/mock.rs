//! The service's exact calls, pinned with tower-test's mock: one send, a 401, one refresh, one
//! replay with the new token and the same head, and nothing more.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use meshx_auth::{MeshxAuth, Token};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tower::{Layer, ServiceExt};

#[tokio::test]
async fn a_401_causes_exactly_one_refresh_and_one_replay_of_the_same_request() {
    let fetches = Arc::new(AtomicU64::new(0));
    let counter = fetches.clone();
    let auth = MeshxAuth::builder()
        .token_source(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                Ok(Token::new(
                    format!("token-{n}"),
                    Some(Duration::from_secs(3600)),
                ))
            }
        })
        .org("acme")
        .build()
        .await
        .unwrap();
    let (mock, mut handle) = tower_test::mock::pair::<Request<Full<Bytes>>, Response<()>>();
    let service = auth.layer().layer(mock);

    let request = Request::put("https://api.meshx.foundation/api/things/7?x=1")
        .header("accept", "application/json")
        .body(Full::default())
        .unwrap();
    let call = tokio::spawn(service.oneshot(request));

    let (first, reply) = handle.next_request().await.expect("first send");
    assert_eq!(first.method(), http::Method::PUT);
    assert_eq!(first.uri(), "https://api.meshx.foundation/api/things/7?x=1");
    assert_eq!(first.headers()["authorization"], "Bearer token-1");
    assert_eq!(first.headers()["x-org"], "acme");
    assert_eq!(first.headers()["accept"], "application/json");
    reply.send_response(
        Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .body(())
            .unwrap(),
    );

    let (second, reply) = handle.next_request().await.expect("one replay");
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "one refresh before the replay"
    );
    assert_eq!(second.method(), first.method());
    assert_eq!(second.uri(), first.uri());
    assert_eq!(second.headers()["authorization"], "Bearer token-2");
    assert_eq!(second.headers()["x-org"], "acme");
    assert_eq!(second.headers()["accept"], "application/json");
    assert_eq!(second.headers().len(), first.headers().len());
    reply.send_response(Response::new(()));

    let response = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(auth.status().retries, 1);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
}
