//! Secrets: what `tests/foundation/secrets.rs` does not cover. Every public type's `Debug`, every
//! error variant's `Display` and `Debug` (produced for real where the public API can produce it),
//! and every log line of a lifecycle with shutdown, with a known password and known tokens: none
//! shows. The injected `Authorization` is sensitive. `http://` is refused for non-loopback hosts,
//! end to end.

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Full;
use meshx_auth::testing::{FakeMeshx, LoginFault};
use meshx_auth::{Error, MeshxAuth, RequestOrg, Token};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt};

const PASSWORD: &str = "Hardening-PASSWORD-4f7a";
const WRONG_PASSWORD: &str = "Wrong-PASSWORD-91c2";
const STATIC_SIG: &str = "STATICSIGNATURE0b7e";

/// A JWT-shaped static token with this `exp` and a recognisable signature.
fn static_jwt(exp: u64) -> String {
    format!(
        "{}.{}.{STATIC_SIG}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#),
        URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp},"sub":"x"}}"#))
    )
}

fn show(out: &mut String, what: &str, value: &dyn std::fmt::Debug) {
    out.push_str(&format!("{what}: {value:?}\n"));
}

fn show_error(out: &mut String, seen: &mut Vec<String>, error: &Error) {
    seen.push(variant(error));
    if let Error::TokenUnavailable(inner) = error {
        seen.push(format!("TokenUnavailable({})", variant(inner)));
    }
    out.push_str(&format!("{error}\n{error:?}\n"));
}

#[tokio::test]
async fn every_type_every_error_every_log_line_is_free_of_secrets() {
    let (logs, _guard) = capture_logs();
    let mut out = String::new();
    let mut variants = Vec::new();
    let fake = FakeMeshx::builder()
        .user("alice", PASSWORD)
        .token_lifetime(Duration::from_secs(1))
        .start()
        .await;

    // A lifecycle with every replay policy, a proactive refresh, a revoke and its replay.
    let auth = builder(&fake, &fake.api_url())
        .login_timeout(Duration::from_millis(400))
        .build()
        .await
        .unwrap();
    let inner = http_client();
    let mut plain = ServiceBuilder::new()
        .layer(auth.layer())
        .service(inner.clone());
    let mut cloning = ServiceBuilder::new()
        .layer(auth.layer().replay_cloneable_bodies())
        .service(inner.clone());
    let with_fn = auth
        .layer()
        .replay_body_with(|b: &Full<Bytes>| Some(b.clone()));
    let buffered_seen = Arc::new(Mutex::new(String::new()));
    let seen = buffered_seen.clone();
    let mut buffering = ServiceBuilder::new()
        .layer(
            auth.layer()
                .replay_buffered(1024, move |b: meshx_auth::Buffered<Full<Bytes>>| {
                    seen.lock().unwrap().push_str(&format!("{b:?}\n"));
                    Full::new(Bytes::from_static(b"buffered body"))
                }),
        )
        .service(inner.clone());
    show(&mut out, "layer", &auth.layer());
    show(&mut out, "layer fn", &with_fn);
    show(&mut out, "service", &plain);
    show(&mut out, "service cloning", &cloning);
    show(&mut out, "service buffering", &buffering);

    let org = RequestOrg::new("other-org").unwrap();
    show(&mut out, "request org", &org);
    let mut request = get(&fake, "/api/a");
    request.extensions_mut().insert(org);
    let future = plain.ready().await.unwrap().call(request);
    show(&mut out, "response future", &future);
    let response = future.await.unwrap();
    show(&mut out, "response", &response);
    let body = Full::new(Bytes::from_static(b"body mentioning nothing secret"));
    let response = cloning
        .ready()
        .await
        .unwrap()
        .call(
            http::Request::post(format!("http://{}/api/b", fake.addr()))
                .body(body)
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = buffering
        .ready()
        .await
        .unwrap()
        .call(
            http::Request::post(format!("http://{}/api/c", fake.addr()))
                .body(Full::new(Bytes::from_static(b"grpc-ish")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    out.push_str(&buffered_seen.lock().unwrap());

    let organizations = auth.organizations().await.unwrap();
    show(&mut out, "organizations", &organizations);
    // Wait for the proactive refresh to be *installed* (not just answered by the fake), so that
    // the revoke below hits the token in use and not also one still on its way to us.
    assert!(eventually(Duration::from_secs(3), || auth.status().generation >= 2).await);
    fake.revoke_all_tokens();
    let response = plain
        .ready()
        .await
        .unwrap()
        .call(get(&fake, "/api/d"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "replayed after the revoke");
    show(&mut out, "status", &auth.status());

    // Api: organizations() now refreshes and retries once on a 401, so the fake cannot make it
    // fail with Api any more; the variant is formatted directly below, with the others the public
    // API does not hand back.

    // TokenUnavailable, through each kind of login failure, once the token has expired.
    for (fault, expected) in [
        (LoginFault::StatusWithRetryAfter(503, 1), "LoginStatus"),
        (
            LoginFault::Body {
                content_type: "application/json".into(),
                body: format!(r#"{{"access_token":"{PASSWORD} x","expires_in":5}}"#).into_bytes(),
            },
            "InvalidAnswer",
        ),
        (LoginFault::CloseMidBody, "Transport"),
        (LoginFault::Hang, "LoginTimeout"),
    ] {
        fake.set_login_fault(Some(fault));
        let reached = eventually(Duration::from_secs(4), || {
            let status = auth.status();
            status.expired
                && status
                    .last_error
                    .as_ref()
                    .is_some_and(|e| variant(e) == expected)
        })
        .await;
        assert!(reached, "{expected}: {:?}", auth.status());
        let result = within(
            Duration::from_secs(3),
            plain.ready().await.unwrap().call(get(&fake, "/api/e")),
        )
        .await;
        match result {
            Err(e) => show_error(&mut out, &mut variants, e.downcast_ref::<Error>().unwrap()),
            Ok(response) => show(&mut out, "response", &response),
        }
        if let Some(e) = auth.status().last_error {
            show_error(&mut out, &mut variants, &e);
        }
    }
    fake.set_login_fault(None);

    // Shutdown: requests and calls of the API fail typed.
    assert!(!auth.status().stopped, "the refresher survived every fault");
    auth.shutdown();
    let e = plain
        .ready()
        .await
        .unwrap()
        .call(get(&fake, "/api/f"))
        .await
        .unwrap_err();
    show_error(&mut out, &mut variants, e.downcast_ref::<Error>().unwrap());
    show_error(
        &mut out,
        &mut variants,
        &auth.organizations().await.unwrap_err(),
    );
    show(&mut out, "auth after shutdown", &auth);

    // Errors of the builder.
    let builders = [
        MeshxAuth::builder()
            .api_url(fake.api_url())
            .credentials("alice", WRONG_PASSWORD)
            .org(fake.org()), // CredentialsRejected
        builder(&fake, "http://10.255.255.1:9/api"), // Config (http)
        builder(&fake, &fake.api_url()).static_token(static_jwt(1)), // Config (two)
        MeshxAuth::builder()
            .api_url(fake.api_url())
            .static_token(static_jwt(1_000_000_000)) // StaticTokenExpired
            .org(fake.org()),
        MeshxAuth::builder()
            .api_url(fake.api_url())
            .static_token(format!("{STATIC_SIG}\u{1}"))
            .org(fake.org()), // Config (bad bytes)
    ];
    for b in builders {
        show(&mut out, "builder", &b);
        show_error(&mut out, &mut variants, &b.build().await.unwrap_err());
    }
    // Transport: nothing listens on that port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = builder(&fake, &format!("http://127.0.0.1:{port}/api"))
        .build()
        .await
        .unwrap_err();
    show_error(&mut out, &mut variants, &e);

    // A static token: its status, a rejection (the 401 is handed back), its `Debug`.
    let static_token = static_jwt(4_000_000_000);
    let static_auth = MeshxAuth::builder()
        .api_url(fake.api_url())
        .static_token(&static_token)
        .org(fake.org())
        .build()
        .await
        .unwrap();
    let mut static_client = ServiceBuilder::new()
        .layer(static_auth.layer())
        .service(inner.clone());
    let response = static_client
        .ready()
        .await
        .unwrap()
        .call(get(&fake, "/api/g"))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    show(&mut out, "static", &static_auth);
    show(&mut out, "static status", &static_auth.status());
    show(&mut out, "token", &Token::new(static_token.clone(), None));
    // The one variant the public API hands back only as a log line (a static token's 401 returns
    // the 401 itself): formatted directly.
    show_error(&mut out, &mut variants, &Error::StaticTokenRejected);
    show_error(
        &mut out,
        &mut variants,
        &Error::Api(format!(
            "GET {}/iam/organization/list answered HTTP 500",
            fake.api_url()
        )),
    );

    for expected in [
        "Api",
        "Shutdown",
        "CredentialsRejected",
        "Config",
        "StaticTokenExpired",
        "StaticTokenRejected",
        "Transport",
        "TokenUnavailable",
        "TokenUnavailable(LoginStatus)",
        "TokenUnavailable(InvalidAnswer)",
        "TokenUnavailable(Transport)",
        "TokenUnavailable(LoginTimeout)",
    ] {
        assert!(
            variants.iter().any(|v| v == expected),
            "{expected} not produced: {variants:?}"
        );
    }

    let logs = text(&logs);
    assert!(logs.contains("new MeshX token"), "logging was captured");
    let all = format!("{out}\n{logs}");
    for secret in [PASSWORD, WRONG_PASSWORD, STATIC_SIG] {
        assert!(!all.contains(secret), "{secret} leaked");
    }
    let tokens = fake.issued_tokens();
    assert!(tokens.len() >= 3);
    for token in tokens {
        assert!(!all.contains(&token), "a token leaked");
        assert!(
            !all.contains(token.rsplit('.').next().unwrap()),
            "a signature leaked"
        );
    }
}

#[tokio::test]
async fn the_injected_authorization_is_sensitive() {
    let fake = FakeMeshx::start().await;
    let auth = builder(&fake, &fake.api_url()).build().await.unwrap();
    let seen = Arc::new(Mutex::new(None));
    let record = seen.clone();
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(tower::service_fn(move |req: http::Request<Full<Bytes>>| {
            *record.lock().unwrap() = Some(req.headers().clone());
            async { Ok::<_, std::convert::Infallible>(http::Response::new(())) }
        }));
    client
        .ready()
        .await
        .unwrap()
        .call(get(&fake, "/api/a"))
        .await
        .unwrap();
    let headers = seen.lock().unwrap().take().unwrap();
    let authorization = headers.get(http::header::AUTHORIZATION).unwrap();
    assert!(authorization.is_sensitive());
    assert!(!format!("{headers:?}").contains(&fake.issued_tokens()[0]));
    assert_eq!(headers.get("x-org").unwrap(), fake.org());
}

/// A non-loopback address of this machine, if it has one (no packet is sent).
fn local_non_loopback_ip() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn http_is_refused_for_non_loopback_hosts_end_to_end() {
    let fake = FakeMeshx::start().await;
    for url in [
        "http://10.255.255.1:9/api",
        "http://example.com/api",
        "http://localhost.example.com/api",
        "http://127.0.0.1.nip.io/api",
        "HTTP://EXAMPLE.COM/api",
    ] {
        let started = tokio::time::Instant::now();
        let e = builder(&fake, url).build().await.unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{url}: {e:?}");
        assert!(e.to_string().contains("allow_insecure_http"), "{e}");
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "no network was tried"
        );
    }
    // Loopback in every spelling works over http.
    let port = fake.addr().port();
    for url in [
        format!("http://127.0.0.1:{port}/api"),
        format!("http://localhost:{port}/api"),
        format!("http://LOCALHOST:{port}/api"),
    ] {
        let auth = builder(&fake, &url).build().await;
        assert!(auth.is_ok(), "{url}: {auth:?}");
    }
    // A real server on a non-loopback address of this machine: refused without the opt-in (and
    // nothing reaches it), used with it.
    let Some(ip) = local_non_loopback_ip() else {
        eprintln!("no non-loopback address: the opt-in half is skipped");
        return;
    };
    let Ok(listener) = tokio::net::TcpListener::bind((ip, 0)).await else {
        eprintln!("cannot bind {ip}: the opt-in half is skipped");
        return;
    };
    let addr = listener.local_addr().unwrap();
    let upstream = fake.addr();
    let reached = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = reached.clone();
    let forward = tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let url = format!("http://{addr}/api");
    let e = builder(&fake, &url).build().await.unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(fake.login_attempts(), 3);
    let auth = builder(&fake, &url).allow_insecure_http(true).build().await;
    assert!(auth.is_ok(), "{auth:?}");
    assert!(reached.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    forward.abort();
}
