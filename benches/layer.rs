//! Per-request overhead of `MeshxAuthLayer` against two floors and three hand-written
//! alternatives, on one task and on 1 to 256 tasks while the token rotates.
//!
//! `cargo bench --bench layer`; `python3 scripts/bench_chart.py` turns the results into
//! `docs/throughput.svg` and a table of ratios.
//!
//! - `per_request/<variant>`: one task on a current-thread runtime, a token that does not change.
//! - `concurrency/<variant>/<tasks>`: a multi-thread runtime, `tasks` tasks sending requests in
//!   a loop, the token replaced every 12 ms (MeshxAuth by its refresher, from a fast token source;
//!   the lock variants by a task of their own). Criterion's time is per request over all tasks,
//!   so its throughput is requests per second in all.

mod common;

use common::{Req, Resp, Variants, Visit, many_tasks, one_task, uri};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group};
use std::fmt;
use std::time::Duration;
use tokio::runtime::Runtime;
use tower::Service;

pub const TASKS: [usize; 5] = [1, 4, 16, 64, 256];

struct PerRequest<'a, 'g> {
    group: &'a mut BenchmarkGroup<'g, WallTime>,
    runtime: &'a Runtime,
}

impl Visit for PerRequest<'_, '_> {
    fn visit<S>(&mut self, name: &'static str, service: S)
    where
        S: Service<Req, Response = Resp> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: fmt::Debug + Send,
    {
        let runtime = self.runtime;
        let uri = uri();
        self.group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut service = service.clone();
                runtime.block_on(one_task(&mut service, &uri, iters, None))
            })
        });
    }
}

fn per_request(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let variants = runtime.block_on(Variants::new(false));
    let mut group = c.benchmark_group("per_request");
    group.throughput(Throughput::Elements(1));
    variants.visit(&mut PerRequest {
        group: &mut group,
        runtime: &runtime,
    });
    group.finish();
}

struct Concurrency<'a, 'g> {
    group: &'a mut BenchmarkGroup<'g, WallTime>,
    runtime: &'a Runtime,
    variants: &'a Variants,
    tasks: usize,
}

impl Visit for Concurrency<'_, '_> {
    fn visit<S>(&mut self, name: &'static str, service: S)
    where
        S: Service<Req, Response = Resp> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: fmt::Debug + Send,
    {
        let runtime = self.runtime;
        let tasks = self.tasks;
        let before = self.variants.generations();
        let started = std::time::Instant::now();
        self.group
            .bench_with_input(BenchmarkId::new(name, tasks), &tasks, |b, &tasks| {
                b.iter_custom(|iters| runtime.block_on(many_tasks(&service, tasks, iters)))
            });
        // The rotation was real while this variant ran.
        let after = self.variants.generations();
        let rotated = match name {
            "meshx" => Some(after[0] - before[0]),
            "meshx_no_retry" => Some(after[1] - before[1]),
            "std_rwlock" | "tokio_rwlock" | "mutex" => Some(after[2] - before[2]),
            _ => None,
        };
        // (`cargo bench -- --test` runs each bench once: too short to ask for rotations.)
        if let Some(rotated) = rotated
            && started.elapsed() > Duration::from_secs(1)
        {
            assert!(
                rotated >= 10,
                "{name} at {tasks} tasks: the token rotated only {rotated} times"
            );
        }
        for auth in [&self.variants.meshx, &self.variants.meshx_no_retry] {
            let status = auth.status();
            assert_eq!(status.retries, 0, "no request should have been retried");
        }
    }
}

fn concurrency(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let variants = runtime.block_on(Variants::new(true));
    let mut group = c.benchmark_group("concurrency");
    group.throughput(Throughput::Elements(1));
    for tasks in TASKS {
        variants.visit(&mut Concurrency {
            group: &mut group,
            runtime: &runtime,
            variants: &variants,
            tasks,
        });
    }
    group.finish();
    let [g, g_no_retry, locks] = variants.generations();
    println!(
        "token rotations during the run: meshx {g}, meshx_no_retry {g_no_retry}, locks {locks}"
    );
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = per_request, concurrency
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
