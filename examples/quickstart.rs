//! The whole token lifecycle in a few seconds.
//!
//! With no `MESHX_*` variables set, this starts the fake MeshX server in-process and shows a
//! login, authenticated requests, a proactive refresh, and a revoked token recovered by one retry.
//!
//! With `MESHX_API_URL`, `MESHX_USER`, `MESHX_PASSWORD` (or `MESHX_TOKEN`) and `MESHX_ORG` set,
//! it talks to that API instead and lists your organizations.
//!
//!     cargo run --example quickstart
//!     RUST_LOG=meshx_auth=debug cargo run --example quickstart   # the crate's own events too

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use meshx_auth::testing::FakeMeshx;
use meshx_auth::{MeshxAuth, MeshxAuthService};
use std::time::Duration;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

/// A hyper-util client (https, or http on loopback) wrapped with the MeshX layer.
type AuthedClient = MeshxAuthService<Client<HttpsConnector<HttpConnector>, Full<Bytes>>>;

fn client(auth: &MeshxAuth) -> Result<AuthedClient, BoxError> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(ServiceBuilder::new()
        .layer(auth.layer())
        .service(Client::builder(TokioExecutor::new()).build(connector)))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "meshx_auth=info".into()),
        )
        .with_target(false)
        .init();

    let configured = ["MESHX_API_URL", "MESHX_USER", "MESHX_TOKEN", "MESHX_ORG"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if configured {
        real_api().await
    } else {
        fake_api().await
    }
}

/// Against the in-process fake: the lifecycle, compressed to 3-second tokens.
async fn fake_api() -> Result<(), BoxError> {
    let fake = FakeMeshx::builder()
        .token_lifetime(Duration::from_secs(3))
        .start()
        .await;
    println!("1. Fake MeshX API at {} (tokens live 3 s)", fake.api_url());

    let auth = MeshxAuth::builder()
        .api_url(fake.api_url())
        .credentials(fake.user(), fake.password())
        .org(fake.org())
        .build()
        .await?;
    println!(
        "2. Logged in as {:?}: token generation {}, logins so far {}",
        fake.user(),
        auth.status().generation,
        fake.logins()
    );

    // Any tower service of http::Request works; here a hyper-util client.
    let mut client = client(&auth)?;
    let base = format!("http://{}/api", fake.addr());

    for path in ["projects", "datasets", "models"] {
        let (status, body) = get(&mut client, &format!("{base}/{path}")).await?;
        println!(
            "3. GET /api/{path:<9} -> {status}, x-org seen by the server: {}",
            body["org"]
        );
    }

    println!("4. Waiting for the proactive refresh (before the 3 s token expires)...");
    let first = auth.status().generation;
    let started = tokio::time::Instant::now();
    while auth.status().generation == first && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = get(&mut client, &format!("{base}/projects")).await?;
    println!(
        "   refreshed after {:.1} s: generation {}, logins {}, GET -> {status}, expired tokens seen by the server: {}",
        started.elapsed().as_secs_f64(),
        auth.status().generation,
        fake.logins(),
        fake.expired_seen()
    );

    println!("5. The server revokes every token...");
    fake.revoke_all_tokens();
    let (status, _) = get(&mut client, &format!("{base}/projects")).await?;
    let s = auth.status();
    println!(
        "   GET -> {status} (the 401 was answered by one login and one retry: logins {}, retries {}, 401s sent {})",
        fake.logins(),
        s.retries,
        fake.unauthorized_sent()
    );

    auth.shutdown();
    let valid_for = s
        .valid_until
        .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok())
        .unwrap_or_default();
    println!(
        "6. Shut down. The token had {:.1} s left; logins {}, retries {}, consecutive failures {}",
        valid_for.as_secs_f64(),
        s.logins,
        s.retries,
        s.consecutive_failures
    );
    Ok(())
}

/// Against a real MeshX API configured by MESHX_* variables.
async fn real_api() -> Result<(), BoxError> {
    let auth = meshx_auth::MeshxAuthBuilder::from_env()?.build().await?;
    println!(
        "Logged in to {} for organization {:?}",
        auth.api_url(),
        auth.org()
    );
    let mut client = client(&auth)?;
    let url = format!(
        "{}/iam/organization/list",
        auth.api_url().trim_end_matches('/')
    );
    let (status, body) = get(&mut client, &url).await?;
    println!("GET {url} -> {status}");
    println!("{}", serde_json::to_string_pretty(&body)?);
    let orgs = auth.organizations().await?;
    println!(
        "{} organizations: {:?}",
        orgs.len(),
        orgs.iter().map(|o| &o.name).collect::<Vec<_>>()
    );
    auth.shutdown();
    Ok(())
}

async fn get(client: &mut AuthedClient, url: &str) -> Result<(u16, serde_json::Value), BoxError> {
    let request = http::Request::get(url).body(Full::default())?;
    let response = client.ready().await?.call(request).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    ))
}
