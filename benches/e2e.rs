//! End to end: a hyper-util client sending to a hyper server on loopback, with and without
//! `MeshxAuthLayer` (and with the static-header floor, for reference).
//!
//! `cargo bench --bench e2e`. Each request is a GET answered with a small JSON body, read to the
//! end; HTTP/1.1 with keep-alive. `e2e/<variant>/<tasks>`: 1 task, or 16 tasks at once.

mod common;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::fmt;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tower::{Layer, Service, ServiceExt};

type ClientReq = Request<Empty<Bytes>>;
type ClientResp = Response<Incoming>;

async fn start_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        br#"{"things":[]}"#,
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn send<S>(service: &mut S, uri: &Uri, n: u64) -> Duration
where
    S: Service<ClientReq, Response = ClientResp>,
    S::Error: fmt::Debug,
{
    let start = Instant::now();
    for _ in 0..n {
        let response = service
            .ready()
            .await
            .expect("ready")
            .call(common::request(uri))
            .await
            .expect("answered");
        assert!(response.status().is_success());
        let body = response.into_body().collect().await.expect("body");
        black_box(body);
    }
    start.elapsed()
}

async fn send_from_tasks<S>(service: &S, uri: &Uri, tasks: usize, total: u64) -> Duration
where
    S: Service<ClientReq, Response = ClientResp> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: fmt::Debug,
{
    let per_task = total.div_ceil(tasks as u64).max(1);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let mut service = service.clone();
            let uri = uri.clone();
            tokio::spawn(async move { send(&mut service, &uri, per_task).await })
        })
        .collect();
    for handle in handles {
        handle.await.expect("task");
    }
    start
        .elapsed()
        .mul_f64(total as f64 / (per_task * tasks as u64) as f64)
}

fn e2e(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (addr, auth) = runtime.block_on(async {
        let addr = start_server().await;
        let (auth, _) = common::build_meshx(None, true).await;
        (addr, auth)
    });
    let uri: Uri = format!("http://{addr}/api/things").parse().expect("uri");
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();

    let mut group = c.benchmark_group("e2e");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    for tasks in [1usize, 16] {
        // Interleaved, so that drifts of the machine touch every variant alike.
        let client_bare = client.clone();
        let client_static = common::static_layer(client.clone());
        let client_meshx = auth.layer().layer(client.clone());
        // Retry off: no head copy and no clone of the client kept for a replay.
        let client_meshx_no_retry = auth
            .layer()
            .retry_on_unauthorized(false)
            .layer(client.clone());
        group.bench_with_input(BenchmarkId::new("client", tasks), &tasks, |b, &tasks| {
            b.iter_custom(|iters| {
                runtime.block_on(send_from_tasks(&client_bare, &uri, tasks, iters))
            })
        });
        group.bench_with_input(
            BenchmarkId::new("client+static", tasks),
            &tasks,
            |b, &tasks| {
                b.iter_custom(|iters| {
                    runtime.block_on(send_from_tasks(&client_static, &uri, tasks, iters))
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("client+meshx", tasks),
            &tasks,
            |b, &tasks| {
                b.iter_custom(|iters| {
                    runtime.block_on(send_from_tasks(&client_meshx, &uri, tasks, iters))
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("client+meshx_no_retry", tasks),
            &tasks,
            |b, &tasks| {
                b.iter_custom(|iters| {
                    runtime.block_on(send_from_tasks(&client_meshx_no_retry, &uri, tasks, iters))
                })
            },
        );
    }
    group.finish();
    assert_eq!(auth.status().retries, 0);
}

criterion_group! {
    name = benches;
    config = Criterion::default().configure_from_args();
    targets = e2e
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
