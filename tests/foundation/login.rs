//! Behaviours 2 and 3: the login as documented, wrong credentials, timeouts, bad answers.

use crate::common::*;
use meshx_auth::testing::{FakeMeshx, LoginFault};
use meshx_auth::{Error, MeshxAuth};
use std::time::{Duration, Instant};

#[tokio::test]
async fn wrong_credentials_fail_fast_with_one_attempt() {
    let fake = FakeMeshx::start().await;
    let started = Instant::now();
    let err = within(
        10,
        MeshxAuth::builder()
            .api_url(fake.api_url())
            .credentials(fake.user(), "wrong-password")
            .org(fake.org())
            .build(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::CredentialsRejected { status: 401, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("rejected the credentials"),
        "{err}"
    );
    assert!(!err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(fake.login_attempts(), 1, "build() must not hammer the IAM");
    assert_eq!(fake.rejected_logins(), 1);
}

#[tokio::test]
async fn login_has_a_timeout() {
    let fake = FakeMeshx::start().await;
    fake.set_login_fault(Some(LoginFault::Hang));
    let err = within(
        10,
        builder_for(&fake)
            .login_timeout(Duration::from_millis(300))
            .build(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::LoginTimeout(_)), "{err:?}");
    assert!(meshx_auth::DEFAULT_LOGIN_TIMEOUT <= Duration::from_secs(30));
}

#[tokio::test]
async fn unreachable_iam_is_a_clear_error() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = within(
        10,
        MeshxAuth::builder()
            .api_url(format!("http://{addr}/api"))
            .credentials("u", "p")
            .org("o")
            .build(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert!(err.is_transient());
}

async fn build_against(body: Vec<u8>, content_type: &str) -> Error {
    let fake = FakeMeshx::start().await;
    fake.set_login_fault(Some(LoginFault::Body {
        content_type: content_type.into(),
        body,
    }));
    within(10, builder_for(&fake).build()).await.unwrap_err()
}

#[tokio::test]
async fn bad_login_answers_are_clear_errors() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("invalid JSON", b"{not json".to_vec(), "not valid JSON"),
        (
            "HTML page",
            b"<!doctype html><html>login</html>".to_vec(),
            "HTML",
        ),
        (
            "missing token",
            br#"{"expires_in":300,"token_type":"Bearer"}"#.to_vec(),
            "missing",
        ),
        (
            "empty token",
            br#"{"access_token":"","expires_in":300}"#.to_vec(),
            "empty",
        ),
        (
            "CR/LF",
            br#"{"access_token":"a\r\nX-Evil: 1","expires_in":300}"#.to_vec(),
            "not allowed",
        ),
        (
            "NUL",
            br#"{"access_token":"a\u0000b","expires_in":300}"#.to_vec(),
            "not allowed",
        ),
        (
            "DEL",
            br#"{"access_token":"a\u007fb","expires_in":300}"#.to_vec(),
            "not allowed",
        ),
        (
            "not Bearer",
            br#"{"access_token":"t","expires_in":300,"token_type":"MAC"}"#.to_vec(),
            "Bearer",
        ),
        (
            "zero",
            br#"{"access_token":"t","expires_in":0}"#.to_vec(),
            "positive",
        ),
        (
            "negative",
            br#"{"access_token":"t","expires_in":-1}"#.to_vec(),
            "positive",
        ),
        (
            "non-numeric",
            br#"{"access_token":"t","expires_in":"later"}"#.to_vec(),
            "not a number",
        ),
    ];
    for (name, body, expected) in cases {
        let content_type = if name == "HTML page" {
            "text/html"
        } else {
            "application/json"
        };
        let err = build_against(body, content_type).await;
        assert!(matches!(err, Error::InvalidAnswer(_)), "{name}: {err:?}");
        assert!(err.to_string().contains(expected), "{name}: {err}");
    }
}

#[tokio::test]
async fn numeric_string_and_huge_lifetimes_are_accepted_safely() {
    let fake = FakeMeshx::start().await;
    fake.set_login_fault(Some(LoginFault::Body {
        content_type: "application/json".into(),
        body: br#"{"access_token":"tok-1","expires_in":"300","token_type":"bearer"}"#.to_vec(),
    }));
    let auth = within(10, builder_for(&fake).build()).await.unwrap();
    let left = auth
        .status()
        .valid_until
        .unwrap()
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left <= Duration::from_secs(300) && left > Duration::from_secs(290));

    fake.set_login_fault(Some(LoginFault::Body {
        content_type: "application/json".into(),
        body: br#"{"access_token":"tok-2","expires_in":1e300}"#.to_vec(),
    }));
    let auth = within(10, builder_for(&fake).build()).await.unwrap();
    let left = auth
        .status()
        .valid_until
        .unwrap()
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        left <= meshx_auth::MAX_TOKEN_LIFETIME,
        "clamped, no overflow"
    );
}

#[tokio::test]
async fn a_body_of_many_megabytes_is_refused() {
    let mut body = br#"{"access_token":""#.to_vec();
    body.extend(std::iter::repeat_n(b'a', 8 * 1024 * 1024));
    body.extend_from_slice(br#"","expires_in":300}"#);
    let err = build_against(body, "application/json").await;
    assert!(err.to_string().contains("larger than"), "{err}");
}

#[tokio::test]
async fn a_connection_broken_mid_body_is_a_transport_error() {
    let fake = FakeMeshx::start().await;
    fake.set_login_fault(Some(LoginFault::CloseMidBody));
    let err = within(10, builder_for(&fake).build()).await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
}

#[tokio::test]
async fn server_errors_are_transient_and_keep_retry_after() {
    let fake = FakeMeshx::start().await;
    fake.set_login_fault(Some(LoginFault::StatusWithRetryAfter(503, 7)));
    let err = within(10, builder_for(&fake).build()).await.unwrap_err();
    match &err {
        Error::LoginStatus {
            status: 503,
            retry_after,
            ..
        } => assert_eq!(*retry_after, Some(Duration::from_secs(7))),
        other => panic!("{other:?}"),
    }
    assert!(err.is_transient());
}

#[tokio::test]
async fn configuration_errors_are_clear() {
    let fake = FakeMeshx::start().await;
    let cases = [
        (
            MeshxAuth::builder().api_url(fake.api_url()).org("o"),
            "no credentials",
        ),
        (
            MeshxAuth::builder()
                .api_url(fake.api_url())
                .credentials("u", "p")
                .static_token("t")
                .org("o"),
            "more than one",
        ),
        (
            MeshxAuth::builder()
                .api_url(fake.api_url())
                .credentials("u", "p"),
            "no organization",
        ),
        (
            MeshxAuth::builder()
                .api_url("http://meshx.example.com/api")
                .credentials("u", "p")
                .org("o"),
            "clear text",
        ),
        (
            MeshxAuth::builder()
                .api_url(fake.api_url())
                .credentials("u", "")
                .org("o"),
            "password is empty",
        ),
        (
            MeshxAuth::builder()
                .api_url(fake.api_url())
                .static_token("bad\ntoken")
                .org("o"),
            "not allowed",
        ),
    ];
    for (builder, expected) in cases {
        let err = builder.build().await.unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(err.to_string().contains(expected), "{expected}: {err}");
    }
    assert_eq!(fake.login_attempts(), 0);
}
