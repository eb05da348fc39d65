//! Behaviour 10: a static token never logs in; its JWT `exp` is watched.

use crate::common::*;
use meshx_auth::testing::FakeMeshx;
use meshx_auth::{Error, MeshxAuth};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt};

/// Captures every log line emitted on this thread.
pub fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || LogWriter(writer.clone()))
        .finish();
    (buffer, tracing::subscriber::set_default(subscriber))
}

pub struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn text(buffer: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()
}

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
