//! Issue 3.3 (a): an axum `Router` as the inner service of the layer, served by `axum::serve` on
//! 127.0.0.1, with the layer's error type turned into a response by `HandleErrorLayer`.

use crate::common::*;
use axum::error_handling::HandleErrorLayer;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use meshx_auth::testing::FakeMeshx;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tower::{BoxError, ServiceBuilder};

/// Maps a failure of the layer (no token could be had, shut down) to a 503 that says why; any
/// other error to a 500. `meshx_auth::Error` messages never contain a secret.
async fn handle_auth_error(error: BoxError) -> Response {
    match error.downcast_ref::<meshx_auth::Error>() {
        Some(auth) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("MeshX credentials unavailable: {auth}"),
        )
            .into_response(),
        None => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

struct Backend {
    fake: Arc<FakeMeshx>,
    handled: AtomicU64,
}

/// A handler that plays a MeshX-protected resource: it checks the token the layer added (401
/// for a bad one) and echoes the organization.
async fn whoami(State(backend): State<Arc<Backend>>, headers: HeaderMap) -> Response {
    backend.handled.fetch_add(1, Ordering::SeqCst);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !token.is_some_and(|t| backend.fake.is_token_valid(t)) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let org = headers.get("x-org").and_then(|v| v.to_str().ok());
    Json(serde_json::json!({ "org": org, "sensitive": headers["authorization"].is_sensitive() }))
        .into_response()
}

async fn serve_router(
    fake: Arc<FakeMeshx>,
    auth: &meshx_auth::MeshxAuth,
) -> (SocketAddr, Arc<Backend>) {
    let backend = Arc::new(Backend {
        fake,
        handled: AtomicU64::new(0),
    });
    let router = Router::new()
        .route("/whoami", get(whoami))
        .with_state(backend.clone());
    let app = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(handle_auth_error))
        .layer(auth.layer())
        .service(router);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            axum::ServiceExt::<axum::extract::Request>::into_make_service(app),
        )
        .await;
    });
    (addr, backend)
}

async fn call(addr: SocketAddr) -> (StatusCode, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::get(format!("http://{addr}/whoami"))
        .body(Full::default())
        .unwrap();
    let response = within(10, client.request(request)).await.unwrap();
    let status = response.status();
    (status, bytes(response).await)
}

#[tokio::test]
async fn a_router_behind_the_layer_sees_the_headers_and_recovers_from_a_revoke() {
    let fake = Arc::new(FakeMeshx::start().await);
    let auth = auth_for(&fake).await;
    let (addr, backend) = serve_router(fake.clone(), &auth).await;

    let (status, body) = call(addr).await;
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["org"], fake.org());
    assert_eq!(body["sensitive"], true, "the header is marked sensitive");

    // The router's own 401 triggers the one refresh and the replay of the bodyless GET.
    fake.revoke_all_tokens();
    let (status, _) = call(addr).await;
    assert_eq!(status, 200);
    assert_eq!(fake.logins(), 2);
    assert_eq!(backend.handled.load(Ordering::SeqCst), 3, "ok, 401, replay");
    assert_eq!(auth.status().retries, 1);
}

#[tokio::test]
async fn the_layers_error_becomes_a_503_and_the_router_is_not_called() {
    let fake = Arc::new(FakeMeshx::start().await);
    let auth = auth_for(&fake).await;
    let (addr, backend) = serve_router(fake.clone(), &auth).await;
    assert_eq!(call(addr).await.0, 200);

    auth.shutdown();
    let (status, body) = call(addr).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.starts_with("MeshX credentials unavailable: "),
        "{body}"
    );
    assert!(body.contains("shut down"), "{body}");
    assert!(leaks_no_token(&fake, &body));
    assert_eq!(
        backend.handled.load(Ordering::SeqCst),
        1,
        "nothing sent without a token"
    );
}
