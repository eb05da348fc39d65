//! Behaviour 11: no password or token in Debug, Display, errors or logs.

use crate::common::*;
use crate::static_token::{capture_logs, text};
use meshx_auth::testing::{FakeMeshx, LoginFault};
use meshx_auth::{MeshxAuth, Token};
use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt};

const PASSWORD: &str = "Pa55w0rd-VERY-SECRET";
const STATIC: &str = "STATIC-TOKEN-VERY-SECRET";

#[tokio::test]
async fn no_secret_in_any_output_over_a_full_lifecycle() {
    let (logs, _guard) = capture_logs();
    let mut out = String::new();
    let fake = FakeMeshx::builder()
        .user("alice", PASSWORD)
        .token_lifetime(Duration::from_secs(1))
        .start()
        .await;

    let builder = builder_for(&fake);
    out += &format!("{builder:?}\n");
    let auth = builder.build().await.unwrap();
    let layer = auth.layer();
    let mut client = ServiceBuilder::new()
        .layer(layer.clone())
        .service(http_client());
    out += &format!("{auth:?}\n{layer:?}\n{client:?}\n{:?}\n", auth.status());

    // Requests, a proactive refresh, a revoke and its retry.
    for _ in 0..3 {
        client
            .ready()
            .await
            .unwrap()
            .call(get(&fake, "/api/a"))
            .await
            .unwrap();
    }
    let mut waited = 0;
    while fake.logins() < 2 && waited < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    fake.revoke_all_tokens();
    let response = client
        .ready()
        .await
        .unwrap()
        .call(get(&fake, "/api/a"))
        .await
        .unwrap();
    out += &format!("{response:?}\n");

    // Failures: an outage until the token expires, then a request that cannot be sent.
    fake.set_outage(true);
    let mut waited = 0;
    while !auth.status().expired && waited < 300 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    if let Err(e) = client
        .ready()
        .await
        .unwrap()
        .call(get(&fake, "/api/a"))
        .await
    {
        out += &format!("{e}\n{e:?}\n");
    }
    out += &format!("{:?}\n", auth.status());
    if let Some(e) = auth.status().last_error {
        out += &format!("{e}\n{e:?}\n");
    }
    fake.set_outage(false);

    // Every kind of login error.
    let faults = [
        LoginFault::Status(500),
        LoginFault::StatusWithRetryAfter(429, 1),
        LoginFault::Body {
            content_type: "application/json".into(),
            body: format!(r#"{{"access_token":"{PASSWORD}\n","expires_in":5}}"#).into_bytes(),
        },
        LoginFault::Body {
            content_type: "application/json".into(),
            body: format!(r#"{{"access_token":"{PASSWORD}","expires_in":-5}}"#).into_bytes(),
        },
        LoginFault::CloseMidBody,
        LoginFault::Hang,
    ];
    for fault in faults {
        fake.set_login_fault(Some(fault));
        let e = builder_for(&fake)
            .login_timeout(Duration::from_millis(300))
            .build()
            .await
            .unwrap_err();
        out += &format!("{e}\n{e:?}\n");
    }
    fake.set_login_fault(None);
    let e = builder_for(&fake)
        .credentials("alice", "wrong")
        .build()
        .await
        .unwrap_err();
    out += &format!("{e}\n{e:?}\n");
    let e = MeshxAuth::builder()
        .credentials("alice", PASSWORD)
        .static_token(STATIC)
        .org("o")
        .build()
        .await
        .unwrap_err();
    out += &format!("{e}\n{e:?}\n");

    // A static token, and a token of a custom source.
    let builder = MeshxAuth::builder()
        .api_url(fake.api_url())
        .static_token(STATIC)
        .org(fake.org());
    out += &format!("{builder:?}\n");
    let static_auth = builder.build().await.unwrap();
    out += &format!("{static_auth:?}\n{:?}\n", static_auth.status());
    let token = Token::new(STATIC, Some(Duration::from_secs(5)));
    out += &format!("{token:?}\n");
    auth.shutdown();
    out += &format!("{auth:?}\n");

    let logs = text(&logs);
    assert!(logs.contains("new MeshX token"), "logging was captured");
    let all = format!("{out}\n{logs}");
    assert!(!all.contains(PASSWORD), "the password leaked");
    assert!(!all.contains(STATIC), "the static token leaked");
    let tokens = fake.issued_tokens();
    assert!(tokens.len() >= 3);
    for token in tokens {
        assert!(!all.contains(&token), "a token leaked");
        // Not even the signature part.
        let signature = token.rsplit('.').next().unwrap();
        assert!(!all.contains(signature), "a token signature leaked");
    }
}
