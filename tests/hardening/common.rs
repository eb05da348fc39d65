//! Helpers: a hyper-util client behind the layer, a deadline for every await, log capture, and the
//! fault-matrix driver shared by the fault tests.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use meshx_auth::testing::FakeMeshx;
use meshx_auth::{Error, MeshxAuth, MeshxAuthBuilder};

use std::time::Duration;
use tokio::time::Instant;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A builder pointed at `api_url` with the fake's user and organization, a short login timeout
/// and a short backoff.
pub fn builder(fake: &FakeMeshx, api_url: &str) -> MeshxAuthBuilder {
    MeshxAuth::builder()
        .api_url(api_url)
        .credentials(fake.user(), fake.password())
        .org(fake.org())
        .login_timeout(LOGIN_TIMEOUT)
        .backoff(BACKOFF_BASE, BACKOFF_CAP)
}

/// Settings of the fault matrix.
pub const LOGIN_TIMEOUT: Duration = Duration::from_millis(500);
pub const BACKOFF_BASE: Duration = Duration::from_millis(50);
pub const BACKOFF_CAP: Duration = Duration::from_millis(400);
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(1);

pub fn get(fake: &FakeMeshx, path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://{}{}", fake.addr(), path))
        .body(Full::default())
        .unwrap()
}

/// Runs `f` with a deadline, so that a hang fails the test instead of stalling the suite.
pub async fn within<F: std::future::Future>(limit: Duration, f: F) -> F::Output {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("hung for more than {limit:?}"))
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

pub use crate::logs::{capture_logs, text};

/// What the requests sent during a phase got back.
#[derive(Debug, Default)]
pub struct Outcomes {
    pub ok: u64,
    pub unauthorized: u64,
    pub other_status: u64,
    /// Typed `meshx_auth::Error`s (request not sent), by variant name.
    pub refused: Vec<String>,
    /// Anything else: transport errors of the inner client, untyped errors.
    pub other_errors: Vec<String>,
    /// The slowest request.
    pub slowest: Duration,
}

/// Sends a request every `every` for `duration`, each bounded by `limit`, and sorts the answers.
pub async fn drive<S>(
    client: &mut S,
    fake: &FakeMeshx,
    duration: Duration,
    every: Duration,
    limit: Duration,
) -> Outcomes
where
    S: tower::Service<
            Request<Full<Bytes>>,
            Response = Response<hyper::body::Incoming>,
            Error = tower::BoxError,
        >,
{
    use tower::ServiceExt;
    let mut out = Outcomes::default();
    let end = Instant::now() + duration;
    let mut i = 0u64;
    while Instant::now() < end {
        i += 1;
        let started = Instant::now();
        let request = get(fake, &format!("/api/fault/{i}"));
        let result = within(limit, async { client.ready().await?.call(request).await }).await;
        out.slowest = out.slowest.max(started.elapsed());
        match result {
            Ok(response) if response.status() == 200 => out.ok += 1,
            Ok(response) if response.status() == 401 => out.unauthorized += 1,
            Ok(response) => {
                out.other_status += 1;
                out.other_errors
                    .push(format!("status {}", response.status()));
            }
            Err(error) => match error.downcast_ref::<Error>() {
                Some(Error::TokenUnavailable(inner)) => out
                    .refused
                    .push(format!("TokenUnavailable({})", variant(inner))),
                Some(other) => out.refused.push(variant(other)),
                None => out.other_errors.push(error.to_string()),
            },
        }
        tokio::time::sleep(every).await;
    }
    out
}

/// The variant name of an error.
pub fn variant(error: &Error) -> String {
    let debug = format!("{error:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_owned()
}
