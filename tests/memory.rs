//! Memory: 1,000,000 requests through the layer, on one `MeshxAuth` whose token rotates every few
//! milliseconds, grow no memory. A counting global allocator (this test binary only) tracks the
//! live heap bytes; the growth between a warm-up and the end must stay under 64 KiB.

use meshx_auth::{MeshxAuth, Token};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tower::{Service, ServiceBuilder, ServiceExt};

struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

async fn run<S>(client: &mut S, n: u64, sent: &mut u64)
where
    S: Service<http::Request<String>, Response = http::Response<()>, Error = tower::BoxError>,
{
    for _ in 0..n {
        let response = client
            .ready()
            .await
            .unwrap()
            .call(http::Request::new(String::new()))
            .await;
        assert!(response.is_ok(), "{:?}", response.err());
        *sent += 1;
        if sent.is_multiple_of(1_000) {
            // Let the refresher run on this worker too.
            tokio::task::yield_now().await;
        }
    }
}

const REQUESTS: u64 = 1_000_000;
const WARM_UP: u64 = 20_000;
const MAX_GROWTH: i64 = 64 * 1024;
/// Each token lives 8 ms: refreshed every ~6 ms, so ~1,000 rotations per 6 s of requests.
const LIFETIME: Duration = Duration::from_millis(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_requests_with_token_rotation_grow_no_memory() {
    let fetches = std::sync::Arc::new(AtomicU64::new(0));
    let counter = fetches.clone();
    let auth = MeshxAuth::builder()
        .token_source(move || {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            async move {
                Ok(Token::new(
                    format!("token-{n:016}-padding-to-a-realistic-length-of-a-jwt-token"),
                    Some(LIFETIME),
                ))
            }
        })
        .org("acme")
        .build()
        .await
        .unwrap();
    let mut client = ServiceBuilder::new()
        .layer(auth.layer())
        .service(tower::service_fn(|req: http::Request<String>| async move {
            debug_assert!(req.headers().contains_key(http::header::AUTHORIZATION));
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        }));

    let mut sent = 0u64;
    run(&mut client, WARM_UP, &mut sent).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let live_before = LIVE.load(Ordering::SeqCst);
    let rotations_before = fetches.load(Ordering::SeqCst);
    let started = Instant::now();
    run(&mut client, REQUESTS, &mut sent).await;
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let live_after = LIVE.load(Ordering::SeqCst);
    let rotations = fetches.load(Ordering::SeqCst) - rotations_before;
    let growth = live_after - live_before;
    eprintln!(
        "[memory] {REQUESTS} requests in {elapsed:.2?} with {rotations} token rotations: \
         live heap {live_before} -> {live_after} bytes (growth {growth} bytes, bound {MAX_GROWTH})"
    );
    assert!(rotations >= 100, "the token rotated ({rotations} times)");
    assert!(growth < MAX_GROWTH, "the heap grew by {growth} bytes");
    assert!(!auth.status().stopped);
}
