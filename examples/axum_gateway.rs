//! A browser-facing axum gateway that forwards `/meshx/...` to the MeshX API through a hyper
//! client wrapped with the MeshX layer: the browser never holds a MeshX credential.
//!
//! Also shows the other axum composition: a `Router` as the inner service of the layer, with
//! `HandleErrorLayer` turning the layer's error (a `BoxError` that downcasts to
//! `meshx_auth::Error`) into a response.
//!
//! Runs against the in-process fake MeshX server (no set-up needed):
//!
//!     cargo run --example axum_gateway

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use meshx_auth::testing::FakeMeshx;
use meshx_auth::{CloneBodies, MeshxAuth, MeshxAuthService};
use std::net::SocketAddr;
use tower::{BoxError, ServiceBuilder, ServiceExt};

type MeshxClient = MeshxAuthService<Client<HttpConnector, Full<Bytes>>, CloneBodies>;

#[derive(Clone)]
struct Gateway {
    meshx: MeshxClient,
    api: String,
}

/// `ANY /meshx/{*path}` -> `{api}/{path}`. Only the method, the content type and the body are
/// forwarded: the browser's own `Authorization` and cookies stay here.
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
            parts.headers.remove(http::header::WWW_AUTHENTICATE);
            Response::from_parts(parts, Body::new(body))
        }
        // The layer's own failure (no token could be had, shut down): 503, with the reason.
        Err(error) => match error.downcast_ref::<meshx_auth::Error>() {
            Some(auth) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("MeshX credentials unavailable: {auth}"),
            )
                .into_response(),
            // The client's failure (connection refused, ...): 502.
            None => (StatusCode::BAD_GATEWAY, "MeshX API unreachable").into_response(),
        },
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let fake = FakeMeshx::start().await;
    let auth = MeshxAuth::builder()
        .api_url(fake.api_url())
        .credentials(fake.user(), fake.password())
        .org(fake.org())
        .build()
        .await?;

    // (b) The gateway: axum in front, a wrapped hyper client behind.
    let meshx = ServiceBuilder::new()
        .layer(auth.layer().replay_cloneable_bodies())
        .service(Client::builder(TokioExecutor::new()).build_http());
    let gateway = Router::new()
        .route("/meshx/{*path}", any(forward))
        .with_state(Gateway {
            meshx,
            api: fake.api_url(),
        });
    let gateway_addr = serve(gateway).await?;
    println!(
        "Gateway on http://{gateway_addr}/meshx/..., MeshX (fake) at {}",
        fake.api_url()
    );

    let browser = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let url = format!("http://{gateway_addr}/meshx/projects");
    let (status, body) = fetch(&browser, Method::GET, &url, "").await?;
    println!("browser GET /meshx/projects -> {status} {body}");
    fake.revoke_all_tokens();
    let (status, body) = fetch(&browser, Method::POST, &url, r#"{"name":"p1"}"#).await?;
    println!(
        "after a revoke, POST /meshx/projects -> {status} {body}  (logins: {})",
        fake.logins()
    );
    let leaked = fake
        .issued_tokens()
        .iter()
        .any(|t| body.contains(t.as_str()));
    println!("a MeshX token in what the browser got: {leaked}");

    // (a) A Router as the inner service of the layer; HandleErrorLayer maps the layer's error.
    let router = Router::new().route(
        "/whoami",
        get(|headers: HeaderMap| async move {
            let org = headers
                .get("x-org")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            let bearer = headers.contains_key("authorization");
            format!("x-org={org}, bearer token present: {bearer}")
        }),
    );
    let app = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|error: BoxError| async move {
            match error.downcast_ref::<meshx_auth::Error>() {
                Some(auth) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("MeshX credentials unavailable: {auth}"),
                ),
                None => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
            }
        }))
        .layer(auth.layer())
        .service(router);
    let app_addr = serve_service(app).await?;
    let whoami = format!("http://{app_addr}/whoami");
    let (status, body) = fetch(&browser, Method::GET, &whoami, "").await?;
    println!("router behind the layer: GET /whoami -> {status} {body}");

    auth.shutdown();
    let (status, body) = fetch(&browser, Method::GET, &whoami, "").await?;
    println!("after shutdown: GET /whoami -> {status} {body}");
    let (status, body) = fetch(&browser, Method::GET, &url, "").await?;
    println!("after shutdown: gateway GET /meshx/projects -> {status} {body}");
    Ok(())
}

async fn serve(app: Router) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

async fn serve_service<S>(service: S) -> std::io::Result<SocketAddr>
where
    S: tower::Service<
            axum::extract::Request,
            Response = Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let make = axum::ServiceExt::<axum::extract::Request>::into_make_service(service);
    tokio::spawn(async move { axum::serve(listener, make).await });
    Ok(addr)
}

async fn fetch(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: Method,
    url: &str,
    body: &'static str,
) -> Result<(StatusCode, String), BoxError> {
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))?;
    let response = client.request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}
