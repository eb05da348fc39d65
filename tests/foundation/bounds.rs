//! The service works with the body types users have: hyper-util's `Full<Bytes>`, axum's and
//! tonic's bodies (neither `Sync` nor `Clone`), and its future is `Send`.

use crate::common::*;
use meshx_auth::testing::FakeMeshx;
use std::convert::Infallible;
use tower::{Layer, Service, ServiceExt};

fn assert_send<T: Send>(t: T) -> T {
    t
}

fn assert_clone_send_sync<T: Clone + Send + Sync + 'static>() {}

#[tokio::test]
async fn axum_and_tonic_bodies_go_through_and_the_future_is_send() {
    assert_clone_send_sync::<meshx_auth::MeshxAuth>();
    assert_clone_send_sync::<meshx_auth::MeshxAuthLayer>();
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;

    let inner = tower::service_fn(|req: http::Request<axum::body::Body>| async move {
        assert!(req.headers().contains_key("authorization"));
        Ok::<_, Infallible>(http::Response::new(axum::body::Body::empty()))
    });
    let mut svc = auth.layer().layer(inner);
    let future = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(axum::body::Body::from("payload")));
    assert_eq!(assert_send(future).await.unwrap().status(), 200);

    let inner = tower::service_fn(|req: http::Request<tonic::body::Body>| async move {
        assert!(req.headers().contains_key("x-org"));
        Ok::<_, Infallible>(http::Response::new(tonic::body::Body::empty()))
    });
    let mut svc = auth.layer().layer(inner);
    let future = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(tonic::body::Body::empty()));
    assert_eq!(assert_send(future).await.unwrap().status(), 200);

    let mut svc = auth.layer().layer(http_client());
    let future = svc.ready().await.unwrap().call(get(&fake, "/api/x"));
    assert_eq!(assert_send(future).await.unwrap().status(), 200);
}
