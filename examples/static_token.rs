//! A token copied from the MeshX UI (User Profile, Authentication Token) instead of a password.
//!
//! No login ever happens. When the token is a JWT, its `exp` claim tells when it stops working:
//! the crate warns before, refuses to send it after, and an expired token is refused at build.
//! A token the API rejects (revoked) is handed back as the 401: it cannot be refreshed.
//!
//! With `MESHX_TOKEN` and `MESHX_ORG` (and `MESHX_API_URL`) set, it uses your token against that
//! API and lists your organizations; otherwise the fake MeshX server issues one in-process.
//!
//!     cargo run --example static_token
//!     MESHX_TOKEN=eyJ... MESHX_ORG=my-org cargo run --example static_token

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use meshx_auth::testing::FakeMeshx;
use meshx_auth::{MeshxAuth, MeshxAuthBuilder};
use std::time::{Duration, SystemTime};
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "meshx_auth=warn".into()),
        )
        .with_target(false)
        .init();
    if std::env::var_os("MESHX_TOKEN").is_some() {
        let auth = MeshxAuthBuilder::from_env()?.build().await?;
        describe(&auth);
        for org in auth.organizations().await? {
            println!("  organization {:?}", org.name);
        }
        return Ok(());
    }

    let fake = FakeMeshx::start().await;
    // What you would paste from the UI: a JWT valid for an hour ("Bearer " and a newline too).
    let pasted = format!("Bearer {}\n", fake.issue_token(Duration::from_secs(3_600)));
    let auth = MeshxAuth::builder()
        .api_url(fake.api_url())
        .static_token(pasted)
        .org(fake.org())
        .build()
        .await?;
    describe(&auth);

    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(Client::builder(TokioExecutor::new()).build_http());
    let url = format!("http://{}/api/projects", fake.addr());
    let request = http::Request::get(&url).body(Full::<Bytes>::default())?;
    let status = client.ready().await?.call(request).await?.status();
    println!("GET /api/projects -> {status}");

    fake.revoke_all_tokens();
    let request = http::Request::get(&url).body(Full::<Bytes>::default())?;
    let status = client.ready().await?.call(request).await?.status();
    println!(
        "after the server revoked it: GET /api/projects -> {status} (handed back: a static token cannot be refreshed; login attempts: {})",
        fake.login_attempts()
    );

    // A token whose `exp` has passed is refused before anything is sent.
    let expired = fake.issue_token(Duration::ZERO);
    let refused = MeshxAuth::builder()
        .api_url(fake.api_url())
        .static_token(expired)
        .org(fake.org())
        .build()
        .await;
    match refused {
        Err(error) => println!("an expired token at build: {error}"),
        Ok(_) => println!("an expired token at build: accepted (its exp is in this second)"),
    }
    Ok(())
}

fn describe(auth: &MeshxAuth) {
    let status = auth.status();
    let left = status
        .valid_until
        .and_then(|t| t.duration_since(SystemTime::now()).ok());
    match left {
        Some(left) => println!(
            "{} for organization {:?}: the JWT says it expires in {} min",
            status.source,
            auth.org(),
            left.as_secs() / 60
        ),
        None => println!(
            "{} for organization {:?}: not a JWT, no known expiry",
            status.source,
            auth.org()
        ),
    }
}
