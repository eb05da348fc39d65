//! A fake MeshX server for tests: a real axum server on 127.0.0.1 that speaks the MeshX API.
//!
//! Enabled by the `test-util` feature. It serves
//! - `POST /api/iam/login` (`{"user","password"}` -> the documented answer, tokens are JWT-shaped
//!   with an `exp` claim),
//! - `GET /api/iam/organization/list` (needs a valid token),
//! - every other path under `/api/` as a protected resource that checks `Authorization: Bearer`
//!   and `x-org` (an organization *name*), and echoes the request as JSON:
//!   `{"ok":true,"method","path","org","body"}`. Two special prefixes:
//!   `/api/test/always-401` always answers 401, and `/api/grpc/...` answers the way a gRPC server
//!   does (HTTP 200 with `grpc-status: 16` for a bad token, `grpc-status: 0` otherwise).
//!
//! Tests control it (token lifetime, revocation, outage, slowness, bad answers) and read its
//! counters.
//!
//! ```no_run
//! # async fn demo() -> Result<(), meshx_auth::Error> {
//! use meshx_auth::testing::FakeMeshx;
//! let fake = FakeMeshx::start().await;
//! let auth = meshx_auth::MeshxAuth::builder()
//!     .api_url(fake.api_url())
//!     .credentials(fake.user(), fake.password())
//!     .org(fake.org())
//!     .build()
//!     .await?;
//! assert_eq!(fake.logins(), 1);
//! # Ok(()) }
//! ```

use crate::organization::Organization;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::task::JoinHandle;

/// The default user of a [`FakeMeshx`].
pub const FAKE_USER: &str = "demo";
/// The default password of a [`FakeMeshx`].
pub const FAKE_PASSWORD: &str = "demo-password";
/// The default organization name of a [`FakeMeshx`].
pub const FAKE_ORG: &str = "demo-org";

/// A fault the fake's login endpoint can play.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LoginFault {
    /// Answer with this HTTP status (and an empty JSON object).
    Status(u16),
    /// Answer with this status and a `Retry-After` of so many seconds.
    StatusWithRetryAfter(u16, u64),
    /// Answer 200 with this content type and body.
    Body {
        /// The `content-type`.
        content_type: String,
        /// The body.
        body: Vec<u8>,
    },
    /// Accept the request and never answer.
    Hang,
    /// Start a 200 answer and break the connection in the middle of the body.
    CloseMidBody,
}

/// Settings for [`FakeMeshx::builder`].
#[derive(Debug, Clone)]
pub struct FakeMeshxBuilder {
    user: String,
    password: String,
    orgs: Vec<String>,
    token_lifetime: Duration,
}

impl FakeMeshxBuilder {
    /// The one user that can log in (default [`FAKE_USER`] / [`FAKE_PASSWORD`]).
    pub fn user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = user.into();
        self.password = password.into();
        self
    }

    /// Adds an organization (the first is [`FakeMeshx::org`]); default [`FAKE_ORG`] and
    /// `other-org`.
    pub fn org(mut self, name: impl Into<String>) -> Self {
        if self.orgs == default_orgs() {
            self.orgs.clear();
        }
        self.orgs.push(name.into());
        self
    }

    /// How long issued tokens live (default 5 hours, like MeshX).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Binds 127.0.0.1 on a free port and starts serving.
    pub async fn start(self) -> FakeMeshx {
        let orgs = self
            .orgs
            .iter()
            .enumerate()
            .map(|(i, name)| Organization {
                identifier: format!("00000000-0000-4000-8000-{:012x}", i + 1),
                urn: format!("urn:meshx:org:{name}"),
                name: name.clone(),
                display_name: name.replace('-', " "),
                description: Some(format!("fake organization {name}")),
                owner: Some(self.user.clone()),
                is_system: false,
            })
            .collect();
        let state = Arc::new(FakeState {
            user: self.user,
            password: self.password,
            orgs,
            lifetime: Mutex::new(self.token_lifetime),
            fault: Mutex::new(None),
            login_delay: Mutex::new(Duration::ZERO),
            tokens: Mutex::new(HashMap::new()),
            revoked_below: AtomicU64::new(0),
            sequence: AtomicU64::new(0),
            counters: Counters::default(),
            reject_all: AtomicBool::new(false),
        });
        let app = Router::new()
            .route("/api/iam/login", post(login))
            .route("/api/iam/organization/list", get(organizations))
            .fallback(protected)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the fake MeshX server");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeMeshx { addr, state, task }
    }
}

fn default_orgs() -> Vec<String> {
    vec![FAKE_ORG.to_owned(), "other-org".to_owned()]
}

#[derive(Default)]
struct Counters {
    login_attempts: AtomicU64,
    logins: AtomicU64,
    rejected_logins: AtomicU64,
    requests: AtomicU64,
    authorized: AtomicU64,
    unauthorized: AtomicU64,
    expired_seen: AtomicU64,
    missing_credentials: AtomicU64,
    wrong_org: AtomicU64,
}

struct Issued {
    sequence: u64,
    expires_at: Instant,
}

struct FakeState {
    user: String,
    password: String,
    orgs: Vec<Organization>,
    lifetime: Mutex<Duration>,
    fault: Mutex<Option<LoginFault>>,
    login_delay: Mutex<Duration>,
    tokens: Mutex<HashMap<String, Issued>>,
    revoked_below: AtomicU64,
    sequence: AtomicU64,
    counters: Counters,
    reject_all: AtomicBool,
}

/// The fake MeshX server. Stops when dropped.
pub struct FakeMeshx {
    addr: SocketAddr,
    state: Arc<FakeState>,
    task: JoinHandle<()>,
}

impl fmt::Debug for FakeMeshx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeMeshx")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeMeshx {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeMeshx {
    /// Starts a fake with the defaults: user [`FAKE_USER`] / [`FAKE_PASSWORD`], organizations
    /// [`FAKE_ORG`] and `other-org`, 5-hour tokens.
    pub async fn start() -> FakeMeshx {
        FakeMeshx::builder().start().await
    }

    /// Settings for a fake.
    pub fn builder() -> FakeMeshxBuilder {
        FakeMeshxBuilder {
            user: FAKE_USER.to_owned(),
            password: FAKE_PASSWORD.to_owned(),
            orgs: default_orgs(),
            token_lifetime: Duration::from_secs(18_000),
        }
    }

    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API base URL, `http://127.0.0.1:PORT/api`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// The user that can log in.
    pub fn user(&self) -> &str {
        &self.state.user
    }

    /// That user's password.
    pub fn password(&self) -> &str {
        &self.state.password
    }

    /// The first organization's name.
    pub fn org(&self) -> &str {
        &self.state.orgs[0].name
    }

    /// All organizations.
    pub fn organizations(&self) -> &[Organization] {
        &self.state.orgs
    }

    /// Sets the lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        *lock(&self.state.lifetime) = lifetime;
    }

    /// Revokes every token issued so far: they get 401 from now on.
    pub fn revoke_all_tokens(&self) {
        let next = self.state.sequence.load(Ordering::SeqCst) + 1;
        self.state.revoked_below.store(next, Ordering::SeqCst);
    }

    /// Makes the login answer 503 (`true`) or work again (`false`).
    pub fn set_outage(&self, down: bool) {
        self.set_login_fault(down.then_some(LoginFault::Status(503)));
    }

    /// Plays a fault on every login from now on (`None`: answer normally).
    pub fn set_login_fault(&self, fault: Option<LoginFault>) {
        *lock(&self.state.fault) = fault;
    }

    /// Delays each login answer.
    pub fn set_login_delay(&self, delay: Duration) {
        *lock(&self.state.login_delay) = delay;
    }

    /// Makes every protected resource answer 401 (`true`), whatever the token.
    pub fn set_reject_all(&self, reject: bool) {
        self.state.reject_all.store(reject, Ordering::SeqCst);
    }

    /// Whether `token` (without the `Bearer ` prefix) is one this fake issued, not revoked and not
    /// expired: for test servers of your own (a tonic interceptor, an axum extractor) that accept
    /// the fake's tokens. Counts nothing.
    pub fn is_token_valid(&self, token: &str) -> bool {
        let tokens = lock(&self.state.tokens);
        tokens.get(token).is_some_and(|issued| {
            issued.sequence >= self.state.revoked_below.load(Ordering::SeqCst)
                && Instant::now() < issued.expires_at
        })
    }

    /// Issues a token without a login, as the UI's "Authentication Token" page does.
    pub fn issue_token(&self, lifetime: Duration) -> String {
        self.state.issue(lifetime)
    }

    /// Every token issued so far (logins and [`issue_token`](Self::issue_token)), oldest first.
    /// For tests that check no token leaks into logs or errors.
    pub fn issued_tokens(&self) -> Vec<String> {
        let tokens = lock(&self.state.tokens);
        let mut all: Vec<(u64, String)> = tokens
            .iter()
            .map(|(token, issued)| (issued.sequence, token.clone()))
            .collect();
        all.sort();
        all.into_iter().map(|(_, token)| token).collect()
    }

    /// Successful logins.
    pub fn logins(&self) -> u64 {
        self.state.counters.logins.load(Ordering::SeqCst)
    }

    /// Login requests of any outcome.
    pub fn login_attempts(&self) -> u64 {
        self.state.counters.login_attempts.load(Ordering::SeqCst)
    }

    /// Logins refused for wrong credentials.
    pub fn rejected_logins(&self) -> u64 {
        self.state.counters.rejected_logins.load(Ordering::SeqCst)
    }

    /// Requests to protected resources (the organization list included), of any outcome.
    pub fn requests(&self) -> u64 {
        self.state.counters.requests.load(Ordering::SeqCst)
    }

    /// Requests to protected resources that were let through.
    pub fn authorized_requests(&self) -> u64 {
        self.state.counters.authorized.load(Ordering::SeqCst)
    }

    /// 401 answers (and gRPC UNAUTHENTICATED) sent.
    pub fn unauthorized_sent(&self) -> u64 {
        self.state.counters.unauthorized.load(Ordering::SeqCst)
    }

    /// Requests that carried an expired token.
    pub fn expired_seen(&self) -> u64 {
        self.state.counters.expired_seen.load(Ordering::SeqCst)
    }

    /// Requests without `Authorization` or `x-org`.
    pub fn missing_credentials(&self) -> u64 {
        self.state
            .counters
            .missing_credentials
            .load(Ordering::SeqCst)
    }

    /// Requests whose `x-org` named no known organization.
    pub fn wrong_org(&self) -> u64 {
        self.state.counters.wrong_org.load(Ordering::SeqCst)
    }
}

impl FakeState {
    fn issue(&self, lifetime: Duration) -> String {
        let sequence = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        let exp = SystemTime::now()
            .checked_add(lifetime)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(u64::MAX, |d| d.as_secs());
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(
            serde_json::json!({ "sub": self.user, "exp": exp, "seq": sequence, "jti": fastrand::u64(..) })
                .to_string(),
        );
        let signature = URL_SAFE_NO_PAD.encode(fastrand::u64(..).to_be_bytes());
        let token = format!("{header}.{payload}.{signature}");
        let expires_at = Instant::now()
            .checked_add(lifetime)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86_400));
        lock(&self.tokens).insert(
            token.clone(),
            Issued {
                sequence,
                expires_at,
            },
        );
        token
    }

    /// `Ok(())` for a valid bearer token, else why not (answered as a 401).
    fn check_token(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        let counters = &self.counters;
        let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            counters.missing_credentials.fetch_add(1, Ordering::SeqCst);
            return Err("missing bearer token");
        };
        let tokens = lock(&self.tokens);
        let Some(issued) = tokens.get(token) else {
            return Err("unknown token");
        };
        if issued.sequence < self.revoked_below.load(Ordering::SeqCst) {
            return Err("revoked token");
        }
        if Instant::now() >= issued.expires_at {
            counters.expired_seen.fetch_add(1, Ordering::SeqCst);
            return Err("expired token");
        }
        Ok(())
    }
}

fn unauthorized(why: &'static str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(serde_json::json!({ "error": "unauthorized", "detail": why })),
    )
        .into_response()
}

async fn login(State(state): State<Arc<FakeState>>, body: Bytes) -> Response {
    state.counters.login_attempts.fetch_add(1, Ordering::SeqCst);
    let delay = *lock(&state.login_delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let fault = lock(&state.fault).clone();
    match fault {
        None => {}
        Some(LoginFault::Status(code)) => {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return (code, axum::Json(serde_json::json!({}))).into_response();
        }
        Some(LoginFault::StatusWithRetryAfter(code, secs)) => {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return (code, [(header::RETRY_AFTER, secs.to_string())], "").into_response();
        }
        Some(LoginFault::Body { content_type, body }) => {
            return (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response();
        }
        Some(LoginFault::Hang) => {
            std::future::pending::<()>().await;
        }
        Some(LoginFault::CloseMidBody) => {
            return Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::new(BrokenBody(Some(Bytes::from_static(
                    br#"{"access_token":"abc","#,
                )))))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
    }
    #[derive(serde::Deserialize)]
    struct Credentials {
        user: String,
        password: String,
    }
    let Ok(credentials) = serde_json::from_slice::<Credentials>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "error": "expected {\"user\",\"password\"}" })),
        )
            .into_response();
    };
    if credentials.user != state.user || credentials.password != state.password {
        state
            .counters
            .rejected_logins
            .fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({ "error": "invalid_grant", "error_description": "Invalid user credentials" })),
        )
            .into_response();
    }
    let lifetime = *lock(&state.lifetime);
    let token = state.issue(lifetime);
    state.counters.logins.fetch_add(1, Ordering::SeqCst);
    let expires_in = if lifetime.subsec_nanos() == 0 {
        serde_json::json!(lifetime.as_secs())
    } else {
        serde_json::json!(lifetime.as_secs_f64())
    };
    axum::Json(serde_json::json!({
        "access_token": token,
        "refresh_token": format!("refresh-{}", fastrand::u64(..)),
        "expires_in": expires_in,
        "refresh_expires_in": 86400,
        "scope": "openid profile email",
        "token_type": "Bearer",
        "session_state": format!("{:016x}", fastrand::u64(..)),
    }))
    .into_response()
}

/// A body that sends one chunk and then fails, so the server breaks the connection mid-body.
struct BrokenBody(Option<Bytes>);

impl http_body::Body for BrokenBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(Some(match self.0.take() {
            Some(chunk) => Ok(http_body::Frame::data(chunk)),
            None => Err(std::io::Error::other("connection broken by the fake")),
        }))
    }
}

async fn organizations(State(state): State<Arc<FakeState>>, headers: HeaderMap) -> Response {
    state.counters.requests.fetch_add(1, Ordering::SeqCst);
    if let Err(why) = state.check_token(&headers) {
        state.counters.unauthorized.fetch_add(1, Ordering::SeqCst);
        return unauthorized(why);
    }
    state.counters.authorized.fetch_add(1, Ordering::SeqCst);
    axum::Json(state.orgs.clone()).into_response()
}

async fn protected(State(state): State<Arc<FakeState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    if !path.starts_with("/api/") {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    state.counters.requests.fetch_add(1, Ordering::SeqCst);
    let grpc = path.starts_with("/api/grpc/");
    let deny = |why: &'static str| {
        state.counters.unauthorized.fetch_add(1, Ordering::SeqCst);
        if grpc {
            grpc_answer("16")
        } else {
            unauthorized(why)
        }
    };
    if let Err(why) = state.check_token(&parts.headers) {
        return deny(why);
    }
    if path.starts_with("/api/test/always-401") || state.reject_all.load(Ordering::SeqCst) {
        return deny("this resource always answers 401");
    }
    let org = parts
        .headers
        .get("x-org")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(org) = org else {
        state
            .counters
            .missing_credentials
            .fetch_add(1, Ordering::SeqCst);
        return (StatusCode::FORBIDDEN, "missing x-org").into_response();
    };
    if !state.orgs.iter().any(|o| o.name == org) {
        state.counters.wrong_org.fetch_add(1, Ordering::SeqCst);
        let hint = if state.orgs.iter().any(|o| o.identifier == org) {
            "x-org takes the organization name, not its identifier"
        } else {
            "unknown organization"
        };
        return (StatusCode::FORBIDDEN, hint).into_response();
    }
    state.counters.authorized.fetch_add(1, Ordering::SeqCst);
    if grpc {
        return grpc_answer("0");
    }
    let body = match axum::body::to_bytes(body, 1024 * 1024).await {
        Ok(bytes) => bytes,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response(),
    };
    axum::Json(serde_json::json!({
        "ok": true,
        "method": parts.method.as_str(),
        "path": path,
        "org": org,
        "body": String::from_utf8_lossy(&body),
    }))
    .into_response()
}

fn grpc_answer(status: &'static str) -> Response {
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from_static(status));
    response
}
