//! Behaviour 1: both headers on every request, built once per token, sensitive; the caller wins.

use crate::common::*;
use http::header::AUTHORIZATION;
use meshx_auth::testing::FakeMeshx;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tower::{Service, ServiceBuilder, ServiceExt};

#[tokio::test]
async fn every_request_gets_both_headers_end_to_end() {
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(http_client());
    for i in 0..20 {
        let response = client
            .ready()
            .await
            .unwrap()
            .call(get(&fake, &format!("/api/things/{i}")))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = json(response).await;
        assert_eq!(body["org"], fake.org());
    }
    assert_eq!(fake.authorized_requests(), 20);
    assert_eq!(fake.missing_credentials(), 0);
    assert_eq!(fake.logins(), 1);
}

type Seen = Arc<Mutex<Vec<http::HeaderMap>>>;

/// Records what the inner service saw.
fn recording() -> (
    Seen,
    impl Service<
        http::Request<http_body_util::Full<bytes::Bytes>>,
        Response = http::Response<()>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let svc = tower::service_fn(move |req: http::Request<_>| {
        record.lock().unwrap().push(req.headers().clone());
        async { Ok::<_, Infallible>(http::Response::new(())) }
    });
    (seen, svc)
}

#[tokio::test]
async fn header_values_are_built_once_per_token_and_sensitive() {
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;
    let (seen, inner) = recording();
    let mut svc = auth.layer().layer_service(inner);
    for _ in 0..3 {
        svc.ready()
            .await
            .unwrap()
            .call(get(&fake, "/api/x"))
            .await
            .unwrap();
    }
    let seen = seen.lock().unwrap();
    let ptrs: Vec<*const u8> = seen
        .iter()
        .map(|h| h.get(AUTHORIZATION).unwrap().as_bytes().as_ptr())
        .collect();
    // The same bytes every time: the value was cloned (a reference count), not formatted anew.
    assert!(
        ptrs.windows(2).all(|w| w[0] == w[1]),
        "header rebuilt per request"
    );
    let org_ptrs: Vec<*const u8> = seen
        .iter()
        .map(|h| h.get("x-org").unwrap().as_bytes().as_ptr())
        .collect();
    assert!(
        org_ptrs.windows(2).all(|w| w[0] == w[1]),
        "x-org rebuilt per request"
    );
    for headers in seen.iter() {
        let authorization = headers.get(AUTHORIZATION).unwrap();
        assert!(authorization.is_sensitive());
        assert!(authorization.to_str().unwrap().starts_with("Bearer "));
        assert_eq!(headers.get("x-org").unwrap(), fake.org());
    }
}

trait LayerService {
    fn layer_service<S>(&self, inner: S) -> meshx_auth::MeshxAuthService<S>;
}

impl LayerService for meshx_auth::MeshxAuthLayer {
    fn layer_service<S>(&self, inner: S) -> meshx_auth::MeshxAuthService<S> {
        tower::Layer::layer(self, inner)
    }
}

#[tokio::test]
async fn a_request_that_carries_its_own_headers_keeps_them() {
    let fake = FakeMeshx::start().await;
    let auth = auth_for(&fake).await;
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(http_client());

    // Own x-org: kept, and our token is still added.
    let mut request = get(&fake, "/api/own-org");
    request
        .headers_mut()
        .insert("x-org", http::HeaderValue::from_static("other-org"));
    let response = client.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await["org"], "other-org");

    // Own Authorization: kept; its 401 is the caller's business (no refresh, no retry).
    let mut request = get(&fake, "/api/own-token");
    request.headers_mut().insert(
        AUTHORIZATION,
        http::HeaderValue::from_static("Bearer someone-elses-token"),
    );
    let response = client.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        fake.unauthorized_sent(),
        1,
        "no retry of the caller's own token"
    );
    assert_eq!(fake.logins(), 1, "no refresh for the caller's own token");
}

/// Several `MeshxAuth`s used in turn on one thread (a gateway serving several organizations):
/// each request carries its own auth's token and organization, never another's. (The thread keeps
/// a copy for the auth it used last; alternating auths re-copy the token, a ~1 KB copy.)
#[tokio::test]
async fn several_auths_on_one_thread_keep_their_own_tokens() {
    let mut services = Vec::new();
    let mut seen = Vec::new();
    for i in 0..3 {
        let auth = meshx_auth::MeshxAuth::builder()
            .token_source(move || async move {
                Ok(meshx_auth::Token::new(
                    format!("token-of-{i}"),
                    Some(std::time::Duration::from_secs(3600)),
                ))
            })
            .org(format!("org-{i}"))
            .build()
            .await
            .unwrap();
        let (record, inner) = recording();
        services.push((auth.clone(), auth.layer().layer_service(inner)));
        seen.push(record);
    }
    for _ in 0..3 {
        for (_, svc) in services.iter_mut() {
            let request = http::Request::get("https://api.meshx.foundation/api/x")
                .body(Default::default())
                .unwrap();
            svc.ready().await.unwrap().call(request).await.unwrap();
        }
    }
    for (i, record) in seen.iter().enumerate() {
        let record = record.lock().unwrap();
        assert_eq!(record.len(), 3);
        for headers in record.iter() {
            assert_eq!(
                headers[AUTHORIZATION],
                format!("Bearer token-of-{i}").as_str()
            );
            assert_eq!(headers["x-org"], format!("org-{i}").as_str());
        }
    }
}
