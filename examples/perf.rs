//! Performance scenarios, each measured against a baseline in the same run on the same
//! database (these machines are shared: only ratios are comparable between runs).
//!
//! ```text
//! cargo run --release --example perf --features postgres -- classify
//! DATABASE_URL=postgres://... cargo run --release --example perf --features postgres -- pg-health-ingest --seconds 10
//! cargo run --release --example perf --features postgres -- http-health-ingest --agents 32
//! ```
//!
//! The Postgres scenarios create a fresh database on the server at `DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).
//!
//! Prints one JSON line per scenario, `{"scenario", "ours_per_s", "baseline_per_s",
//! "ratio", "target", "pass", "p50_ms", "p99_ms"}`, and exits 1 when `pass` is false.
//! Baseline and ours run interleaved (baseline, ours, baseline, ours) so drift on the
//! machine hits both alike. See docs/performance.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use brokkr::core::auth::{Pak, Principal, Role};
use brokkr::core::broker::{Broker, BrokerConfig};
use brokkr::core::clock::SystemClock;
use brokkr::core::health::{Health, HealthPolicy, classify, synthetic::healthy_deployment};
use brokkr::core::ids::{AgentId, DeploymentObjectId};
use brokkr::core::model::{
    HealthRecord, HealthSummary, NewAgent, NewDeploymentObject, NewStack, NewTarget,
};
use brokkr::core::store::{HealthStore, Store};
use brokkr::http::{HttpConfig, router, serve};
use brokkr::store_postgres::{PgStore, PgStoreOptions};
use chrono::Utc;
use clap::{Parser, ValueEnum};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "Brokkr performance scenarios (ratios against a baseline in the same run)")]
struct Args {
    /// What to measure.
    scenario: Scenario,
    /// Agents (concurrent writers).
    #[arg(long, default_value_t = 8)]
    agents: usize,
    /// Deployment objects per agent (the batch size).
    #[arg(long, default_value_t = 50)]
    objects: usize,
    /// Seconds per side (baseline and ours each, split over two interleaved halves).
    #[arg(long, default_value_t = 6)]
    seconds: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    /// Pods per second through the classifier on one core (target 1M/s).
    Classify,
    /// Store health upserts of batches vs raw `INSERT ... UNNEST ... ON CONFLICT` (≥ 0.8).
    PgHealthIngest,
    /// PATCH health-status over loopback HTTP vs the store-only rate (≥ 0.5).
    HttpHealthIngest,
}

/// What one scenario measured.
struct Outcome {
    scenario: &'static str,
    ours_per_s: f64,
    baseline_per_s: Option<f64>,
    target: f64,
    /// `ours / baseline`, or `ours / target` without a baseline.
    ratio: f64,
    latencies: Vec<Duration>,
}

impl Outcome {
    fn pass(&self) -> bool {
        match self.baseline_per_s {
            Some(_) => self.ratio >= self.target,
            None => self.ours_per_s >= self.target,
        }
    }

    fn print(&self) {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let pick = |q: f64| {
            sorted
                .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        let line = json!({
            "scenario": self.scenario,
            "ours_per_s": self.ours_per_s.round(),
            "baseline_per_s": self.baseline_per_s.map(f64::round),
            "ratio": (self.ratio * 1000.0).round() / 1000.0,
            "target": self.target,
            "pass": self.pass(),
            "p50_ms": (pick(0.5) * 1000.0).round() / 1000.0,
            "p99_ms": (pick(0.99) * 1000.0).round() / 1000.0,
        });
        println!("{line}");
    }
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let outcome = match args.scenario {
        Scenario::Classify => Ok(classify_rate(&args)),
        Scenario::PgHealthIngest => pg_health_ingest(&args).await,
        Scenario::HttpHealthIngest => http_health_ingest(&args).await,
    };
    match outcome {
        Ok(outcome) => {
            outcome.print();
            if outcome.pass() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::from(2)
        }
    }
}

fn classify_rate(args: &Args) -> Outcome {
    let now = Utc::now();
    let policy = HealthPolicy::default();
    let pods = 10_000;
    let observations = healthy_deployment("shop", "web", pods, now);
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut classified = 0usize;
    let mut latencies = Vec::new();
    while Instant::now() < until {
        let t = Instant::now();
        std::hint::black_box(classify(std::hint::black_box(&observations), now, &policy));
        latencies.push(t.elapsed());
        classified += pods;
    }
    let rate = classified as f64 / started.elapsed().as_secs_f64();
    Outcome {
        scenario: "classify",
        ours_per_s: rate,
        baseline_per_s: None,
        target: 1_000_000.0,
        ratio: rate / 1_000_000.0,
        latencies,
    }
}

/// A fresh database with `agents` agents and `objects` objects (one stack each, every
/// agent targeting every stack), and the store on it.
struct Fleet {
    store: PgStore,
    broker: Broker<dyn Store>,
    agents: Vec<(AgentId, Pak)>,
    objects: Vec<DeploymentObjectId>,
}

async fn fleet(args: &Args) -> Result<Fleet, Failure> {
    let url = brokkr::store_postgres::testing::fresh_database().await;
    let store = PgStore::connect(
        &url,
        &PgStoreOptions {
            max_connections: 32,
            ..PgStoreOptions::default()
        },
    )
    .await?;
    let admin = Pak::generate(Role::Admin)?;
    let shared: Arc<dyn Store> = Arc::new(store.clone());
    let broker: Broker<dyn Store> = Broker::new(
        shared,
        Arc::new(SystemClock),
        admin.hash(),
        BrokerConfig::default(),
    )?;
    let root = Principal::Admin;
    let mut objects = Vec::new();
    let mut stacks = Vec::new();
    for i in 0..args.objects {
        let stack = broker
            .create_stack(
                &root,
                NewStack {
                    name: format!("stack-{i}"),
                    labels: std::collections::BTreeMap::default(),
                },
            )
            .await?;
        let object = broker
            .add_deployment_object(
                &root,
                stack.id,
                NewDeploymentObject {
                    yaml_content: format!(
                        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n"
                    ),
                    is_deletion: false,
                },
            )
            .await?;
        stacks.push(stack.id);
        objects.push(object.id);
    }
    let mut agents = Vec::new();
    for i in 0..args.agents {
        let registered = broker
            .register_agent(
                &root,
                NewAgent {
                    name: format!("edge-{i}"),
                    cluster_name: format!("edge-{i}"),
                    labels: std::collections::BTreeMap::default(),
                },
            )
            .await?;
        for stack in &stacks {
            broker
                .target(&root, registered.agent.id, NewTarget { stack_id: *stack })
                .await?;
        }
        agents.push((registered.agent.id, registered.pak));
    }
    Ok(Fleet {
        store,
        broker,
        agents,
        objects,
    })
}

/// The batch agent `agent` sends in round `round`: every verdict healthy, the summary
/// changing every round (so every row is written, as after a rollout), no status change.
fn batch(agent: AgentId, objects: &[DeploymentObjectId], round: u64) -> Vec<HealthRecord> {
    let at = Utc::now();
    objects
        .iter()
        .map(|object| HealthRecord {
            agent_id: agent,
            deployment_object_id: *object,
            status: Health::Healthy,
            summary: HealthSummary {
                pods_ready: (round % 5) as u32 + 1,
                pods_total: 5,
                conditions: vec![],
                ..HealthSummary::default()
            },
            checked_at: at,
            reported_at: at,
        })
        .collect()
}

/// Runs `write` from one task per agent for `duration`; rows per second and latencies.
async fn drive<F, Fut>(fleet: &Fleet, duration: Duration, write: F) -> (f64, Vec<Duration>)
where
    F: Fn(AgentId, Pak, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = usize> + Send,
{
    let rows = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (agent, pak) in &fleet.agents {
        let (agent, pak, write, rows) = (*agent, pak.clone(), write.clone(), rows.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut round = 0;
            while Instant::now() < until {
                round += 1;
                let t = Instant::now();
                let written = write(agent, pak.clone(), round).await;
                latencies.push(t.elapsed());
                rows.fetch_add(written as u64, Ordering::Relaxed);
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.unwrap_or_default());
    }
    let rate = rows.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    (rate, latencies)
}

async fn store_rate(fleet: &Fleet, duration: Duration) -> (f64, Vec<Duration>) {
    let store = fleet.store.clone();
    let objects = Arc::new(fleet.objects.clone());
    drive(fleet, duration, move |agent, _pak, round| {
        let (store, objects) = (store.clone(), objects.clone());
        async move {
            let records = batch(agent, &objects, round);
            let rewrite_before = Utc::now() - chrono::Duration::seconds(150);
            match store.upsert_health(&records, rewrite_before).await {
                Ok(outcomes) => outcomes.len(),
                Err(err) => {
                    eprintln!("store upsert failed: {err}");
                    0
                }
            }
        }
    })
    .await
}

/// The same rows as [`store_rate`], written by one raw statement per batch.
async fn raw_rate(fleet: &Fleet, duration: Duration) -> (f64, Vec<Duration>) {
    let pool = fleet.store.pool().clone();
    let objects = Arc::new(fleet.objects.clone());
    drive(fleet, duration, move |agent, _pak, round| {
        let (pool, objects) = (pool.clone(), objects.clone());
        async move {
            let records = batch(agent, &objects, round);
            let summaries: Vec<serde_json::Value> = records
                .iter()
                .map(|r| serde_json::to_value(&r.summary).unwrap_or_default())
                .collect();
            let done = sqlx::query(
                "INSERT INTO deployment_health (agent_id, deployment_object_id, status, summary, checked_at, reported_at)
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::timestamptz[])
                 ON CONFLICT (agent_id, deployment_object_id) DO UPDATE SET
                     status = EXCLUDED.status, summary = EXCLUDED.summary,
                     checked_at = EXCLUDED.checked_at, reported_at = EXCLUDED.reported_at",
            )
            .bind(records.iter().map(|r| r.agent_id.as_uuid()).collect::<Vec<_>>())
            .bind(records.iter().map(|r| r.deployment_object_id.as_uuid()).collect::<Vec<_>>())
            .bind(records.iter().map(|_| "healthy".to_owned()).collect::<Vec<_>>())
            .bind(summaries)
            .bind(records.iter().map(|r| r.checked_at).collect::<Vec<_>>())
            .bind(records.iter().map(|r| r.reported_at).collect::<Vec<_>>())
            .execute(&pool)
            .await;
            match done {
                Ok(done) => done.rows_affected() as usize,
                Err(err) => {
                    eprintln!("raw insert failed: {err}");
                    0
                }
            }
        }
    })
    .await
}

/// Runs `baseline` and `ours` alternately, twice each, for `total` in all.
async fn interleaved<B, O, BF, OF>(
    total: Duration,
    baseline: B,
    ours: O,
) -> ((f64, Vec<Duration>), (f64, Vec<Duration>))
where
    B: Fn(Duration) -> BF,
    O: Fn(Duration) -> OF,
    BF: std::future::Future<Output = (f64, Vec<Duration>)>,
    OF: std::future::Future<Output = (f64, Vec<Duration>)>,
{
    let quarter = total / 4;
    let (b1, mut bl) = baseline(quarter).await;
    let (o1, mut ol) = ours(quarter).await;
    let (b2, bl2) = baseline(quarter).await;
    let (o2, ol2) = ours(quarter).await;
    bl.extend(bl2);
    ol.extend(ol2);
    ((f64::midpoint(b1, b2), bl), (f64::midpoint(o1, o2), ol))
}

async fn pg_health_ingest(args: &Args) -> Result<Outcome, Failure> {
    let fleet = fleet(args).await?;
    // Warm up: first inserts, then updates like the measured rounds.
    let _ = store_rate(&fleet, Duration::from_millis(500)).await;
    let total = Duration::from_secs(args.seconds * 2);
    let ((baseline, _), (ours, latencies)) =
        interleaved(total, |d| raw_rate(&fleet, d), |d| store_rate(&fleet, d)).await;
    Ok(Outcome {
        scenario: "pg-health-ingest",
        ours_per_s: ours,
        baseline_per_s: Some(baseline),
        target: 0.8,
        ratio: ours / baseline,
        latencies,
    })
}

async fn http_health_ingest(args: &Args) -> Result<Outcome, Failure> {
    let fleet = fleet(args).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/api/v1", listener.local_addr()?);
    tokio::spawn(serve(
        listener,
        router(fleet.broker.clone(), &HttpConfig::default()),
        std::future::pending(),
    ));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let objects = Arc::new(fleet.objects.clone());
    let over_http = |duration: Duration| {
        let (http, base, objects) = (http.clone(), base.clone(), objects.clone());
        drive(&fleet, duration, move |agent, pak, round| {
            let (http, base, objects) = (http.clone(), base.clone(), objects.clone());
            async move {
                let items: Vec<serde_json::Value> = batch(agent, &objects, round)
                    .iter()
                    .map(|r| {
                        json!({"id": r.deployment_object_id, "status": "healthy",
                               "checked_at": r.checked_at, "summary": r.summary})
                    })
                    .collect();
                let sent = http
                    .patch(format!("{base}/agents/{agent}/health-status"))
                    .bearer_auth(pak.expose())
                    .json(&json!({ "deployment_objects": items }))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => items.len(),
                    Ok(r) => {
                        eprintln!("PATCH answered {}", r.status());
                        0
                    }
                    Err(err) => {
                        eprintln!("PATCH failed: {err}");
                        0
                    }
                }
            }
        })
    };
    let _ = over_http(Duration::from_millis(500)).await;
    let total = Duration::from_secs(args.seconds * 2);
    let ((baseline, _), (ours, latencies)) =
        interleaved(total, |d| store_rate(&fleet, d), over_http).await;
    Ok(Outcome {
        scenario: "http-health-ingest",
        ours_per_s: ours,
        baseline_per_s: Some(baseline),
        target: 0.5,
        ratio: ours / baseline,
        latencies,
    })
}
