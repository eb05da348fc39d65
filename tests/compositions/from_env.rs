//! Issue 3.6: `MeshxAuthBuilder::from_env()` end to end against the fake.
//!
//! Environment variables are process-global, so everything that touches them is in this one test
//! function; no other test in this binary reads or writes `MESHX_*`.

use crate::common::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use meshx_auth::testing::FakeMeshx;
use meshx_auth::{Error, MeshxAuthBuilder};
use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt};

const VARS: [&str; 5] = [
    "MESHX_API_URL",
    "MESHX_USER",
    "MESHX_PASSWORD",
    "MESHX_TOKEN",
    "MESHX_ORG",
];

fn set(name: &str, value: &str) {
    // SAFETY: this is the only test in this binary that touches the environment, and it runs
    // as one test function; other threads read the environment only through `std::env`, which
    // takes the same lock, and make no libc `getenv` calls of their own (all servers are
    // loopback IP literals: no DNS resolution).
    unsafe { std::env::set_var(name, value) }
}

fn unset(name: &str) {
    // SAFETY: as in `set`.
    unsafe { std::env::remove_var(name) }
}

fn config_error(result: Result<MeshxAuthBuilder, Error>) -> String {
    match result {
        Err(error @ Error::Config(_)) => error.to_string(),
        Err(other) => panic!("not a configuration error: {other:?}"),
        Ok(builder) => panic!("accepted: {builder:?}"),
    }
}

#[tokio::test]
async fn from_env_builds_against_the_fake_and_names_the_variable_when_wrong() {
    let fake = FakeMeshx::start().await;
    for var in VARS {
        unset(var);
    }

    // Password login from the environment.
    set("MESHX_API_URL", &fake.api_url());
    set("MESHX_USER", fake.user());
    set("MESHX_PASSWORD", fake.password());
    set("MESHX_ORG", "other-org");
    let auth = within(10, MeshxAuthBuilder::from_env().unwrap().build())
        .await
        .unwrap();
    assert_eq!(fake.logins(), 1);
    assert_eq!(auth.org(), "other-org");
    assert_eq!(auth.api_url(), fake.api_url());
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(Client::builder(TokioExecutor::new()).build_http());
    let response = within(
        10,
        client.ready().await.unwrap().call(
            Request::get(format!("http://{}/api/env", fake.addr()))
                .body(Full::<Bytes>::default())
                .unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["org"], "other-org");
    auth.shutdown();

    // Contradictory: a token as well as a user and password.
    let token = fake.issue_token(Duration::from_secs(3_600));
    set("MESHX_TOKEN", &token);
    let message = config_error(MeshxAuthBuilder::from_env());
    assert!(
        message.contains("MESHX_TOKEN") && message.contains("MESHX_USER"),
        "{message}"
    );
    assert!(!message.contains(&token), "the token never shows");

    // A static token from the environment: no login.
    unset("MESHX_USER");
    unset("MESHX_PASSWORD");
    let auth = within(10, MeshxAuthBuilder::from_env().unwrap().build())
        .await
        .unwrap();
    assert_eq!(auth.status().source, "static token");
    assert_eq!(fake.login_attempts(), 1, "no login for a static token");

    // Half a password login.
    unset("MESHX_TOKEN");
    set("MESHX_USER", fake.user());
    assert!(config_error(MeshxAuthBuilder::from_env()).contains("MESHX_PASSWORD"));
    unset("MESHX_USER");
    set("MESHX_PASSWORD", fake.password());
    assert!(config_error(MeshxAuthBuilder::from_env()).contains("MESHX_USER"));

    // No organization; a blank one counts as missing.
    set("MESHX_USER", fake.user());
    set("MESHX_ORG", "  ");
    assert!(config_error(MeshxAuthBuilder::from_env()).contains("MESHX_ORG"));
    unset("MESHX_ORG");
    assert!(config_error(MeshxAuthBuilder::from_env()).contains("MESHX_ORG"));

    // No credentials at all.
    set("MESHX_ORG", fake.org());
    unset("MESHX_USER");
    unset("MESHX_PASSWORD");
    let message = config_error(MeshxAuthBuilder::from_env());
    assert!(
        message.contains("MESHX_USER") && message.contains("MESHX_TOKEN"),
        "{message}"
    );

    // A bad URL is refused, naming the variable, not silently replaced by the default.
    set("MESHX_USER", fake.user());
    set("MESHX_PASSWORD", fake.password());
    set("MESHX_API_URL", "ftp://127.0.0.1/api");
    let message = config_error(MeshxAuthBuilder::from_env());
    assert!(message.contains("MESHX_API_URL"), "{message}");
    // An http:// URL on a non-loopback host passes from_env but is refused at build.
    set("MESHX_API_URL", "http://meshx.example.com/api");
    let error = within(10, MeshxAuthBuilder::from_env().unwrap().build())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Config(_)), "{error:?}");

    for var in VARS {
        unset(var);
    }
}
