//! The broker's per-report costs that do not touch a database: redacting log tails,
//! decoding a health report, and the in-memory store taking a batch of verdicts.
//!
//! Each group reports elements per second (lines, items, rows), so results compare
//! across machines as ratios between groups of the same run.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use brokkr::core::health::Health;
use brokkr::core::ids::{AgentId, DeploymentObjectId, StackId};
use brokkr::core::model::{Agent, HealthRecord, HealthReport, HealthSummary, Stack};
use brokkr::core::redact::{LINE_CAP, redact_lines};
use brokkr::core::store::{CatalogStore, HealthStore, Store};
use brokkr::store_memory::MemoryStore;
use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Log lines as a crash-looping service prints them: mostly plain, some with secrets.
fn log_tail(lines: usize) -> Vec<String> {
    (0..lines)
        .map(|i| match i % 10 {
            0 => format!("{i} connecting to postgres://app:hunter2@db:5432/shop"),
            5 => format!("{i} GET /api/orders Authorization: Bearer abc.def-ghi{i}"),
            _ => format!(
                "2026-03-01T12:00:{:02}Z INFO request handled path=/api/orders/{i} status=200 took=3ms",
                i % 60
            ),
        })
        .collect()
}

fn bench_redaction(c: &mut Criterion) {
    let mut group = c.benchmark_group("redact");
    for lines in [100usize, 1_000] {
        let tail = log_tail(lines);
        group.throughput(Throughput::Elements(lines as u64));
        group.bench_with_input(BenchmarkId::new("log_tail", lines), &tail, |b, tail| {
            b.iter(|| redact_lines(black_box(tail), LINE_CAP));
        });
    }
    group.finish();
}

/// A health report of `items` verdicts as an agent sends it.
fn report_json(items: usize) -> Vec<u8> {
    let objects: Vec<serde_json::Value> = (0..items)
        .map(|i| {
            serde_json::json!({
                "id": DeploymentObjectId::new(),
                "status": if i % 7 == 0 { "failing" } else { "healthy" },
                "checked_at": now(),
                "summary": {
                    "pods_ready": 3, "pods_total": 3,
                    "conditions": if i % 7 == 0 { vec!["CrashLoopBackOff"] } else { vec![] },
                    "resources": [{"kind": "Deployment", "name": format!("web-{i}"),
                                   "namespace": "shop", "ready": true, "message": null}]
                }
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "deployment_objects": objects })).unwrap_or_default()
}

fn bench_report_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("health_report_decode");
    for items in [1usize, 50] {
        let body = report_json(items);
        group.throughput(Throughput::Elements(items as u64));
        group.bench_with_input(BenchmarkId::new("items", items), &body, |b, body| {
            b.iter(|| serde_json::from_slice::<HealthReport>(black_box(body)));
        });
    }
    group.finish();
}

fn record(
    agent: AgentId,
    object: DeploymentObjectId,
    status: Health,
    at: DateTime<Utc>,
) -> HealthRecord {
    HealthRecord {
        agent_id: agent,
        deployment_object_id: object,
        status,
        summary: HealthSummary {
            pods_ready: 3,
            pods_total: 3,
            ..HealthSummary::default()
        },
        checked_at: at,
        reported_at: at,
    }
}

fn bench_memory_store(c: &mut Criterion) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    let mut group = c.benchmark_group("memory_store");
    // 100 agents × 50 objects: batches of 50, the agent's usual report.
    let store = Arc::new(MemoryStore::new());
    let (agents, objects) = runtime.block_on(async {
        let stack = Stack {
            id: StackId::new(),
            name: "shop".to_owned(),
            labels: BTreeMap::new(),
            created_at: now(),
        };
        let _ = store.insert_stack(&stack).await;
        let mut agents = Vec::new();
        for n in 0..100u8 {
            let agent = Agent {
                id: AgentId::new(),
                name: format!("edge-{n}"),
                cluster_name: format!("c-{n}"),
                labels: BTreeMap::new(),
                created_at: now(),
            };
            let _ = brokkr::core::store::AgentStore::insert_agent(store.as_ref(), &agent, &[n; 32])
                .await;
            agents.push(agent.id);
        }
        let objects: Vec<DeploymentObjectId> = (0..50).map(|_| DeploymentObjectId::new()).collect();
        (agents, objects)
    });
    let batch = |agent: AgentId, status: Health, at: DateTime<Utc>| -> Vec<HealthRecord> {
        objects
            .iter()
            .map(|o| record(agent, *o, status, at))
            .collect()
    };
    group.throughput(Throughput::Elements(objects.len() as u64));
    let mut tick = 0i64;
    group.bench_function("upsert_changed_batch_of_50", |b| {
        b.iter(|| {
            tick += 1;
            let agent = agents[(tick as usize) % agents.len()];
            let status = if tick % 2 == 0 {
                Health::Healthy
            } else {
                Health::Degraded
            };
            let at = now() + Duration::seconds(tick);
            runtime.block_on(
                store.upsert_health(&batch(agent, status, at), at - Duration::seconds(150)),
            )
        });
    });
    group.bench_function("upsert_unchanged_batch_of_50", |b| {
        let agent = agents[0];
        let at = now() + Duration::seconds(tick + 1);
        let first = batch(agent, Health::Healthy, at);
        let _ = runtime.block_on(store.upsert_health(&first, at));
        b.iter(|| {
            runtime.block_on(store.upsert_health(black_box(&first), at - Duration::seconds(150)))
        });
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("fleet_rollup_100_agents", |b| {
        let dyn_store: Arc<dyn Store> = store.clone();
        b.iter(|| {
            runtime.block_on(dyn_store.fleet_rollup(
                now() - Duration::seconds(90),
                now() - Duration::seconds(300),
            ))
        });
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_redaction,
    bench_report_decode,
    bench_memory_store
);
criterion_main!(benches);
