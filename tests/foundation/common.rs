//! Shared helpers: a real hyper-util client wrapped with the layer, talking to the fake server.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use meshx_auth::testing::FakeMeshx;
use meshx_auth::{MeshxAuth, MeshxAuthBuilder};
use std::time::Duration;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A builder pointed at the fake, with its user and organization and short backoff.
pub fn builder_for(fake: &FakeMeshx) -> MeshxAuthBuilder {
    MeshxAuth::builder()
        .api_url(fake.api_url())
        .credentials(fake.user(), fake.password())
        .org(fake.org())
        .login_timeout(Duration::from_secs(2))
        .backoff(Duration::from_millis(50), Duration::from_millis(400))
}

pub async fn auth_for(fake: &FakeMeshx) -> MeshxAuth {
    builder_for(fake)
        .build()
        .await
        .expect("login against the fake")
}

pub fn get(fake: &FakeMeshx, path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://{}{}", fake.addr(), path))
        .body(Full::default())
        .unwrap()
}

pub fn post(fake: &FakeMeshx, path: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::post(format!("http://{}{}", fake.addr(), path))
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

pub async fn json<B>(response: Response<B>) -> serde_json::Value
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
}

/// Runs `f` with a deadline, so that a hang fails the test instead of stalling the suite.
pub async fn within<F: std::future::Future>(secs: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("timed out: the operation hung")
}

/// A body of unknown length that cannot be replayed.
#[derive(Default)]
pub struct OneShotBody(pub Option<Bytes>);

impl http_body::Body for OneShotBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.take().map(|b| Ok(http_body::Frame::data(b))))
    }
}
