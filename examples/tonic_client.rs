//! A tonic `Channel` wrapped with the MeshX layer and used by a generated client (tonic-health's
//! `HealthClient`, so no protoc is needed), against an in-process tonic server whose interceptor
//! checks `authorization` and `x-org` and answers `UNAUTHENTICATED` for a revoked token.
//!
//! Shows what happens to the first call after a revoke:
//! - with `auth.layer()`: it gets `UNAUTHENTICATED` back (tonic's request body is a stream, with
//!   no exact size, so it is not replayed), after the refresh; the next call succeeds;
//! - with `auth.layer().replay_buffered(64 * 1024, tonic::body::Body::new)`: the unary request,
//!   complete at once and small, is buffered and replayed; the first call succeeds.
//!
//!     cargo run --example tonic_client

use meshx_auth::MeshxAuth;
use meshx_auth::testing::FakeMeshx;
use std::sync::Arc;
use tonic::Status;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tower::{BoxError, ServiceBuilder};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let fake = Arc::new(FakeMeshx::start().await);
    let grpc_addr = start_grpc_server(fake.clone()).await?;
    let auth = MeshxAuth::builder()
        .api_url(fake.api_url())
        .credentials(fake.user(), fake.password())
        .org(fake.org())
        .build()
        .await?;
    let channel = Channel::from_shared(format!("http://{grpc_addr}"))?
        .connect()
        .await?;
    println!(
        "tonic health server on {grpc_addr}, fake MeshX at {}",
        fake.api_url()
    );

    // The default layer.
    let mut plain = HealthClient::new(
        ServiceBuilder::new()
            .layer(auth.layer())
            .service(channel.clone()),
    );
    // Unary request bodies (up to 64 KiB) buffered, so that they can be replayed.
    let mut buffered = HealthClient::new(
        ServiceBuilder::new()
            .layer(
                auth.layer()
                    .replay_buffered(64 * 1024, tonic::body::Body::new),
            )
            .service(channel),
    );

    println!("\nauth.layer():");
    check(&mut plain, "check").await;
    fake.revoke_all_tokens();
    println!("  the server revoked every token");
    check(&mut plain, "first check after the revoke").await;
    check(&mut plain, "second check").await;
    println!("  logins so far: {}", fake.logins());

    println!("\nauth.layer().replay_buffered(64 * 1024, tonic::body::Body::new):");
    fake.revoke_all_tokens();
    println!("  the server revoked every token");
    check(&mut buffered, "first check after the revoke").await;
    println!("  logins so far: {} (one per revoke)", fake.logins());
    auth.shutdown();
    Ok(())
}

async fn check<S>(client: &mut HealthClient<S>, what: &str)
where
    S: tonic::client::GrpcService<tonic::body::Body>,
    S::Error: Into<BoxError>,
    S::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <S::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    let request = HealthCheckRequest {
        service: String::new(),
    };
    match client.check(request).await {
        Ok(answer) => println!("  {what:<29} -> {:?}", answer.get_ref().status()),
        Err(status) => println!("  {what:<29} -> {:?}: {}", status.code(), status.message()),
    }
}

/// A tonic health server on 127.0.0.1 behind an interceptor that accepts the fake's valid tokens
/// and one of its organization names.
async fn start_grpc_server(fake: Arc<FakeMeshx>) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let interceptor = move |request: tonic::Request<()>| -> Result<tonic::Request<()>, Status> {
        let metadata = request.metadata();
        let token = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !token.is_some_and(|t| fake.is_token_valid(t)) {
            return Err(Status::unauthenticated("missing, revoked or expired token"));
        }
        let org = metadata.get("x-org").and_then(|v| v.to_str().ok());
        if !org.is_some_and(|org| fake.organizations().iter().any(|o| o.name == org)) {
            return Err(Status::permission_denied("x-org names no organization"));
        }
        Ok(request)
    };
    let health = HealthServer::with_interceptor(
        HealthService::from_health_reporter(HealthReporter::new()),
        interceptor,
    );
    tokio::spawn(Server::builder().serve_with_incoming(health, TcpIncoming::from(listener)));
    Ok(addr)
}
