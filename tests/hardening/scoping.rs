//! Scoping, end to end with two real servers on 127.0.0.1: the fake MeshX API and a plain axum
//! server that records the headers it receives. One hyper-util client behind the layer talks to
//! both. With `restrict_to_api_host` (or `restrict_to_authorities`), the other server never sees
//! `Authorization` or `x-org`, and its 401s trigger no login; by default it sees both.

use crate::common::*;
use axum::Router;
use http::HeaderMap;
use meshx_auth::MeshxAuthBuilder;
use meshx_auth::testing::FakeMeshx;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt};

struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A plain server that records every request's headers; `/401` answers 401.
async fn recorder() -> Recorder {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Router::new().fallback(move |request: axum::extract::Request| {
        let record = record.clone();
        async move {
            record.lock().unwrap().push(request.headers().clone());
            if request.uri().path() == "/401" {
                http::StatusCode::UNAUTHORIZED
            } else {
                http::StatusCode::OK
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Recorder { addr, seen, task }
}

/// Sends to both servers through one client; returns the fake's statuses.
async fn exchange(build: MeshxAuthBuilder, fake: &FakeMeshx, other: &Recorder) -> Vec<u16> {
    let auth = within(Duration::from_secs(5), build.build()).await.unwrap();
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(http_client());
    let mut statuses = Vec::new();
    for path in ["/api/x", "/api/y"] {
        let r = within(Duration::from_secs(5), async {
            client.ready().await?.call(get(fake, path)).await
        })
        .await
        .unwrap();
        statuses.push(r.status().as_u16());
    }
    for path in ["/elsewhere", "/401", "/elsewhere?q=1"] {
        let request = http::Request::get(format!("http://{}{path}", other.addr))
            .body(Default::default())
            .unwrap();
        let r = within(Duration::from_secs(5), async {
            client.ready().await?.call(request).await
        })
        .await
        .unwrap();
        assert!(r.status() == 200 || r.status() == 401);
    }
    statuses
}

fn leaked(other: &Recorder) -> Vec<String> {
    other
        .seen
        .lock()
        .unwrap()
        .iter()
        .flat_map(|h| {
            ["authorization", "x-org"]
                .into_iter()
                .filter(|name| h.contains_key(*name))
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn restricted_to_the_api_host_the_other_server_sees_no_credentials() {
    let fake = FakeMeshx::start().await;
    let other = recorder().await;
    let statuses = exchange(
        builder(&fake, &fake.api_url()).restrict_to_api_host(),
        &fake,
        &other,
    )
    .await;
    assert_eq!(statuses, [200, 200], "the API still gets the credentials");
    assert_eq!(other.seen.lock().unwrap().len(), 3);
    assert!(leaked(&other).is_empty(), "leaked: {:?}", leaked(&other));
    assert_eq!(
        fake.login_attempts(),
        1,
        "the other server's 401 caused no login"
    );
    assert_eq!(fake.missing_credentials(), 0);
}

#[tokio::test]
async fn restricted_to_listed_authorities_the_other_server_sees_no_credentials() {
    let fake = FakeMeshx::start().await;
    let other = recorder().await;
    // Same host, other port: the port tells them apart.
    let statuses = exchange(
        builder(&fake, &fake.api_url())
            .restrict_to_authorities([format!("127.0.0.1:{}", fake.addr().port())]),
        &fake,
        &other,
    )
    .await;
    assert_eq!(statuses, [200, 200]);
    assert!(leaked(&other).is_empty(), "leaked: {:?}", leaked(&other));
    assert_eq!(fake.login_attempts(), 1);

    // Listing the host alone (no port) covers every port of it: then both get them.
    let other2 = recorder().await;
    exchange(
        builder(&fake, &fake.api_url()).restrict_to_authorities(["127.0.0.1"]),
        &fake,
        &other2,
    )
    .await;
    // Three requests and the replay of the 401, each with both headers.
    assert_eq!(leaked(&other2).len(), 8);
}

#[tokio::test]
async fn by_default_every_request_through_the_layer_gets_the_credentials() {
    let fake = FakeMeshx::start().await;
    let other = recorder().await;
    let statuses = exchange(builder(&fake, &fake.api_url()), &fake, &other).await;
    assert_eq!(statuses, [200, 200]);
    // The documented default: the layer wraps a client of the MeshX API, so it sends them
    // everywhere, and a 401 from anywhere is taken as the token's.
    let seen = other.seen.lock().unwrap().len();
    assert_eq!(seen, 4, "three requests and the replay of the 401");
    assert_eq!(leaked(&other).len(), seen * 2, "{:?}", leaked(&other));
    assert_eq!(
        fake.login_attempts(),
        2,
        "the other server's 401 caused one refresh"
    );
}

#[tokio::test]
async fn an_empty_authority_list_is_refused() {
    let fake = FakeMeshx::start().await;
    let e = builder(&fake, &fake.api_url())
        .restrict_to_authorities(Vec::<String>::new())
        .build()
        .await
        .unwrap_err();
    assert!(matches!(e, meshx_auth::Error::Config(_)), "{e:?}");
}
