//! Shared helpers: the fake MeshX server, deadlines, JSON bodies, captured logs.

use http::Response;
use http_body_util::BodyExt;
use meshx_auth::testing::FakeMeshx;
use meshx_auth::{MeshxAuth, MeshxAuthBuilder};

use std::time::Duration;

/// A builder pointed at the fake, with its user and organization and short timeouts.
pub fn builder_for(fake: &FakeMeshx) -> MeshxAuthBuilder {
    MeshxAuth::builder()
        .api_url(fake.api_url())
        .credentials(fake.user(), fake.password())
        .org(fake.org())
        .login_timeout(Duration::from_secs(2))
        .backoff(Duration::from_millis(50), Duration::from_millis(400))
}

pub async fn auth_for(fake: &FakeMeshx) -> MeshxAuth {
    within(10, builder_for(fake).build())
        .await
        .expect("login against the fake")
}

/// Runs `f` with a deadline, so that a hang fails the test instead of stalling the suite.
pub async fn within<F: std::future::Future>(secs: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("timed out: the operation hung")
}

pub async fn bytes<B>(response: Response<B>) -> bytes::Bytes
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    within(10, response.into_body().collect())
        .await
        .expect("read the body")
        .to_bytes()
}

pub async fn json<B>(response: Response<B>) -> serde_json::Value
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let bytes = bytes(response).await;
    serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
}

pub use crate::logs::{capture_logs, text};

/// True when `haystack` contains none of the tokens the fake ever issued.
pub fn leaks_no_token(fake: &FakeMeshx, haystack: &str) -> bool {
    fake.issued_tokens()
        .iter()
        .all(|token| !haystack.contains(token.as_str()))
}
