//! Behaviour 9: dropping every handle, or shutdown(), stops the refresher.

use crate::common::*;
use meshx_auth::testing::FakeMeshx;
use meshx_auth::{Error, MeshxAuth, Token};
use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt};

#[tokio::test]
async fn dropping_every_handle_stops_the_refresher() {
    let fake = FakeMeshx::builder()
        .token_lifetime(Duration::from_secs(1))
        .start()
        .await;
    let auth = auth_for(&fake).await;
    let layer = auth.layer();
    let mut client = ServiceBuilder::new()
        .layer(layer.clone())
        .service(http_client());
    let response = client
        .ready()
        .await
        .unwrap()
        .call(get(&fake, "/api/a"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    drop((auth, layer, client));
    // A refresh would have happened at ~0.75 s and again at ~1.5 s.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        fake.login_attempts(),
        1,
        "no login after the last handle was dropped"
    );
}

#[tokio::test]
async fn shutdown_stops_the_refresher_and_nothing_is_sent_afterwards() {
    let fake = FakeMeshx::builder()
        .token_lifetime(Duration::from_secs(1))
        .start()
        .await;
    let auth = auth_for(&fake).await;
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(http_client());
    auth.shutdown();
    auth.shutdown(); // idempotent
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(fake.login_attempts(), 1, "no login after shutdown");
    let err = within(5, client.ready().await.unwrap().call(get(&fake, "/api/a")))
        .await
        .unwrap_err();
    assert!(
        matches!(err.downcast_ref::<Error>(), Some(Error::Shutdown)),
        "{err:?}"
    );
    assert_eq!(fake.requests(), 0, "nothing was sent");
    assert!(auth.status().stopped);
    // A request that brings its own token is the caller's business: it still goes out.
    let mut own = get(&fake, "/api/own");
    own.headers_mut().insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_static("Bearer callers-own-token"),
    );
    let response = client.ready().await.unwrap().call(own).await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(fake.requests(), 1);
}

#[tokio::test]
async fn shutdown_during_an_inflight_login_ends_cleanly() {
    let fake = FakeMeshx::builder()
        .token_lifetime(Duration::from_secs(1))
        .start()
        .await;
    let auth = builder_for(&fake)
        .login_timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    fake.set_login_delay(Duration::from_secs(5));
    // Wait for the refresh to be in flight.
    let mut waited = 0;
    while fake.login_attempts() < 2 && waited < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    assert_eq!(fake.login_attempts(), 2);
    auth.shutdown();
    assert!(auth.status().stopped);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.login_attempts(), 2);
    assert_eq!(fake.logins(), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_everything_leaves_no_task_running() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let auth = MeshxAuth::builder()
        .token_source(|| async { Ok(Token::new("t", Some(Duration::from_secs(60)))) })
        .org("acme")
        .build()
        .await
        .unwrap();
    assert_eq!(metrics.num_alive_tasks(), before + 1, "one refresher task");
    let layer = auth.layer();
    drop(auth);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        metrics.num_alive_tasks(),
        before + 1,
        "a layer keeps it alive"
    );
    drop(layer);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(metrics.num_alive_tasks(), before, "the refresher ended");
}
