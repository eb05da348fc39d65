//! The organizations you can see, and how `x-org` is chosen.
//!
//! - `auth.organizations().await` lists them (`GET {api}/iam/organization/list`);
//! - `x-org` takes an organization's *name*: given its UUID identifier by mistake, the crate logs
//!   a warning naming the organization;
//! - a `RequestOrg` request extension sends one request on behalf of another organization.
//!
//! With `MESHX_*` set (see `MeshxAuthBuilder::from_env`) it lists your organizations on that API;
//! otherwise it runs against the fake MeshX server in-process.
//!
//!     cargo run --example list_organizations

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use meshx_auth::testing::FakeMeshx;
use meshx_auth::{MeshxAuth, MeshxAuthBuilder, Organization, RequestOrg};
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "meshx_auth=warn".into()),
        )
        .with_target(false)
        .with_writer(std::io::stdout)
        .init();
    let configured = ["MESHX_API_URL", "MESHX_USER", "MESHX_TOKEN", "MESHX_ORG"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if configured {
        let auth = MeshxAuthBuilder::from_env()?.build().await?;
        print(&auth.organizations().await?);
        return Ok(());
    }

    let fake = FakeMeshx::start().await;
    let auth = MeshxAuth::builder()
        .api_url(fake.api_url())
        .credentials(fake.user(), fake.password())
        .org(fake.org())
        .build()
        .await?;
    let orgs = auth.organizations().await?;
    print(&orgs);

    // One request per organization, through the same client: RequestOrg overrides x-org.
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(Client::builder(TokioExecutor::new()).build_http());
    for org in &orgs {
        let mut request = http::Request::get(format!("http://{}/api/projects", fake.addr()))
            .body(Full::<Bytes>::default())?;
        request.extensions_mut().insert(RequestOrg::new(&org.name)?);
        let response = client.ready().await?.call(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let echo: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        println!(
            "GET /api/projects with RequestOrg({:?}) -> {status}, x-org seen: {}",
            org.name, echo["org"]
        );
    }

    // The classic mistake: the identifier instead of the name. The build logs a warning.
    println!(
        "\nBuilding with .org({:?}) (an identifier):",
        orgs[0].identifier
    );
    let mistaken = MeshxAuth::builder()
        .api_url(fake.api_url())
        .credentials(fake.user(), fake.password())
        .org(orgs[0].identifier.clone())
        .build()
        .await?;
    mistaken.shutdown();
    auth.shutdown();
    Ok(())
}

fn print(orgs: &[Organization]) {
    println!("{} organizations:", orgs.len());
    for org in orgs {
        println!(
            "  name {:<12} display name {:<12} identifier {}  urn {}  owner {}  system {}  ({})",
            format!("{:?}", org.name),
            format!("{:?}", org.display_name),
            org.identifier,
            org.urn,
            org.owner.as_deref().unwrap_or("-"),
            org.is_system,
            org.description.as_deref().unwrap_or("")
        );
    }
}
