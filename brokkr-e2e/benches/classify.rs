//! Health classification throughput (target: ≥ 1M pods/s on one core).
//!
//! `healthy`: one Deployment with N Running, Ready pods (the common case, and the
//! zero-allocation path). `mixed`: the same with every tenth pod in ImagePullBackOff and
//! every seventh crash-looping, so findings are produced and grouped.

use std::hint::black_box;

use brokkr::health::synthetic::{healthy_deployment, make_waiting};
use brokkr::health::{HealthPolicy, Resource, classify};
use chrono::{DateTime, TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn bench_classify(c: &mut Criterion) {
    let policy = HealthPolicy::default();
    let mut group = c.benchmark_group("classify");
    group.sample_size(10);
    for pods in [1_000usize, 100_000, 1_000_000] {
        let healthy = healthy_deployment("shop", "web", pods, now());
        let mut mixed = healthy.clone();
        for (i, resource) in mixed.resources.iter_mut().enumerate() {
            if let Resource::Pod(pod) = resource {
                if i % 10 == 0 {
                    make_waiting(pod, "ImagePullBackOff");
                } else if i % 7 == 0 {
                    make_waiting(pod, "CrashLoopBackOff");
                }
            }
        }
        group.throughput(Throughput::Elements(pods as u64));
        group.bench_with_input(BenchmarkId::new("healthy", pods), &healthy, |b, obs| {
            b.iter(|| classify(black_box(obs), now(), &policy));
        });
        group.bench_with_input(BenchmarkId::new("mixed", pods), &mixed, |b, obs| {
            b.iter(|| classify(black_box(obs), now(), &policy));
        });
    }
    group.finish();
}

criterion_group!(benches, bench_classify);
criterion_main!(benches);
