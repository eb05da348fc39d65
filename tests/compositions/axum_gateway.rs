//! Issue 3.3 (b): a gateway. A browser-facing axum app whose handler forwards to the MeshX API
//! through a hyper-util client wrapped with the layer: the browser never sees a MeshX credential,
//! and a failure of the layer becomes a 503 (a failure to reach MeshX a 502).

use crate::common::*;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use meshx_auth::testing::FakeMeshx;
use meshx_auth::{CloneBodies, MeshxAuth, MeshxAuthService};
use std::net::SocketAddr;
use tower::{ServiceBuilder, ServiceExt};

type MeshxClient = MeshxAuthService<Client<HttpConnector, Full<Bytes>>, CloneBodies>;

#[derive(Clone)]
struct Gateway {
    meshx: MeshxClient,
    /// `http://host:port/api`
    api: String,
}

/// `ANY /meshx/{*path}` -> `{api}/{path}`: only the method, the body and the content type are
/// forwarded; the browser's own `Authorization`, cookies and other headers are not.
async fn forward(
    State(gateway): State<Gateway>,
    Path(path): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("{}/{path}", gateway.api));
    if let Some(content_type) = headers.get(http::header::CONTENT_TYPE) {
        request = request.header(http::header::CONTENT_TYPE, content_type);
    }
    let Ok(request) = request.body(Full::new(body)) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match gateway.meshx.oneshot(request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            // Nothing of the upstream's authentication goes back to the browser.
            parts.headers.remove(http::header::WWW_AUTHENTICATE);
            Response::from_parts(parts, Body::new(body))
        }
        Err(error) => match error.downcast_ref::<meshx_auth::Error>() {
            Some(auth) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("MeshX credentials unavailable: {auth}"),
            )
                .into_response(),
            None => (StatusCode::BAD_GATEWAY, "MeshX API unreachable").into_response(),
        },
    }
}

async fn start_gateway(auth: &MeshxAuth, api: String) -> SocketAddr {
    let meshx = ServiceBuilder::new()
        .layer(auth.layer().replay_cloneable_bodies())
        .service(Client::builder(TokioExecutor::new()).build_http());
    let app = Router::new()
        .route("/meshx/{*path}", any(forward))
        .with_state(Gateway { meshx, api });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A plain client with no MeshX credential: the browser.
async fn browser(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: &'static str,
) -> (StatusCode, HeaderMap, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("authorization", "Bearer browser-session-not-for-meshx")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let response = within(10, client.request(request)).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let body = String::from_utf8_lossy(&bytes(response).await).into_owned();
    (status, headers, body)
}

fn headers_text(headers: &HeaderMap) -> String {
    format!("{headers:?}")
}

#[tokio::test]
async fn the_gateway_adds_credentials_upstream_and_never_hands_them_to_the_browser() {
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;
    let gateway = start_gateway(&auth, fake.api_url()).await;

    let (status, headers, body) = browser(gateway, Method::GET, "/meshx/projects", "").await;
    assert_eq!(status, 200, "{body}");
    let echoed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["path"], "/api/projects");
    assert_eq!(echoed["org"], fake.org());
    assert_eq!(
        fake.authorized_requests(),
        1,
        "the MeshX token was used upstream"
    );
    assert_eq!(
        fake.unauthorized_sent(),
        0,
        "the browser's token was not forwarded"
    );
    assert!(leaks_no_token(&fake, &body));
    assert!(leaks_no_token(&fake, &headers_text(&headers)));

    // Revoked: the POST body is replayed upstream after one login; the browser sees a 200.
    fake.revoke_all_tokens();
    let (status, headers, body) = browser(
        gateway,
        Method::POST,
        "/meshx/datasets",
        "{\"name\":\"d1\"}",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let echoed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["body"], "{\"name\":\"d1\"}");
    assert_eq!(fake.logins(), 2, "exactly one login");
    assert!(!headers.contains_key("www-authenticate"));
    assert!(leaks_no_token(&fake, &body));
    assert!(leaks_no_token(&fake, &headers_text(&headers)));
}

#[tokio::test]
async fn layer_errors_become_503_and_an_unreachable_api_502() {
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;

    // The API is gone: a port nobody listens on (the layer still has a valid token).
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_api = format!("http://{}/api", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = start_gateway(&auth, dead_api).await;
    let (status, _, body) = browser(unreachable, Method::GET, "/meshx/projects", "").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");

    // No credentials any more: the layer's own error, downcast to meshx_auth::Error.
    let gateway = start_gateway(&auth, fake.api_url()).await;
    auth.shutdown();
    let (status, headers, body) = browser(gateway, Method::GET, "/meshx/projects", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("shut down"), "{body}");
    assert_eq!(
        fake.requests(),
        0,
        "nothing was sent upstream without a token"
    );
    assert!(leaks_no_token(&fake, &body));
    assert!(leaks_no_token(&fake, &headers_text(&headers)));
}
