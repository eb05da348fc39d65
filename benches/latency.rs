//! Per-request latency (p50, p99, p99.9, max) of every variant while the token rotates every
//! 12 ms, at 1 to 256 tasks on a multi-thread runtime. Prints a markdown table.
//!
//! `cargo bench --bench latency` (about a minute; `MESHX_LATENCY_SECS` sets the time per cell,
//! default 0.5 s). Each task times each request (ready + call + answer) with `Instant` and yields
//! after every 32 requests outside the timed part, as in the `layer` bench. A request that has to
//! wait for a lock held by the rotation, or that is parked by the lock and rescheduled, shows in
//! the tail.

mod common;

use common::{Req, Resp, TASKS_FOR_LATENCY, Variants, Visit, YIELD_EVERY, request, uri};
use std::fmt;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tower::{Service, ServiceExt};

struct Row {
    variant: &'static str,
    tasks: usize,
    requests: usize,
    elapsed: Duration,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

struct Measure<'a> {
    runtime: &'a tokio::runtime::Runtime,
    tasks: usize,
    duration: Duration,
    rows: Vec<Row>,
}

impl Visit for Measure<'_> {
    fn visit<S>(&mut self, name: &'static str, service: S)
    where
        S: Service<Req, Response = Resp> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: fmt::Debug + Send,
    {
        let (tasks, duration) = (self.tasks, self.duration);
        let (mut latencies, elapsed) = self.runtime.block_on(async move {
            let stop = Arc::new(AtomicBool::new(false));
            let start = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    let mut service = service.clone();
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        let uri = uri();
                        let mut latencies = Vec::with_capacity(1 << 16);
                        let mut i = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            let t = Instant::now();
                            let response = service
                                .ready()
                                .await
                                .expect("ready")
                                .call(request(&uri))
                                .await
                                .expect("answered");
                            let ns = t.elapsed().as_nanos() as u64;
                            black_box(response);
                            latencies.push(ns);
                            i += 1;
                            if i.is_multiple_of(YIELD_EVERY) {
                                tokio::task::yield_now().await;
                            }
                        }
                        latencies
                    })
                })
                .collect();
            tokio::time::sleep(duration).await;
            stop.store(true, Ordering::Relaxed);
            let mut all = Vec::new();
            for handle in handles {
                all.extend(handle.await.expect("task"));
            }
            (all, start.elapsed())
        });
        latencies.sort_unstable();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        self.rows.push(Row {
            variant: name,
            tasks,
            requests: latencies.len(),
            elapsed,
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: *latencies.last().unwrap_or(&0),
        });
    }
}

fn main() {
    // `cargo bench` hands harness-less benches `--bench`; `cargo test --benches` does not.
    if !std::env::args().any(|a| a == "--bench") {
        println!("latency: run with `cargo bench --bench latency`");
        return;
    }
    let secs: f64 = std::env::var("MESHX_LATENCY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let variants = runtime.block_on(Variants::new(true));
    let mut measure = Measure {
        runtime: &runtime,
        tasks: 1,
        duration: Duration::from_secs_f64(secs),
        rows: Vec::new(),
    };
    // Warm up once.
    variants.visit(&mut measure);
    measure.rows.clear();
    let before = variants.generations();
    for tasks in TASKS_FOR_LATENCY {
        measure.tasks = tasks;
        variants.visit(&mut measure);
    }
    let after = variants.generations();

    println!("\nper-request latency in ns, token rotating every 12 ms");
    println!(
        "(rotations during the run: meshx {}, meshx_no_retry {}, locks {})\n",
        after[0] - before[0],
        after[1] - before[1],
        after[2] - before[2]
    );
    println!("| variant | tasks | p50 | p99 | p99.9 | max | Mreq/s |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for row in &measure.rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.2} |",
            row.variant,
            row.tasks,
            row.p50,
            row.p99,
            row.p999,
            row.max,
            row.requests as f64 / row.elapsed.as_secs_f64() / 1e6
        );
    }
}
