//! Issue 3.1: a hyper-util legacy `Client`, over HTTP/1 and over HTTP/2 (prior knowledge on
//! loopback), wrapped with `ServiceBuilder::new().layer(auth.layer())`.

use crate::common::*;
use bytes::Bytes;
use http::{Request, Version};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use meshx_auth::testing::FakeMeshx;
use std::sync::Arc;
use tower::{Service, ServiceBuilder, ServiceExt};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn http1() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

fn http2() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// Headers on every request, the protocol really used, and a revoked token recovered by one
/// login: a bodyless GET with the default layer, a POST with `replay_cloneable_bodies`.
async fn headers_and_revoke_and_retry(client: HttpClient, version: Version) {
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;
    let mut get_client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(client.clone());
    let mut post_client = ServiceBuilder::new()
        .layer(auth.layer().replay_cloneable_bodies())
        .service(client);
    let url = |path: &str| format!("http://{}/api/{path}", fake.addr());

    let response = within(
        10,
        get_client
            .ready()
            .await
            .unwrap()
            .call(Request::get(url("projects")).body(Full::default()).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), version, "the protocol asked for");
    let body = json(response).await;
    assert_eq!(body["org"], fake.org(), "x-org reached the server");
    assert_eq!(body["path"], "/api/projects");
    assert_eq!(
        fake.authorized_requests(),
        1,
        "the bearer token was accepted"
    );
    assert_eq!(fake.missing_credentials(), 0);

    // Revoked: the GET (bodyless) is replayed after one login.
    fake.revoke_all_tokens();
    let response = within(
        10,
        get_client
            .ready()
            .await
            .unwrap()
            .call(Request::get(url("projects")).body(Full::default()).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), version);
    assert_eq!(fake.logins(), 2, "exactly one login after the revoke");
    assert_eq!(fake.unauthorized_sent(), 1, "one 401, then the replay");

    // Revoked again: a POST body is replayed byte for byte.
    fake.revoke_all_tokens();
    let request = Request::post(url("datasets"))
        .body(Full::new(Bytes::from_static(b"{\"name\":\"d1\"}")))
        .unwrap();
    let response = within(10, post_client.ready().await.unwrap().call(request))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = json(response).await;
    assert_eq!(body["method"], "POST");
    assert_eq!(body["body"], "{\"name\":\"d1\"}", "replayed byte for byte");
    assert_eq!(fake.logins(), 3, "one more login for the second revoke");
    assert_eq!(fake.unauthorized_sent(), 2);
    assert_eq!(auth.status().retries, 2);
}

#[tokio::test]
async fn http1_client_gets_headers_and_recovers_from_a_revoke() {
    headers_and_revoke_and_retry(http1(), Version::HTTP_11).await;
}

#[tokio::test]
async fn http2_client_gets_headers_and_recovers_from_a_revoke() {
    headers_and_revoke_and_retry(http2(), Version::HTTP_2).await;
}

/// Over one multiplexed HTTP/2 connection, many requests that all see the revoked token share a
/// single login and are all replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_concurrent_requests_after_a_revoke_share_one_login() {
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;
    let client = ServiceBuilder::new().layer(auth.layer()).service(http2());
    let url = |i: usize| format!("http://{}/api/streams/{i}", fake.addr());
    // Warm up: one connection.
    let mut warm = client.clone();
    let response = within(
        10,
        warm.ready()
            .await
            .unwrap()
            .call(Request::get(url(0)).body(Full::default()).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    fake.revoke_all_tokens();

    let start = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = Vec::new();
    for i in 1..=50 {
        let mut client = client.clone();
        let start = start.clone();
        let request = Request::get(url(i)).body(Full::default()).unwrap();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let response = client.ready().await.unwrap().call(request).await.unwrap();
            (response.status(), response.version())
        }));
    }
    for task in tasks {
        let (status, version) = within(30, task).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(version, Version::HTTP_2);
    }
    assert_eq!(fake.logins(), 2, "one login for fifty 401s");
    assert_eq!(fake.authorized_requests(), 51);
}
