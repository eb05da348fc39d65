//! Issue 3.4 and 3.5: the organization list, the warning for a UUID given as the organization,
//! and the per-request organization.

use crate::common::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use meshx_auth::testing::FakeMeshx;
use meshx_auth::{MeshxAuth, RequestOrg};
use tower::{Service, ServiceBuilder, ServiceExt};

#[tokio::test]
async fn organizations_lists_the_fakes_organizations_with_every_field() {
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;
    let before = fake.authorized_requests();
    let orgs = within(10, auth.organizations()).await.unwrap();
    assert_eq!(orgs, fake.organizations(), "every field, in order");
    assert_eq!(orgs.len(), 2);
    let first = &orgs[0];
    assert_eq!(first.name, fake.org());
    assert_eq!(first.identifier, "00000000-0000-4000-8000-000000000001");
    assert_eq!(first.urn, format!("urn:meshx:org:{}", fake.org()));
    assert_eq!(first.display_name, "demo org");
    assert_eq!(
        first.description.as_deref(),
        Some("fake organization demo-org")
    );
    assert_eq!(first.owner.as_deref(), Some(fake.user()));
    assert!(!first.is_system);
    assert_eq!(orgs[1].name, "other-org");
    assert_eq!(
        fake.authorized_requests(),
        before + 1,
        "GET /iam/organization/list with the token"
    );
}

#[tokio::test]
async fn a_uuid_org_logs_a_warning_naming_the_organization() {
    let (logs, _guard) = capture_logs();
    let fake = FakeMeshx::start().await;
    let identifier = fake.organizations()[0].identifier.clone();
    let auth = within(10, builder_for(&fake).org(identifier.clone()).build())
        .await
        .unwrap();
    let logged = text(&logs);
    let line = logged
        .lines()
        .find(|l| l.contains("WARN") && l.contains(&identifier))
        .unwrap_or_else(|| panic!("no warning naming {identifier}: {logged}"));
    assert!(
        line.contains(&format!("organization \"{}\"", fake.org())),
        "{line}"
    );
    assert!(line.contains("x-org takes the name"), "{line}");
    assert!(
        line.contains(&format!(".org(\"{}\")", fake.org())),
        "{line}"
    );
    assert!(leaks_no_token(&fake, &logged));
    // The name is what the API wants: the identifier is refused.
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(Client::builder(TokioExecutor::new()).build_http());
    let response = within(
        10,
        client.ready().await.unwrap().call(
            Request::get(format!("http://{}/api/x", fake.addr()))
                .body(Full::<Bytes>::default())
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(fake.wrong_org(), 1);
}

#[tokio::test]
async fn an_unknown_uuid_still_warns_and_a_name_does_not() {
    let (logs, _guard) = capture_logs();
    let fake = FakeMeshx::start().await;
    let stranger = "3f2b8c1e-9a4d-4e5f-8b6a-1c2d3e4f5a6b";
    within(10, builder_for(&fake).org(stranger).build())
        .await
        .unwrap();
    let logged = text(&logs);
    assert!(
        logged
            .lines()
            .any(|l| l.contains("WARN") && l.contains("looks like a UUID")),
        "{logged}"
    );
    logs.lock().unwrap().clear();
    within(10, builder_for(&fake).build()).await.unwrap();
    assert!(!text(&logs).contains("WARN"), "{}", text(&logs));
}

fn get(fake: &FakeMeshx, path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://{}{path}", fake.addr()))
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn a_request_org_extension_or_an_x_org_header_overrides_the_org_for_one_request() {
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(Client::builder(TokioExecutor::new()).build_http());
    let mut send = async |request: Request<Full<Bytes>>| {
        let response = within(10, client.ready().await.unwrap().call(request))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        json(response).await["org"].clone()
    };

    let mut request = get(&fake, "/api/a");
    request
        .extensions_mut()
        .insert(RequestOrg::new("other-org").unwrap());
    assert_eq!(send(request).await, "other-org", "the extension");
    assert_eq!(
        send(get(&fake, "/api/b")).await,
        fake.org(),
        "for one request only"
    );

    // A pre-set header wins over the extension.
    let mut request = get(&fake, "/api/c");
    request
        .headers_mut()
        .insert("x-org", http::HeaderValue::from_static(fake_org_static()));
    request
        .extensions_mut()
        .insert(RequestOrg::new("other-org").unwrap());
    assert_eq!(send(request).await, fake.org(), "the header wins");

    // The override survives the replay after a revoke.
    fake.revoke_all_tokens();
    let mut request = get(&fake, "/api/d");
    request
        .extensions_mut()
        .insert(RequestOrg::new("other-org").unwrap());
    assert_eq!(send(request).await, "other-org");
    assert_eq!(fake.logins(), 2);
    assert_eq!(auth.status().retries, 1);
}

fn fake_org_static() -> &'static str {
    meshx_auth::testing::FAKE_ORG
}

#[test]
fn request_org_refuses_empty_and_invalid_names() {
    assert!(RequestOrg::new("  ").is_err());
    assert!(RequestOrg::new("bad\nname").is_err());
    assert_eq!(RequestOrg::new(" acme ").unwrap().as_str(), "acme");
}

/// After a revoke, `organizations()` reads the list again with a fresh token, as the layer does
/// for a 401.
#[tokio::test]
async fn organizations_recover_after_a_revoke() {
    let fake = FakeMeshx::start().await;
    let auth: MeshxAuth = auth_for(&fake).await;
    fake.revoke_all_tokens();
    let orgs = within(10, auth.organizations()).await;
    assert!(orgs.is_ok(), "{orgs:?}");
    assert_eq!(fake.logins(), 2);
}
