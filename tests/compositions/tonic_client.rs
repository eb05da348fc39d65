//! Issue 3.2: a `tonic::transport::Channel` wrapped with the layer, used by a generated client
//! (tonic-health's), against a real tonic server whose interceptor checks `authorization` and
//! `x-org` and answers `UNAUTHENTICATED` for a revoked token.

use crate::common::*;
use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use meshx_auth::RequestOrg;
use meshx_auth::testing::FakeMeshx;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tower::{Service, ServiceBuilder, ServiceExt};

/// The cap used for buffered replay in these tests (and recommended in the docs).
const CAP: usize = 64 * 1024;

/// A tonic health server on 127.0.0.1 behind an interceptor that accepts only the fake's valid
/// tokens and one of its organization names.
struct GrpcServer {
    addr: SocketAddr,
    /// Calls that reached the interceptor.
    calls: Arc<AtomicU64>,
    /// Calls answered `UNAUTHENTICATED`.
    unauthenticated: Arc<AtomicU64>,
    /// The `x-org` of every accepted call.
    orgs: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_grpc(fake: Arc<FakeMeshx>) -> GrpcServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let unauthenticated = Arc::new(AtomicU64::new(0));
    let orgs = Arc::new(Mutex::new(Vec::new()));
    let check = {
        let (calls, unauthenticated, orgs) = (calls.clone(), unauthenticated.clone(), orgs.clone());
        move |request: tonic::Request<()>| -> Result<tonic::Request<()>, Status> {
            calls.fetch_add(1, Ordering::SeqCst);
            let metadata = request.metadata();
            let token = metadata
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if !token.is_some_and(|t| fake.is_token_valid(t)) {
                unauthenticated.fetch_add(1, Ordering::SeqCst);
                return Err(Status::unauthenticated("missing, revoked or expired token"));
            }
            let org = metadata
                .get("x-org")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !fake.organizations().iter().any(|o| o.name == org) {
                return Err(Status::permission_denied("x-org names no organization"));
            }
            orgs.lock().unwrap().push(org.to_owned());
            Ok(request)
        }
    };
    let health = HealthServer::with_interceptor(
        HealthService::from_health_reporter(HealthReporter::new()),
        check,
    );
    let task = tokio::spawn(async move {
        let _ = Server::builder()
            .serve_with_incoming(health, TcpIncoming::from(listener))
            .await;
    });
    GrpcServer {
        addr,
        calls,
        unauthenticated,
        orgs,
        task,
    }
}

async fn channel(server: &GrpcServer) -> Channel {
    within(
        10,
        Channel::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect(),
    )
    .await
    .expect("connect to the tonic server")
}

fn check_request() -> HealthCheckRequest {
    HealthCheckRequest {
        service: String::new(),
    }
}

/// The layer's bounds hold for a tonic channel and its body type.
#[test]
fn a_tonic_channel_fits_the_layer() {
    fn assert_service<S: Service<http::Request<tonic::body::Body>>>(_: &S) {}
    fn assert_body<B: http_body::Body + Default + Send + 'static>() {}
    assert_body::<tonic::body::Body>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let fake = FakeMeshx::start().await;
        let auth = auth_for(&fake).await;
        let channel = Channel::from_static("http://127.0.0.1:1").connect_lazy();
        assert_service(
            &ServiceBuilder::new()
                .layer(auth.layer())
                .service(channel.clone()),
        );
        assert_service(
            &ServiceBuilder::new()
                .layer(auth.layer().replay_buffered(CAP, tonic::body::Body::new))
                .service(channel),
        );
    });
}

/// Default layer: tonic's request body has no exact size hint, so it is not replayable. The first
/// call after a revoke gets `UNAUTHENTICATED` back, but only once the refresh is done: the next
/// call succeeds, and there was exactly one login.
#[tokio::test]
async fn default_layer_hands_back_the_first_unauthenticated_and_the_next_call_succeeds() {
    let fake = Arc::new(FakeMeshx::start().await);
    let server = start_grpc(fake.clone()).await;
    let auth = auth_for(&fake).await;
    let mut client = HealthClient::new(
        ServiceBuilder::new()
            .layer(auth.layer())
            .service(channel(&server).await),
    );

    let answer = within(10, client.check(check_request())).await.unwrap();
    assert_eq!(answer.get_ref().status(), ServingStatus::Serving);
    assert_eq!(server.orgs.lock().unwrap().as_slice(), [fake.org()]);

    fake.revoke_all_tokens();
    let status = within(10, client.check(check_request()))
        .await
        .expect_err("the first call after a revoke is handed back");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        fake.logins(),
        2,
        "the refresh is done before the answer is handed back"
    );
    assert_eq!(server.unauthenticated.load(Ordering::SeqCst), 1);
    assert_eq!(
        auth.status().retries,
        0,
        "a streaming body is never replayed"
    );

    let answer = within(10, client.check(check_request())).await.unwrap();
    assert_eq!(answer.get_ref().status(), ServingStatus::Serving);
    assert_eq!(fake.logins(), 2, "one login in all");
    assert_eq!(server.calls.load(Ordering::SeqCst), 3);
}

/// `replay_buffered`: a unary request body is complete at once, so it is buffered and replayed:
/// the first call after a revoke succeeds, with one login.
#[tokio::test]
async fn replay_buffered_makes_the_first_unary_call_after_a_revoke_succeed() {
    let fake = Arc::new(FakeMeshx::start().await);
    let server = start_grpc(fake.clone()).await;
    let auth = auth_for(&fake).await;
    let mut client = HealthClient::new(
        ServiceBuilder::new()
            .layer(auth.layer().replay_buffered(CAP, tonic::body::Body::new))
            .service(channel(&server).await),
    );
    let answer = within(10, client.check(check_request())).await.unwrap();
    assert_eq!(answer.get_ref().status(), ServingStatus::Serving);

    fake.revoke_all_tokens();
    let answer = within(10, client.check(check_request()))
        .await
        .expect("replayed with the fresh token");
    assert_eq!(answer.get_ref().status(), ServingStatus::Serving);
    assert_eq!(fake.logins(), 2, "exactly one login");
    assert_eq!(server.unauthenticated.load(Ordering::SeqCst), 1);
    assert_eq!(
        server.calls.load(Ordering::SeqCst),
        3,
        "first, rejected, replay"
    );
    assert_eq!(auth.status().retries, 1);

    // A message that is not the default one is replayed intact: an unknown service name is
    // NOT_FOUND (not a decode error), which the server can only say after reading it.
    fake.revoke_all_tokens();
    let status = within(
        10,
        client.check(HealthCheckRequest {
            service: "no.such.Service".into(),
        }),
    )
    .await
    .expect_err("unknown service");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(fake.logins(), 3);
    assert_eq!(auth.status().retries, 2);
}

/// A server-streaming call (`watch`) has a unary request: replayed the same way.
#[tokio::test]
async fn replay_buffered_recovers_a_server_streaming_call() {
    let fake = Arc::new(FakeMeshx::start().await);
    let server = start_grpc(fake.clone()).await;
    let auth = auth_for(&fake).await;
    let mut client = HealthClient::new(
        ServiceBuilder::new()
            .layer(auth.layer().replay_buffered(CAP, tonic::body::Body::new))
            .service(channel(&server).await),
    );
    fake.revoke_all_tokens();
    let mut stream = within(10, client.watch(check_request()))
        .await
        .expect("replayed")
        .into_inner();
    let first = within(10, stream.message()).await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    assert_eq!(fake.logins(), 2);
    assert_eq!(auth.status().retries, 1);
}

/// The organization of one call can be changed with a `RequestOrg` in the tonic request's
/// extensions; the next call goes back to the default.
#[tokio::test]
async fn request_org_extension_overrides_x_org_for_one_grpc_call() {
    let fake = Arc::new(FakeMeshx::start().await);
    let server = start_grpc(fake.clone()).await;
    let auth = auth_for(&fake).await;
    let mut client = HealthClient::new(
        ServiceBuilder::new()
            .layer(auth.layer().replay_buffered(CAP, tonic::body::Body::new))
            .service(channel(&server).await),
    );
    let mut request = tonic::Request::new(check_request());
    request
        .extensions_mut()
        .insert(RequestOrg::new("other-org").unwrap());
    within(10, client.check(request)).await.unwrap();
    within(10, client.check(check_request())).await.unwrap();
    assert_eq!(
        server.orgs.lock().unwrap().as_slice(),
        ["other-org", fake.org()]
    );
}

/// A request body fed by a channel: a client stream still being written.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// One gRPC message frame (uncompressed) around `payload`.
fn grpc_frame(payload: &[u8]) -> Bytes {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    Bytes::from(frame)
}

fn raw_check(addr: SocketAddr, body: ChannelBody) -> http::Request<tonic::body::Body> {
    http::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(body))
        .unwrap()
}

/// With `replay_buffered`, a client stream that is still being written is sent at once (the
/// layer never waits for its end) and never replayed; a body longer than the cap is not
/// replayed either. Both get `UNAUTHENTICATED` back after the one refresh.
#[tokio::test]
async fn streams_and_bodies_over_the_cap_are_never_buffered_or_replayed() {
    let fake = Arc::new(FakeMeshx::start().await);
    let server = start_grpc(fake.clone()).await;
    let auth = auth_for(&fake).await;
    let mut layered = ServiceBuilder::new()
        .layer(auth.layer().replay_buffered(CAP, tonic::body::Body::new))
        .service(channel(&server).await);

    // A stream whose writer stays open: if the layer waited for the end, this would hang.
    fake.revoke_all_tokens();
    let (writer, reader) = mpsc::channel(4);
    writer.send(grpc_frame(b"")).await.unwrap();
    let request = raw_check(server.addr, ChannelBody(reader));
    let response = within(10, layered.ready().await.unwrap().call(request))
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "16");
    assert_eq!(fake.logins(), 2, "the refresh happened");
    assert_eq!(auth.status().retries, 0, "a stream is never replayed");
    assert_eq!(server.unauthenticated.load(Ordering::SeqCst), 1);
    drop(writer);

    // Complete at once but larger than the cap: sent unchanged, not replayed.
    fake.revoke_all_tokens();
    let (writer, reader) = mpsc::channel(8);
    for _ in 0..3 {
        writer
            .send(Bytes::from(vec![0u8; 40 * 1024]))
            .await
            .unwrap();
    }
    drop(writer);
    let request = raw_check(server.addr, ChannelBody(reader));
    let response = within(10, layered.ready().await.unwrap().call(request))
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "16");
    assert_eq!(fake.logins(), 3);
    assert_eq!(auth.status().retries, 0, "over the cap: not replayed");
    assert_eq!(server.unauthenticated.load(Ordering::SeqCst), 2);

    // The generated client still works through the same service, with the fresh token.
    let mut client = HealthClient::new(layered);
    within(10, client.check(check_request())).await.unwrap();
    assert_eq!(fake.logins(), 3);
}

/// What the inner service receives when a body is too long to buffer: every byte, in order,
/// once.
#[tokio::test]
async fn a_body_over_the_cap_reaches_the_inner_service_intact_and_once() {
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(Mutex::new(Vec::new()));
    let inner = {
        let (calls, received) = (calls.clone(), received.clone());
        tower::service_fn(move |request: http::Request<tonic::body::Body>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let received = received.clone();
            async move {
                let bytes = request.into_body().collect().await?.to_bytes();
                received.lock().unwrap().push(bytes);
                // Always UNAUTHENTICATED: the layer refreshes and, having no copy, hands it back.
                Ok::<_, Status>(
                    http::Response::builder()
                        .header("grpc-status", "16")
                        .body(())
                        .unwrap(),
                )
            }
        })
    };
    let mut layered = ServiceBuilder::new()
        .layer(auth.layer().replay_buffered(CAP, tonic::body::Body::new))
        .service(inner);
    let chunks: Vec<Bytes> = (0u8..5).map(|i| Bytes::from(vec![i; 30 * 1024])).collect();
    let (writer, reader) = mpsc::channel(8);
    for chunk in &chunks {
        writer.send(chunk.clone()).await.unwrap();
    }
    drop(writer);
    let request = http::Request::post("/svc/Method")
        .body(tonic::body::Body::new(ChannelBody(reader)))
        .unwrap();
    let response = within(10, layered.ready().await.unwrap().call(request))
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "16");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "sent once");
    assert_eq!(
        received.lock().unwrap()[0],
        chunks.concat(),
        "intact, in order"
    );
    assert_eq!(fake.logins(), 2, "the refresh still happened");
}
