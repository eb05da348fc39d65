//! What the benches share: the request, the inner service, the floors, the hand-written lock
//! variants users write today, and the driver that runs many tasks.
//!
//! Every variant wraps the same inner service (answers 200 at once) and receives the same
//! request, built the same way, so the differences are the middleware's alone.
#![allow(dead_code)]

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION};
use http::{HeaderName, HeaderValue, Request, Response, Uri};
use http_body_util::Empty;
use meshx_auth::{MeshxAuth, Token};
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::hint::black_box;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_http::set_header::SetRequestHeaderLayer;

pub type Req = Request<Empty<Bytes>>;
pub type Resp = Response<Empty<Bytes>>;

pub const X_ORG: HeaderName = HeaderName::from_static("x-org");
pub const ORG: &str = "acme";
pub const URL: &str = "https://api.meshx.foundation/api/things";

/// Token lifetime for the rotating variants: with the default margin (capped at a quarter of the
/// lifetime) and no jitter, MeshxAuth installs a new token every 12 ms; the lock variants get a
/// new token every [`ROTATE_EVERY`] too.
pub const ROTATING_LIFETIME: Duration = Duration::from_millis(16);
pub const ROTATE_EVERY: Duration = Duration::from_millis(12);

/// A task yields to the scheduler after this many requests (every variant alike), so that the
/// background rotation and the other tasks get to run: the in-process inner service never
/// returns `Pending`, so a task would otherwise never yield.
pub const YIELD_EVERY: u64 = 32;

/// A token shaped like the MeshX (Keycloak) access tokens: a JWT of about 900 bytes. Its length
/// matters: the lock variants format and validate it on every request.
pub fn jwt(n: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut part = |len: usize| -> String {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ALPHABET[(state % 64) as usize] as char
            })
            .collect()
    };
    format!(
        "eyJhbGciOiJSUzI1NiIsInR5cCIgOiAiSldUIiwia2lkIiA6ICJrZXkifQ.{}.{}",
        part(500),
        part(342)
    )
}

/// The request every variant receives: a GET with one header, built the same way every time.
#[inline]
pub fn request(uri: &Uri) -> Req {
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = uri.clone();
    request
        .headers_mut()
        .insert(ACCEPT, HeaderValue::from_static("application/json"));
    request
}

pub fn uri() -> Uri {
    Uri::from_static(URL)
}

/// The inner service: answers 200 at once.
pub fn inner() -> impl Service<
    Req,
    Response = Resp,
    Error = Infallible,
    Future = impl Future<Output = Result<Resp, Infallible>> + Send + 'static,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(|_request: Req| std::future::ready(Ok(Response::new(Empty::new()))))
}

/// `Bearer <token>`, built per request the way hand-written middleware does it.
#[inline]
pub fn bearer(token: &str) -> HeaderValue {
    let mut value = HeaderValue::try_from(format!("Bearer {token}")).expect("a valid header value");
    value.set_sensitive(true);
    value
}

pub fn static_bearer() -> HeaderValue {
    bearer(&jwt(0))
}

pub fn org_value() -> HeaderValue {
    HeaderValue::from_static(ORG)
}

// ---------------------------------------------------------------------------------------------
// Floors.

/// The floor: tower-http `SetRequestHeader` twice, with ready-made values.
pub fn static_layer<S>(
    service: S,
) -> tower_http::set_header::SetRequestHeader<
    tower_http::set_header::SetRequestHeader<S, HeaderValue>,
    HeaderValue,
> {
    ServiceBuilder::new()
        .layer(SetRequestHeaderLayer::if_not_present(
            AUTHORIZATION,
            static_bearer(),
        ))
        .layer(SetRequestHeaderLayer::if_not_present(X_ORG, org_value()))
        .service(service)
}

/// The second floor: what any retry-capable middleware must add. It keeps a copy of the request
/// head (method, URI, version, headers, extensions) and a service to replay through, until the
/// answer comes.
#[derive(Clone, Debug, Default)]
pub struct HeadCopyLayer;

impl<S> Layer<S> for HeadCopyLayer {
    type Service = HeadCopy<S>;
    fn layer(&self, inner: S) -> HeadCopy<S> {
        HeadCopy { inner }
    }
}

#[derive(Clone, Debug)]
pub struct HeadCopy<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for HeadCopy<S>
where
    S: Service<Request<B>> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = HeadCopyFuture<S::Future, S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mut head = Request::new(());
        *head.method_mut() = request.method().clone();
        *head.uri_mut() = request.uri().clone();
        *head.version_mut() = request.version();
        *head.headers_mut() = request.headers().clone();
        *head.extensions_mut() = request.extensions().clone();
        let clone = self.inner.clone();
        let mut service = mem::replace(&mut self.inner, clone);
        let future = service.call(request);
        HeadCopyFuture {
            future,
            kept: Some((head, service)),
        }
    }
}

pin_project! {
    pub struct HeadCopyFuture<F, S> {
        #[pin]
        future: F,
        kept: Option<(Request<()>, S)>,
    }
}

impl<F: Future, S> Future for HeadCopyFuture<F, S> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = ready!(this.future.poll(cx));
        black_box(this.kept.take());
        Poll::Ready(output)
    }
}

pub fn static_head_copy_layer<S: Clone>(
    service: S,
) -> tower_http::set_header::SetRequestHeader<
    tower_http::set_header::SetRequestHeader<HeadCopy<S>, HeaderValue>,
    HeaderValue,
> {
    static_layer(HeadCopyLayer.layer(service))
}

// ---------------------------------------------------------------------------------------------
// The hand-written alternatives: a token in a lock, the header built per request.

/// A token store read synchronously in `call`.
pub trait SyncStore: Send + Sync + 'static {
    fn bearer(&self) -> HeaderValue;
    fn set_token(&self, token: String);
}

impl SyncStore for std::sync::RwLock<String> {
    #[inline]
    fn bearer(&self) -> HeaderValue {
        let token = self.read().expect("not poisoned");
        bearer(&token)
    }
    fn set_token(&self, token: String) {
        *self.write().expect("not poisoned") = token;
    }
}

impl SyncStore for std::sync::Mutex<String> {
    #[inline]
    fn bearer(&self) -> HeaderValue {
        let token = self.lock().expect("not poisoned");
        bearer(&token)
    }
    fn set_token(&self, token: String) {
        *self.lock().expect("not poisoned") = token;
    }
}

/// `std::sync::RwLock<String>` or `std::sync::Mutex<String>`: read, format, insert.
pub struct SyncLockAuth<S, L> {
    inner: S,
    store: Arc<L>,
    org: HeaderValue,
}

impl<S: Clone, L> Clone for SyncLockAuth<S, L> {
    fn clone(&self) -> Self {
        SyncLockAuth {
            inner: self.inner.clone(),
            store: self.store.clone(),
            org: self.org.clone(),
        }
    }
}

impl<S, L> fmt::Debug for SyncLockAuth<S, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SyncLockAuth")
    }
}

impl<S, L: SyncStore> SyncLockAuth<S, L> {
    pub fn new(inner: S, store: Arc<L>) -> Self {
        SyncLockAuth {
            inner,
            store,
            org: org_value(),
        }
    }
}

impl<S, L, B> Service<Request<B>> for SyncLockAuth<S, L>
where
    S: Service<Request<B>>,
    L: SyncStore,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        let value = self.store.bearer();
        let headers = request.headers_mut();
        headers.insert(AUTHORIZATION, value);
        headers.insert(X_ORG, self.org.clone());
        self.inner.call(request)
    }
}

/// `tokio::sync::RwLock<String>`: the read is an `.await`, so the future is boxed, as users
/// write it.
pub struct TokioLockAuth<S> {
    inner: S,
    store: Arc<tokio::sync::RwLock<String>>,
    org: HeaderValue,
}

impl<S: Clone> Clone for TokioLockAuth<S> {
    fn clone(&self) -> Self {
        TokioLockAuth {
            inner: self.inner.clone(),
            store: self.store.clone(),
            org: self.org.clone(),
        }
    }
}

impl<S> TokioLockAuth<S> {
    pub fn new(inner: S, store: Arc<tokio::sync::RwLock<String>>) -> Self {
        TokioLockAuth {
            inner,
            store,
            org: org_value(),
        }
    }
}

impl<S, B> Service<Request<B>> for TokioLockAuth<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = mem::replace(&mut self.inner, clone);
        let store = self.store.clone();
        let org = self.org.clone();
        Box::pin(async move {
            let value = {
                let token = store.read().await;
                bearer(&token)
            };
            let headers = request.headers_mut();
            headers.insert(AUTHORIZATION, value);
            headers.insert(X_ORG, org);
            inner.call(request).await
        })
    }
}

// ---------------------------------------------------------------------------------------------
// MeshxAuth.

/// A `MeshxAuth` over a token source of our own that counts its fetches and hands out JWT-sized
/// tokens living `lifetime` (`None`: never expire, never rotate).
pub async fn build_meshx(lifetime: Option<Duration>, retry: bool) -> (MeshxAuth, Arc<AtomicU64>) {
    let fetches = Arc::new(AtomicU64::new(0));
    let counter = fetches.clone();
    let auth = MeshxAuth::builder()
        .token_source(move || {
            let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
            async move { Ok(Token::new(jwt(n), lifetime)) }
        })
        .org(ORG)
        .refresh_jitter(Duration::ZERO)
        .retry_on_unauthorized(retry)
        .build()
        .await
        .expect("MeshxAuth builds");
    (auth, fetches)
}

// ---------------------------------------------------------------------------------------------
// All the variants, in one place.

/// Receives each variant in turn (a generic method, so nothing is boxed).
pub trait Visit {
    fn visit<S>(&mut self, name: &'static str, service: S)
    where
        S: Service<Req, Response = Resp> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: fmt::Debug + Send;
}

/// The variants' shared state: two `MeshxAuth`s (retry on, retry off) and the three locks.
pub struct Variants {
    pub meshx: MeshxAuth,
    pub meshx_no_retry: MeshxAuth,
    pub std_rwlock: Arc<std::sync::RwLock<String>>,
    pub mutex: Arc<std::sync::Mutex<String>>,
    pub tokio_rwlock: Arc<tokio::sync::RwLock<String>>,
    pub lock_rotations: Arc<AtomicU64>,
}

pub const VARIANTS: [&str; 8] = [
    "bare",
    "static",
    "static+head_copy",
    "meshx",
    "meshx_no_retry",
    "std_rwlock",
    "tokio_rwlock",
    "mutex",
];

impl Variants {
    /// Builds the state; with `rotate`, the tokens change every few milliseconds in the
    /// background (MeshxAuth through its refresher, the locks through a task of their own). Must
    /// run inside the runtime that will drive the requests.
    pub async fn new(rotate: bool) -> Self {
        let lifetime = rotate.then_some(ROTATING_LIFETIME);
        let (meshx, _) = build_meshx(lifetime, true).await;
        let (meshx_no_retry, _) = build_meshx(lifetime, false).await;
        let variants = Variants {
            meshx,
            meshx_no_retry,
            std_rwlock: Arc::new(std::sync::RwLock::new(jwt(0))),
            mutex: Arc::new(std::sync::Mutex::new(jwt(0))),
            tokio_rwlock: Arc::new(tokio::sync::RwLock::new(jwt(0))),
            lock_rotations: Arc::new(AtomicU64::new(0)),
        };
        if rotate {
            let (std_rwlock, mutex, tokio_rwlock, rotations) = (
                variants.std_rwlock.clone(),
                variants.mutex.clone(),
                variants.tokio_rwlock.clone(),
                variants.lock_rotations.clone(),
            );
            tokio::spawn(async move {
                let mut n = 1;
                loop {
                    tokio::time::sleep(ROTATE_EVERY).await;
                    n += 1;
                    std_rwlock.set_token(jwt(n));
                    mutex.set_token(jwt(n));
                    *tokio_rwlock.write().await = jwt(n);
                    rotations.fetch_add(1, Ordering::Relaxed);
                }
            });
            variants.assert_rotating().await;
        }
        variants
    }

    /// Panics unless every token store really rotates.
    pub async fn assert_rotating(&self) {
        let before = self.generations();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let after = self.generations();
        for (b, a) in before.iter().zip(after.iter()) {
            assert!(
                a >= &(b + 3),
                "tokens did not rotate: generations {before:?} -> {after:?}"
            );
        }
    }

    /// (meshx generation, meshx_no_retry generation, lock rotations)
    pub fn generations(&self) -> [u64; 3] {
        [
            self.meshx.status().generation,
            self.meshx_no_retry.status().generation,
            self.lock_rotations.load(Ordering::Relaxed),
        ]
    }

    pub fn visit(&self, v: &mut impl Visit) {
        self.visit_only(v, &VARIANTS);
    }

    pub fn visit_only(&self, v: &mut impl Visit, names: &[&str]) {
        for name in names {
            match *name {
                "bare" => v.visit("bare", inner()),
                "static" => v.visit("static", static_layer(inner())),
                "static+head_copy" => v.visit("static+head_copy", static_head_copy_layer(inner())),
                "meshx" => v.visit("meshx", self.meshx.layer().layer(inner())),
                "meshx_no_retry" => {
                    v.visit("meshx_no_retry", self.meshx_no_retry.layer().layer(inner()))
                }
                "std_rwlock" => v.visit(
                    "std_rwlock",
                    SyncLockAuth::new(inner(), self.std_rwlock.clone()),
                ),
                "tokio_rwlock" => v.visit(
                    "tokio_rwlock",
                    TokioLockAuth::new(inner(), self.tokio_rwlock.clone()),
                ),
                "mutex" => v.visit("mutex", SyncLockAuth::new(inner(), self.mutex.clone())),
                other => panic!("unknown variant {other}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Drivers.

/// One task: `n` requests, one after the other. Returns the time they took.
#[inline(never)]
pub async fn one_task<S>(service: &mut S, uri: &Uri, n: u64, yield_every: Option<u64>) -> Duration
where
    S: Service<Req, Response = Resp>,
    S::Error: fmt::Debug,
{
    let start = Instant::now();
    for i in 0..n {
        let response = service
            .ready()
            .await
            .expect("ready")
            .call(request(uri))
            .await
            .expect("answered");
        black_box(response);
        if let Some(every) = yield_every
            && i % every == every - 1
        {
            tokio::task::yield_now().await;
        }
    }
    start.elapsed()
}

/// `tasks` tokio tasks sending requests in a loop, `total` requests in all (rounded up to a
/// multiple of `tasks`). Returns the wall time, scaled to exactly `total` requests.
pub async fn many_tasks<S>(service: &S, tasks: usize, total: u64) -> Duration
where
    S: Service<Req, Response = Resp> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: fmt::Debug + Send,
{
    let per_task = total.div_ceil(tasks as u64).max(1);
    let uri = uri();
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let mut service = service.clone();
            let uri = uri.clone();
            tokio::spawn(async move {
                one_task(&mut service, &uri, per_task, Some(YIELD_EVERY)).await;
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("task");
    }
    let elapsed = start.elapsed();
    elapsed.mul_f64(total as f64 / (per_task * tasks as u64) as f64)
}

/// Task counts of the latency table.
pub const TASKS_FOR_LATENCY: [usize; 5] = [1, 4, 16, 64, 256];
