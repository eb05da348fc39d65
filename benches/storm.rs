//! Refresh storm: N concurrent requests all answered 401 after a revoke. Measures the time until
//! every one of them has succeeded, and checks that the storm cost exactly one login.
//!
//! `cargo bench --bench storm`. The inner service is in process (10,000 concurrent requests over
//! loopback HTTP would measure the socket table, not the middleware): it answers 401 to any
//! token older than the revoke and 200 to the rest, like the fake MeshX server does. The token
//! source counts its fetches; a storm that costs more or less than one login panics.
//!
//! - `storm/revoked/N`: revoke, then N concurrent requests (spawned tasks); each gets a 401 (all
//!   of them in flight with the revoked token at once),
//!   waits for the one shared refresh, and is replayed with the new token.
//! - `storm/baseline/N`: the same N requests without a revoke, for comparison.

mod common;

use bytes::Bytes;
use common::{Req, Resp, uri};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use http::header::AUTHORIZATION;
use http::{Response, StatusCode};
use http_body_util::Empty;
use meshx_auth::{MeshxAuth, Token};
use std::convert::Infallible;
use std::future::{Future, ready};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::Barrier;
use tower::{Layer, Service, ServiceExt};

const SIZES: [usize; 2] = [1_000, 10_000];

/// Tokens are `<n>.<jwt>`; the gate accepts those with `n >= valid_from`. It holds each 401 until
/// the whole storm has arrived (a barrier of the storm's size), so that all N requests are in
/// flight with the revoked token at once, as they would be on a real connection pool.
#[derive(Clone)]
struct Gate {
    valid_from: Arc<AtomicU64>,
    unauthorized: Arc<AtomicU64>,
    storm: Arc<Mutex<Arc<Barrier>>>,
}

impl Service<Req> for Gate {
    type Response = Resp;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Resp, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let n = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|t| t.split('.').next())
            .and_then(|n| n.parse::<u64>().ok());
        let mut response = Response::new(Empty::<Bytes>::new());
        if n.is_none_or(|n| n < self.valid_from.load(Ordering::Acquire)) {
            self.unauthorized.fetch_add(1, Ordering::Relaxed);
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            let storm = self.storm.lock().expect("not poisoned").clone();
            return Box::pin(async move {
                storm.wait().await;
                Ok(response)
            });
        }
        Box::pin(ready(Ok(response)))
    }
}

struct Storm {
    auth: MeshxAuth,
    fetches: Arc<AtomicU64>,
    gate: Gate,
}

impl Storm {
    async fn new() -> Self {
        let fetches = Arc::new(AtomicU64::new(0));
        let counter = fetches.clone();
        let auth = MeshxAuth::builder()
            .token_source(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                async move { Ok(Token::new(format!("{n}.{}", common::jwt(n)), None)) }
            })
            .org(common::ORG)
            .build()
            .await
            .expect("MeshxAuth builds");
        let gate = Gate {
            valid_from: Arc::new(AtomicU64::new(0)),
            unauthorized: Arc::new(AtomicU64::new(0)),
            storm: Arc::new(Mutex::new(Arc::new(Barrier::new(1)))),
        };
        Storm {
            auth,
            fetches,
            gate,
        }
    }

    /// N concurrent requests, after a revoke when `revoke`; all must succeed. Returns the time
    /// until the last one did, and the number of 401s sent.
    async fn run(&self, n: usize, revoke: bool) -> (Duration, u64) {
        *self.gate.storm.lock().expect("not poisoned") = Arc::new(Barrier::new(n));
        let service = self.auth.layer().layer(self.gate.clone());
        let logins = self.fetches.load(Ordering::SeqCst);
        let unauthorized = self.gate.unauthorized.load(Ordering::Relaxed);
        if revoke {
            self.gate.valid_from.store(logins + 1, Ordering::Release);
        }
        let uri = uri();
        let start = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let request = common::request(&uri);
                tokio::spawn(service.clone().oneshot(request))
            })
            .collect();
        for handle in handles {
            let response = handle.await.expect("task").expect("answered");
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "a request of the storm failed"
            );
        }
        let elapsed = start.elapsed();
        let new_logins = self.fetches.load(Ordering::SeqCst) - logins;
        let expected = u64::from(revoke);
        assert_eq!(
            new_logins, expected,
            "a storm of {n} requests cost {new_logins} logins instead of {expected}"
        );
        let sent = self.gate.unauthorized.load(Ordering::Relaxed) - unauthorized;
        let expected = if revoke { n as u64 } else { 0 };
        assert_eq!(
            sent, expected,
            "every request of the storm meets the revoke"
        );
        (elapsed, sent)
    }
}

fn storm(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let storm = runtime.block_on(Storm::new());

    // Setup check, printed for the write-up: one storm of each size, one login each.
    for n in SIZES {
        let retries = storm.auth.status().retries;
        let (elapsed, unauthorized) = runtime.block_on(storm.run(n, true));
        let retried = storm.auth.status().retries - retries;
        println!(
            "storm of {n}: all succeeded after {elapsed:?}; 401s sent {unauthorized}, replays {retried}, logins 1"
        );
        assert_eq!(
            retried, n as u64,
            "every request of the storm is replayed once"
        );
    }

    let mut group = c.benchmark_group("storm");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for n in SIZES {
        group.throughput(Throughput::Elements(n as u64));
        for (name, revoke) in [("revoked", true), ("baseline", false)] {
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                b.iter_custom(|iters| {
                    runtime.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            total += storm.run(n, revoke).await.0;
                        }
                        total
                    })
                })
            });
        }
    }
    group.finish();
    let status = storm.auth.status();
    println!(
        "storms done: {} logins in all (one per revoke, plus the first), {} replays",
        status.logins, status.retries
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().configure_from_args();
    targets = storm
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
