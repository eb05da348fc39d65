//! Tokens revoked in a loop while 100 tasks send requests for 10 s.

use crate::common::*;
use meshx_auth::testing::FakeMeshx;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

const TASKS: usize = 100;
const STORM: Duration = Duration::from_secs(10);
const REVOKE_EVERY: Duration = Duration::from_millis(300);
const LIFETIME: Duration = Duration::from_secs(3);

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    unauthorized: AtomicU64,
    other: AtomicU64,
    errors: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_revoked_in_a_loop_while_100_tasks_send_requests_for_10_s() {
    let fake = FakeMeshx::builder().token_lifetime(LIFETIME).start().await;
    let auth = builder(&fake, &fake.api_url())
        .login_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(http_client());
    let tally = Arc::new(Tally::default());
    let end = Instant::now() + STORM;
    let base = format!("http://{}", fake.addr());

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (mut client, tally, base) = (client.clone(), tally.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < end {
                i += 1;
                let request = http::Request::get(format!("{base}/api/storm/{t}/{i}"))
                    .body(Default::default())
                    .unwrap();
                let result = within(Duration::from_secs(5), async {
                    client.ready().await?.call(request).await
                })
                .await;
                let counter = match result {
                    Ok(r) if r.status() == 200 => &tally.ok,
                    Ok(r) if r.status() == 401 => &tally.unauthorized,
                    Ok(_) => &tally.other,
                    Err(e) => {
                        eprintln!("[revoke storm] error: {e}");
                        &tally.errors
                    }
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    let mut revocations = 0u64;
    while Instant::now() + REVOKE_EVERY < end {
        tokio::time::sleep(REVOKE_EVERY).await;
        fake.revoke_all_tokens();
        revocations += 1;
    }
    for task in tasks {
        within(Duration::from_secs(10), task)
            .await
            .expect("no task panicked");
    }

    let (ok, unauthorized, other, errors) = (
        tally.ok.load(Ordering::Relaxed),
        tally.unauthorized.load(Ordering::Relaxed),
        tally.other.load(Ordering::Relaxed),
        tally.errors.load(Ordering::Relaxed),
    );
    // One login per revocation at most (single flight; a 401 for an older token causes none),
    // plus the proactive refreshes (every 0.7-0.75 of the lifetime), plus the first login and one
    // in flight at the end.
    let proactive = (STORM.as_millis() / (LIFETIME.as_millis() * 7 / 10)) as u64 + 1;
    let bound = 2 + revocations + proactive;
    let status = auth.status();
    eprintln!(
        "[revoke storm] {} requests: {ok} ok, {unauthorized} final 401, {other} other, {errors} errors; \
         {revocations} revocations, {} logins (bound {bound}), {} replays",
        ok + unauthorized + other + errors,
        fake.logins(),
        status.retries,
    );
    assert_eq!(errors, 0, "no request failed");
    assert_eq!(other, 0);
    assert!(ok > 0);
    assert_eq!(
        fake.missing_credentials(),
        0,
        "nothing sent without credentials"
    );
    assert_eq!(fake.expired_seen(), 0, "no expired token sent");
    assert!(
        fake.logins() <= bound,
        "{} logins, bound {bound}",
        fake.logins()
    );
    assert_eq!(fake.login_attempts(), fake.logins(), "no failed login");
    assert!(
        status.retries <= ok + unauthorized,
        "at most one replay per request"
    );

    // The revocations end: the service recovers at once.
    let mut client = client.clone();
    let response = within(Duration::from_secs(5), async {
        client
            .ready()
            .await?
            .call(get(&fake, "/api/after-the-storm"))
            .await
    })
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
}
