//! A hyper-util legacy `Client`, over HTTP/1 and over HTTP/2, wrapped with the MeshX layer.
//!
//! Starts the fake MeshX server in-process (no set-up needed), sends a GET and a POST with each
//! protocol, then revokes every token and shows both requests recovering with one login.
//!
//!     cargo run --example hyper_client

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use meshx_auth::testing::FakeMeshx;
use meshx_auth::{CloneBodies, MeshxAuth, MeshxAuthService};
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

/// The client with the layer; `replay_cloneable_bodies` lets a POST (`Full<Bytes>` is `Clone`)
/// be replayed after a 401, not only bodyless requests.
type MeshxClient = MeshxAuthService<Client<HttpConnector, Full<Bytes>>, CloneBodies>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let fake = FakeMeshx::start().await;
    let auth = MeshxAuth::builder()
        .api_url(fake.api_url())
        .credentials(fake.user(), fake.password())
        .org(fake.org())
        .build()
        .await?;
    println!(
        "Fake MeshX API at {}; logged in ({} login)",
        fake.api_url(),
        fake.logins()
    );

    // HTTP/1.1, and HTTP/2 with prior knowledge (h2c: fine on loopback; over TLS use
    // hyper-rustls with ALPN, as in the quickstart example).
    let http1 = Client::builder(TokioExecutor::new()).build_http();
    let http2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();

    for (name, client) in [("HTTP/1.1", http1), ("HTTP/2", http2)] {
        let mut client: MeshxClient = ServiceBuilder::new()
            .layer(auth.layer().replay_cloneable_bodies())
            .service(client);
        let base = format!("http://{}/api", fake.addr());
        println!("\n{name}:");
        send(&mut client, "GET", &format!("{base}/projects"), "").await?;
        send(
            &mut client,
            "POST",
            &format!("{base}/datasets"),
            r#"{"name":"d1"}"#,
        )
        .await?;

        fake.revoke_all_tokens();
        println!("  the server revoked every token");
        let (logins, retries) = (fake.logins(), auth.status().retries);
        send(&mut client, "GET", &format!("{base}/projects"), "").await?;
        fake.revoke_all_tokens();
        println!("  revoked again");
        send(
            &mut client,
            "POST",
            &format!("{base}/datasets"),
            r#"{"name":"d2"}"#,
        )
        .await?;
        println!(
            "  {} logins for 2 revokes; {} requests replayed",
            fake.logins() - logins,
            auth.status().retries - retries
        );
    }
    auth.shutdown();
    Ok(())
}

async fn send(
    client: &mut MeshxClient,
    method: &str,
    url: &str,
    body: &'static str,
) -> Result<(), BoxError> {
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from_static(body.as_bytes())))?;
    let response = client.ready().await?.call(request).await?;
    let (status, version) = (response.status(), response.version());
    let bytes = response.into_body().collect().await?.to_bytes();
    let echo: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    println!(
        "  {method:<4} {:<14} -> {status} over {version:?}, x-org seen by the server: {}, body: {}",
        echo["path"].as_str().unwrap_or("?"),
        echo["org"],
        echo["body"]
    );
    Ok(())
}
