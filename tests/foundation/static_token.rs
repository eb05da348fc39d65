//! Behaviour 10: a static token never logs in; its JWT `exp` is watched.

use crate::common::*;
use meshx_auth::testing::FakeMeshx;
use meshx_auth::{Error, MeshxAuth};

use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt};

pub use crate::logs::{capture_logs, text};

#[tokio::test]
async fn a_static_token_never_calls_the_login_endpoint() {
    let fake = FakeMeshx::start().await;
    let token = fake.issue_token(Duration::from_secs(3_600));
    let auth = MeshxAuth::builder()
        .api_url(fake.api_url())
        .static_token(format!("  Bearer {token}\n")) // pasted with a prefix and a newline
        .org(fake.org())
        .build()
        .await
        .unwrap();
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(http_client());
    for _ in 0..5 {
        let response = client
            .ready()
            .await
            .unwrap()
            .call(get(&fake, "/api/a"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // Revoked: the 401 is handed back, promptly, and still no login.
    fake.revoke_all_tokens();
    let response = within(5, client.ready().await.unwrap().call(get(&fake, "/api/a")))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(fake.login_attempts(), 0, "a static token never logs in");
    let status = auth.status();
    assert_eq!(status.source, "static token");
    assert_eq!(status.logins, 0);
}

#[tokio::test]
async fn a_static_jwt_warns_before_expiry_and_says_clearly_after_it() {
    let (logs, _guard) = capture_logs();
    let fake = FakeMeshx::start().await;
    let token = fake.issue_token(Duration::from_secs(2));
    let auth = MeshxAuth::builder()
        .api_url(fake.api_url())
        .static_token(token)
        .org(fake.org())
        .build()
        .await
        .unwrap();
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(http_client());
    let response = client
        .ready()
        .await
        .unwrap()
        .call(get(&fake, "/api/a"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    tokio::task::yield_now().await;
    assert!(text(&logs).contains("expires soon"), "warned before expiry");

    let mut waited = 0;
    while !auth.status().expired && waited < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    assert!(auth.status().expired);
    let err = client
        .ready()
        .await
        .unwrap()
        .call(get(&fake, "/api/a"))
        .await
        .unwrap_err();
    let err = err.downcast_ref::<Error>().expect("typed");
    assert!(matches!(err, Error::StaticTokenExpired { .. }), "{err:?}");
    assert!(err.to_string().contains("copy a fresh token"), "{err}");
    assert!(text(&logs).contains("has expired"));
    assert_eq!(fake.expired_seen(), 0, "the expired token was not sent");
    assert_eq!(fake.login_attempts(), 0);
}

#[tokio::test]
async fn an_already_expired_static_jwt_is_refused_at_build() {
    let fake = FakeMeshx::start().await;
    let token = fake.issue_token(Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let err = MeshxAuth::builder()
        .api_url(fake.api_url())
        .static_token(token)
        .org(fake.org())
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StaticTokenExpired { .. }), "{err:?}");
    assert!(err.to_string().contains("MeshX UI"));
}

#[tokio::test]
async fn a_static_token_that_is_not_a_jwt_is_used_as_is() {
    let fake = FakeMeshx::start().await;
    let auth = MeshxAuth::builder()
        .api_url(fake.api_url())
        .static_token("opaque-token")
        .org(fake.org())
        .build()
        .await
        .unwrap();
    assert!(auth.status().valid_until.is_none());
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(http_client());
    // Unknown to the fake: 401, handed back, no login.
    let response = client
        .ready()
        .await
        .unwrap()
        .call(get(&fake, "/api/a"))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(fake.login_attempts(), 0);
}
