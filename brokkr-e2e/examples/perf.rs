//! Performance scenarios, each measured against a baseline in the same run on the same
//! database (these machines are shared: only ratios are comparable between runs).
//!
//! ```text
//! cargo run --release -p brokkr-e2e --example perf -- classify
//! DATABASE_URL=postgres://... cargo run --release -p brokkr-e2e --example perf -- pg-health-ingest --seconds 10
//! cargo run --release -p brokkr-e2e --example perf -- http-health-ingest --agents 32
//! cargo run --release -p brokkr-e2e --example perf -- http-heartbeat --clients 64
//! cargo run --release -p brokkr-e2e --example perf -- fleet-summary --fleet-agents 100000
//! cargo run --release -p brokkr-e2e --example perf -- agent-rss --pods 1000
//! ```
//!
//! The Postgres scenarios create a fresh database on the server at `DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).
//!
//! Prints one JSON line per scenario, `{"scenario", "ours_per_s", "baseline_per_s",
//! "ratio", "target", "pass", "p50_ms", "p99_ms"}` plus scenario figures (CPU per row,
//! Postgres transactions per heartbeat, RSS), and exits 1 when `pass` is false.
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
    /// Concurrent HTTP clients sending heartbeats (`http-heartbeat`), one agent each.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Agents in the seeded fleet (`fleet-summary`).
    #[arg(long, default_value_t = 100_000)]
    fleet_agents: usize,
    /// Health rows per seeded agent (`fleet-summary`; 10 × 100k = 1M rows).
    #[arg(long, default_value_t = 10)]
    rows_per_agent: usize,
    /// Pods in the simulated cluster (`agent-rss`), spread over `--objects` objects.
    #[arg(long, default_value_t = 1000)]
    pods: usize,
    /// Health scenarios: every round flips every verdict between healthy and degraded
    /// (status changes: counts and events move), instead of keeping the status.
    #[arg(long)]
    status_changes: bool,
}

/// `--status-changes`, for [`batch`].
static STATUS_CHANGES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    /// Pods per second through the classifier on one core (target 1M/s).
    Classify,
    /// Store health upserts of batches vs raw `INSERT ... UNNEST ... ON CONFLICT` (≥ 0.8).
    PgHealthIngest,
    /// PATCH health-status over loopback HTTP vs the store-only rate (≥ 0.5).
    HttpHealthIngest,
    /// Heartbeats over HTTP vs one `UPDATE` per heartbeat on 8 connections (≥ 2.0).
    HttpHeartbeat,
    /// p99 of `GET /fleet/summary` over a seeded fleet while health ingest runs (< 20 ms).
    FleetSummary,
    /// RSS of one agent process watching a simulated cluster for 5 simulated minutes
    /// (< 40 MiB), and its health writes once nothing changes (0).
    AgentRss,
    /// The agent process `agent-rss` starts (not a scenario of its own).
    #[value(hide = true)]
    AgentChild,
}

/// What one scenario measured.
struct Outcome {
    scenario: &'static str,
    ours_per_s: f64,
    baseline_per_s: Option<f64>,
    target: f64,
    /// `ours / baseline`, or against the target without a baseline.
    ratio: f64,
    pass: bool,
    latencies: Vec<Duration>,
    /// Further figures of the scenario (CPU per row, transactions per heartbeat, RSS).
    figures: serde_json::Map<String, serde_json::Value>,
}

/// The `q` quantile of `latencies`, in milliseconds.
fn quantile_ms(latencies: &[Duration], q: f64) -> f64 {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    sorted
        .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn rounded(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

impl Outcome {
    /// A throughput scenario: passes when `ours / baseline` reaches `target`.
    fn ratio_of(
        scenario: &'static str,
        (ours, latencies): (f64, Vec<Duration>),
        baseline: f64,
        target: f64,
    ) -> Self {
        let ratio = ours / baseline;
        Self {
            scenario,
            ours_per_s: ours,
            baseline_per_s: Some(baseline),
            target,
            ratio,
            pass: ratio >= target,
            latencies,
            figures: serde_json::Map::new(),
        }
    }

    fn with(mut self, name: &str, value: f64) -> Self {
        self.figures
            .insert(name.to_owned(), json!(rounded(value, 3)));
        self
    }

    fn print(&self) {
        let mut line = json!({
            "scenario": self.scenario,
            "ours_per_s": self.ours_per_s.round(),
            "baseline_per_s": self.baseline_per_s.map(f64::round),
            "ratio": rounded(self.ratio, 3),
            "target": self.target,
            "pass": self.pass,
            "p50_ms": rounded(quantile_ms(&self.latencies, 0.5), 3),
            "p99_ms": rounded(quantile_ms(&self.latencies, 0.99), 3),
        });
        if let Some(fields) = line.as_object_mut() {
            fields.extend(self.figures.clone());
        }
        println!("{line}");
    }
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    STATUS_CHANGES.store(args.status_changes, Ordering::Relaxed);
    let outcome = match args.scenario {
        Scenario::Classify => Ok(classify_rate(&args)),
        Scenario::PgHealthIngest => pg_health_ingest(&args).await,
        Scenario::HttpHealthIngest => http_health_ingest(&args).await,
        Scenario::HttpHeartbeat => http_heartbeat(&args).await,
        Scenario::FleetSummary => fleet_summary(&args).await,
        Scenario::AgentRss => agent_rss(&args).await,
        Scenario::AgentChild => {
            return match agent_child(&args).await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("agent: {err}");
                    std::process::ExitCode::from(2)
                }
            };
        }
    };
    match outcome {
        Ok(outcome) => {
            outcome.print();
            if outcome.pass {
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
        pass: rate >= 1_000_000.0,
        latencies,
        figures: serde_json::Map::new(),
    }
}

/// A fresh database with `agents` agents and `objects` objects (one stack each, every
/// agent targeting every stack), and the store on it.
struct Fleet {
    url: String,
    store: PgStore,
    broker: Broker<dyn Store>,
    admin: Pak,
    agents: Vec<(AgentId, Pak)>,
    objects: Vec<DeploymentObjectId>,
}

async fn fleet(agents: usize, objects: usize) -> Result<Fleet, Failure> {
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
    let broker = broker_over(Arc::new(store.clone()), &admin)?;
    let (agents, objects) = catalog(&broker, agents, objects).await?;
    Ok(Fleet {
        url,
        store,
        broker,
        admin,
        agents,
        objects,
    })
}

/// `objects` stacks with one Deployment each, and `agents` agents targeting every stack.
async fn catalog(
    broker: &Broker<dyn Store>,
    agents: usize,
    objects: usize,
) -> Result<(Vec<(AgentId, Pak)>, Vec<DeploymentObjectId>), Failure> {
    let root = Principal::Admin;
    let (agent_count, object_count) = (agents, objects);
    let mut objects = Vec::new();
    let mut stacks = Vec::new();
    for i in 0..object_count {
        let stack = broker
            .create_stack(
                &root,
                NewStack {
                    name: format!("app-{i}"),
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
                        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\n"
                    ),
                    is_deletion: false,
                },
            )
            .await?;
        stacks.push(stack.id);
        objects.push(object.id);
    }
    let mut agents = Vec::new();
    for i in 0..agent_count {
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
    Ok((agents, objects))
}

/// A broker over `store` on the system clock, accepting `admin`.
fn broker_over(store: Arc<dyn Store>, admin: &Pak) -> Result<Broker<dyn Store>, Failure> {
    Ok(Broker::new(
        store,
        Arc::new(SystemClock),
        admin.hash(),
        BrokerConfig::default(),
    )?)
}

/// The batch agent `agent` sends in round `round`: every verdict healthy, the summary
/// changing every round (so every row is written, as after a rollout), no status change;
/// with `--status-changes`, every verdict flips between healthy and degraded.
fn batch(agent: AgentId, objects: &[DeploymentObjectId], round: u64) -> Vec<HealthRecord> {
    let at = Utc::now();
    let status = if STATUS_CHANGES.load(Ordering::Relaxed) && round % 2 == 1 {
        Health::Degraded
    } else {
        Health::Healthy
    };
    objects
        .iter()
        .map(|object| HealthRecord {
            agent_id: agent,
            deployment_object_id: *object,
            status,
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

/// Runs `write` from one task per worker for `duration`; rows per second and latencies.
async fn drive<F, Fut>(
    workers: &[(AgentId, Pak)],
    duration: Duration,
    write: F,
) -> (f64, Vec<Duration>)
where
    F: Fn(AgentId, Pak, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = usize> + Send,
{
    let rows = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (agent, pak) in workers {
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
    drive(&fleet.agents, duration, move |agent, _pak, round| {
        let (store, objects) = (store.clone(), objects.clone());
        async move {
            let records = batch(agent, &objects, round);
            let rewrite_before = Utc::now() - chrono::Duration::seconds(150);
            let done = store.upsert_health(&records, rewrite_before).await;
            count_or_say("store upsert", done, |outcomes| {
                outcomes.iter().filter(|o| o.is_written()).count()
            })
        }
    })
    .await
}

/// The same rows as [`store_rate`], written by one raw statement per batch.
async fn raw_rate(fleet: &Fleet, duration: Duration) -> (f64, Vec<Duration>) {
    let pool = fleet.store.pool().clone();
    let objects = Arc::new(fleet.objects.clone());
    drive(&fleet.agents, duration, move |agent, _pak, round| {
        let (pool, objects) = (pool.clone(), objects.clone());
        async move {
            let records = batch(agent, &objects, round);
            let summaries: Vec<serde_json::Value> = records
                .iter()
                .map(|r| serde_json::to_value(&r.summary).unwrap_or_default())
                .collect();
            // Every column of the rows, the summary digest included (its bytes do not
            // matter to Postgres; computing them is the store's cost, not this one's).
            let done = sqlx::query(
                "INSERT INTO deployment_health (agent_id, deployment_object_id, status, summary, checked_at, reported_at, summary_digest)
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::timestamptz[], $7::bytea[])
                 ON CONFLICT (agent_id, deployment_object_id) DO UPDATE SET
                     status = EXCLUDED.status, summary = EXCLUDED.summary,
                     checked_at = EXCLUDED.checked_at, reported_at = EXCLUDED.reported_at,
                     summary_digest = EXCLUDED.summary_digest",
            )
            .bind(records.iter().map(|r| r.agent_id.as_uuid()).collect::<Vec<_>>())
            .bind(records.iter().map(|r| r.deployment_object_id.as_uuid()).collect::<Vec<_>>())
            .bind(records.iter().map(|r| r.status.to_string()).collect::<Vec<_>>())
            .bind(summaries)
            .bind(records.iter().map(|r| r.checked_at).collect::<Vec<_>>())
            .bind(records.iter().map(|r| r.reported_at).collect::<Vec<_>>())
            .bind(records.iter().map(|_| vec![round as u8; 16]).collect::<Vec<_>>())
            .execute(&pool)
            .await;
            count_or_say("raw insert", done, |done| done.rows_affected() as usize)
        }
    })
    .await
}

/// What `done` counts, or 0 after saying what failed (the load goes on).
fn count_or_say<T, E: std::fmt::Display>(
    what: &str,
    done: Result<T, E>,
    count: impl FnOnce(T) -> usize,
) -> usize {
    match done {
        Ok(value) => count(value),
        Err(err) => {
            eprintln!("{what} failed: {err}");
            0
        }
    }
}

/// The answer when it is a success; otherwise says what came back.
fn success(what: &str, sent: reqwest::Result<reqwest::Response>) -> Option<reqwest::Response> {
    match sent {
        Ok(answer) if answer.status().is_success() => Some(answer),
        Ok(answer) => {
            eprintln!("{what} answered {}", answer.status());
            None
        }
        Err(err) => {
            eprintln!("{what} failed: {err}");
            None
        }
    }
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
    let fleet = fleet(args.agents, args.objects).await?;
    // Warm up: first inserts, then updates like the measured rounds.
    let _ = store_rate(&fleet, Duration::from_millis(500)).await;
    let total = Duration::from_secs(args.seconds * 2);
    let (raw_cpu, store_cpu) = (CpuMeter::default(), CpuMeter::default());
    let ((baseline, _), ours) = interleaved(
        total,
        |d| raw_cpu.measure(d, raw_rate(&fleet, d)),
        |d| store_cpu.measure(d, store_rate(&fleet, d)),
    )
    .await;
    Ok(Outcome::ratio_of("pg-health-ingest", ours, baseline, 0.8)
        .with_cpu("store", &store_cpu)
        .with_cpu("raw", &raw_cpu))
}

/// CPU seconds (user + system, every thread) of `/proc/<pid>/stat`, in clock ticks of
/// 1/100 s (Linux); 0 when unreadable.
fn stat_cpu_seconds(stat: &str) -> f64 {
    // Fields 14 and 15; the command name before them may hold spaces, so count from
    // its closing paren.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds this process has used so far.
fn cpu_seconds() -> f64 {
    stat_cpu_seconds(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default())
}

/// CPU seconds every `postgres` process on this machine has used so far (the server
/// is local in these measurements; backends that exit meanwhile are not counted).
fn postgres_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| stat.contains("(postgres)"))
        .map(|stat| stat_cpu_seconds(&stat))
        .sum()
}

/// CPU time (this process, Postgres) and items of the measured phases of one side.
#[derive(Default)]
struct CpuMeter(std::sync::Mutex<[f64; 3]>);

impl CpuMeter {
    /// Runs one phase of `duration` (yielding items per second) and adds its CPU time.
    async fn measure(
        &self,
        duration: Duration,
        phase: impl std::future::Future<Output = (f64, Vec<Duration>)>,
    ) -> (f64, Vec<Duration>) {
        let (ours, pg) = (cpu_seconds(), postgres_cpu_seconds());
        let (rate, latencies) = phase.await;
        let (ours, pg) = (cpu_seconds() - ours, postgres_cpu_seconds() - pg);
        if let Ok(mut acc) = self.0.lock() {
            acc[0] += ours;
            acc[1] += pg;
            acc[2] += rate * duration.as_secs_f64();
        }
        (rate, latencies)
    }

    /// CPU microseconds per item over the measured phases: (this process, Postgres).
    fn micros_per_item(&self) -> (f64, f64) {
        self.0.lock().map_or((0.0, 0.0), |acc| {
            let items = acc[2].max(1.0);
            (acc[0] * 1e6 / items, acc[1] * 1e6 / items)
        })
    }
}

impl Outcome {
    /// Adds `<prefix>_cpu_us_per_row` and `<prefix>_pg_cpu_us_per_row`.
    fn with_cpu(self, prefix: &str, meter: &CpuMeter) -> Self {
        let (ours, pg) = meter.micros_per_item();
        self.with(&format!("{prefix}_cpu_us_per_row"), ours)
            .with(&format!("{prefix}_pg_cpu_us_per_row"), pg)
    }
}

/// Serves `broker` on a loopback port until `stop` resolves; the API base URL.
async fn start_server(
    broker: &Broker<dyn Store>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<String, Failure> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/api/v1", listener.local_addr()?);
    tokio::spawn(serve(
        listener,
        router(broker.clone(), &HttpConfig::default()),
        stop,
    ));
    Ok(base)
}

fn http_client() -> Result<reqwest::Client, Failure> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?)
}

/// Sends every agent's health batches over HTTP for `duration`; rows per second.
fn ingest_over_http<'a>(
    http: &reqwest::Client,
    base: &str,
    fleet: &'a Fleet,
    duration: Duration,
) -> impl std::future::Future<Output = (f64, Vec<Duration>)> + 'a {
    let (http, base, objects) = (
        http.clone(),
        base.to_owned(),
        Arc::new(fleet.objects.clone()),
    );
    drive(&fleet.agents, duration, move |agent, pak, round| {
        let (http, base, objects) = (http.clone(), base.clone(), objects.clone());
        async move {
            let items: Vec<serde_json::Value> = batch(agent, &objects, round)
                .iter()
                .map(|r| {
                    json!({"id": r.deployment_object_id, "status": r.status,
                               "checked_at": r.checked_at, "summary": r.summary})
                })
                .collect();
            let sent = http
                .patch(format!("{base}/agents/{agent}/health-status"))
                .bearer_auth(pak.expose())
                .json(&json!({ "deployment_objects": items }))
                .send()
                .await;
            // Rows the broker wrote, by its own count.
            let Some(answer) = success("PATCH", sent) else {
                return 0;
            };
            answer
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|body| body["accepted"].as_u64())
                .unwrap_or_default() as usize
        }
    })
}

async fn http_health_ingest(args: &Args) -> Result<Outcome, Failure> {
    let fleet = fleet(args.agents, args.objects).await?;
    let base = start_server(&fleet.broker, std::future::pending()).await?;
    let http = http_client()?;
    let _ = ingest_over_http(&http, &base, &fleet, Duration::from_millis(500)).await;
    let total = Duration::from_secs(args.seconds * 2);
    let (store_cpu, http_cpu) = (CpuMeter::default(), CpuMeter::default());
    let ((baseline, _), ours) = interleaved(
        total,
        |d| store_cpu.measure(d, store_rate(&fleet, d)),
        |d| http_cpu.measure(d, ingest_over_http(&http, &base, &fleet, d)),
    )
    .await;
    // The HTTP client runs in this process too: `http_cpu_us_per_row` is the broker's
    // plus the client's.
    Ok(Outcome::ratio_of("http-health-ingest", ours, baseline, 0.5)
        .with_cpu("http", &http_cpu)
        .with_cpu("store", &store_cpu))
}

// ------------------------------------------------------------ heartbeats

/// The snapshot every heartbeat of these scenarios carries (both sides write it).
fn snapshot_json() -> serde_json::Value {
    json!({
        "cluster_cpu_capacity": 8000, "cluster_cpu_available": 3000,
        "cluster_memory_capacity": 34_359_738_368_i64, "cluster_memory_available": 17_179_869_184_i64,
        "node_count": 3, "node_ready_count": 3, "k8s_api_healthy": true, "k8s_api_latency_ms": 4,
    })
}

/// Heartbeats over HTTP from every agent of `workers` for `duration`; per second.
fn heartbeats_over_http(
    http: &reqwest::Client,
    base: &str,
    workers: &[(AgentId, Pak)],
    duration: Duration,
) -> impl std::future::Future<Output = (f64, Vec<Duration>)> {
    let (http, base) = (http.clone(), base.to_owned());
    let workers = workers.to_vec();
    async move {
        drive(&workers, duration, move |agent, pak, _round| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let sent = http
                    .post(format!("{base}/agents/{agent}/heartbeat"))
                    .bearer_auth(pak.expose())
                    .json(&snapshot_json())
                    .send()
                    .await;
                usize::from(success("heartbeat", sent).is_some())
            }
        })
        .await
    }
}

/// The baseline: one `UPDATE` per heartbeat from 8 tasks (8 connections), each cycling
/// over its share of the agents.
async fn raw_heartbeats(fleet: &Fleet, duration: Duration) -> (f64, Vec<Duration>) {
    let pool = fleet.store.pool().clone();
    let ids: Arc<Vec<AgentId>> = Arc::new(fleet.agents.iter().map(|(id, _)| *id).collect());
    let workers: Vec<(AgentId, Pak)> = fleet.agents.iter().take(8).cloned().collect();
    let next = Arc::new(AtomicU64::new(0));
    drive(&workers, duration, move |_, _, _| {
        let (pool, ids, next) = (pool.clone(), ids.clone(), next.clone());
        async move {
            let i = next.fetch_add(1, Ordering::Relaxed) as usize % ids.len();
            let done = sqlx::query(
                "UPDATE agent_liveness SET last_heartbeat_at = $2, snapshot = $3 WHERE agent_id = $1",
            )
            .bind(ids[i].as_uuid())
            .bind(Utc::now())
            .bind(snapshot_json())
            .execute(&pool)
            .await;
            count_or_say("raw update", done, |done| done.rows_affected() as usize)
        }
    })
    .await
}

/// Transactions committed and WAL flushes on the database so far (as far as the
/// statistics were flushed: backends report when they exit, or within seconds).
async fn pg_counters(url: &str) -> Result<(i64, i64), Failure> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let row: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
                (SELECT wal_sync FROM pg_stat_wal)",
    )
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    Ok(row)
}

async fn http_heartbeat(args: &Args) -> Result<Outcome, Failure> {
    let fleet = fleet(args.clients.max(8), 0).await?;
    let base = start_server(&fleet.broker, std::future::pending()).await?;
    let http = http_client()?;
    let _ = heartbeats_over_http(&http, &base, &fleet.agents, Duration::from_millis(500)).await;
    let total = Duration::from_secs(args.seconds * 2);
    let (raw_cpu, http_cpu) = (CpuMeter::default(), CpuMeter::default());
    let ((baseline, _), ours) = interleaved(
        total,
        |d| raw_cpu.measure(d, raw_heartbeats(&fleet, d)),
        |d| http_cpu.measure(d, heartbeats_over_http(&http, &base, &fleet.agents, d)),
    )
    .await;

    // Postgres work per heartbeat, on a broker of its own whose connections close at
    // the end (a backend reports its statistics when it exits).
    fleet.store.pool().close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (xact_before, sync_before) = pg_counters(&fleet.url).await?;
    let store = PgStore::connect(
        &fleet.url,
        &PgStoreOptions {
            migrate: false,
            ..PgStoreOptions::default()
        },
    )
    .await?;
    let broker = broker_over(Arc::new(store.clone()), &fleet.admin)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let base = start_server(&broker, async {
        let _ = stopped.await;
    })
    .await?;
    let counted = Duration::from_secs(2);
    let (rate, _) = heartbeats_over_http(&http_client()?, &base, &fleet.agents, counted).await;
    let _ = stop.send(());
    tokio::time::sleep(Duration::from_millis(200)).await;
    store.pool().close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (xact_after, sync_after) = pg_counters(&fleet.url).await?;
    let beats = (rate * counted.as_secs_f64()).max(1.0);
    // One of the counted transactions is the `pg_counters` read itself.
    let xact = (xact_after - xact_before - 1) as f64 / beats;
    let syncs = (sync_after - sync_before) as f64 / beats;
    Ok(Outcome::ratio_of("http-heartbeat", ours, baseline, 2.0)
        .with_cpu("http", &http_cpu)
        .with_cpu("raw", &raw_cpu)
        .with("pg_xact_per_heartbeat", xact)
        .with("wal_syncs_per_heartbeat", syncs))
}

// ------------------------------------------------------------ fleet summary

/// Adds `agents` agents with liveness and `rows` health rows each (over the first
/// `rows` objects) by plain SQL, and sets the maintained counts to match.
async fn seed_fleet(fleet: &Fleet, agents: usize, rows: usize) -> Result<(), Failure> {
    let pool = fleet.store.pool();
    let summary = serde_json::to_value(HealthSummary {
        pods_ready: 3,
        pods_total: 3,
        ..HealthSummary::default()
    })?;
    let objects: Vec<uuid::Uuid> = fleet
        .objects
        .iter()
        .take(rows)
        .map(DeploymentObjectId::as_uuid)
        .collect();
    // In slices, so no statement runs for minutes.
    let slice = 10_000;
    for start in (0..agents).step_by(slice) {
        let end = (start + slice).min(agents);
        sqlx::query(
            "WITH a AS (
                 INSERT INTO agents (id, name, cluster_name, labels, created_at)
                 SELECT gen_random_uuid(), 'seeded-' || g, 'seeded-' || g, '{}', now()
                 FROM generate_series($1::int, $2::int - 1) AS g
                 RETURNING id
             ), l AS (
                 INSERT INTO agent_liveness (agent_id, last_heartbeat_at, health_checked_at, snapshot)
                 SELECT id, now() - random() * interval '20 minutes', now(), $3 FROM a
             )
             INSERT INTO deployment_health (agent_id, deployment_object_id, status, summary, checked_at, reported_at)
             SELECT a.id, o, (ARRAY['healthy', 'healthy', 'healthy', 'degraded', 'failing', 'unknown'])[1 + floor(random() * 6)::int],
                    $5, now(), now()
             FROM a CROSS JOIN UNNEST($4::uuid[]) AS o",
        )
        .bind(start as i32)
        .bind(end as i32)
        .bind(snapshot_json())
        .bind(&objects)
        .bind(&summary)
        .execute(pool)
        .await?;
    }
    sqlx::query(
        "INSERT INTO agent_health_counts (agent_id, status, count)
         SELECT agent_id, status, count(*) FROM deployment_health
         WHERE agent_id IN (SELECT id FROM agents WHERE name LIKE 'seeded-%')
         GROUP BY agent_id, status",
    )
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(())
}

async fn fleet_summary(args: &Args) -> Result<Outcome, Failure> {
    let fleet = fleet(args.agents, args.objects.max(args.rows_per_agent)).await?;
    let seeding = Instant::now();
    seed_fleet(&fleet, args.fleet_agents, args.rows_per_agent).await?;
    let seeded_in = seeding.elapsed();
    let base = start_server(&fleet.broker, std::future::pending()).await?;
    let http = http_client()?;

    // What one summary costs computed on the spot (what every call paid before the
    // snapshot): the median of five, while nothing else runs.
    let mut full = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        fleet.broker.refresh_fleet_summary().await?;
        full.push(t.elapsed());
    }
    full.sort_unstable();
    let full_ms = full[2].as_secs_f64() * 1000.0;

    let duration = Duration::from_secs(args.seconds * 2);
    let ingest = ingest_over_http(&http, &base, &fleet, duration);
    let readers: Vec<(AgentId, Pak)> = (0..4)
        .map(|_| (AgentId::new(), fleet.admin.clone()))
        .collect();
    let reads = {
        let (http, base) = (http.clone(), base.clone());
        drive(&readers, duration, move |_, admin, _| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let read = http
                    .get(format!("{base}/fleet/summary"))
                    .bearer_auth(admin.expose())
                    .send()
                    .await;
                match success("summary", read) {
                    Some(answer) => usize::from(answer.bytes().await.is_ok()),
                    None => 0,
                }
            }
        })
    };
    let ((ingested, _), (read_rate, latencies)) = tokio::join!(ingest, reads);
    let p99 = quantile_ms(&latencies, 0.99);
    let summary = fleet.broker.fleet_summary(&Principal::Admin).await?;
    Ok(Outcome {
        scenario: "fleet-summary",
        ours_per_s: read_rate,
        baseline_per_s: Some(1000.0 / full_ms),
        target: 20.0,
        ratio: read_rate * full_ms / 1000.0,
        pass: p99 < 20.0 && summary.agents.total as usize >= args.fleet_agents,
        latencies,
        figures: serde_json::Map::new(),
    }
    .with("agents", summary.agents.total as f64)
    .with(
        "health_rows",
        (summary.health.healthy
            + summary.health.degraded
            + summary.health.failing
            + summary.health.unknown) as f64,
    )
    .with("full_recompute_ms", full_ms)
    .with("ingest_rows_per_s", ingested)
    .with("seed_seconds", seeded_in.as_secs_f64()))
}

// ------------------------------------------------------------ agent RSS

/// Resident and peak resident memory of this process, MiB.
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Simulated seconds between the child's cycles, and how many it runs (5 minutes; the
/// last cycle comes before the periodic 5-minute refresh is due).
const CHILD_STEP_S: i64 = 10;
const CHILD_CYCLES: usize = 30;
/// The last cycles, once the rollout settled, in which nothing changes.
const CHILD_QUIET_CYCLES: usize = 10;

async fn agent_rss(args: &Args) -> Result<Outcome, Failure> {
    use brokkr::store_memory::MemoryStore;
    let admin = Pak::generate(Role::Admin)?;
    let broker = broker_over(Arc::new(MemoryStore::new()), &admin)?;
    let (agents, _) = catalog(&broker, 1, args.objects.max(1)).await?;
    let (agent_id, pak) = agents.into_iter().next().ok_or("no agent registered")?;
    let base = start_server(&broker, std::future::pending()).await?;
    let origin = base.trim_end_matches("/api/v1").to_owned();
    let (objects, pods) = (args.objects.max(1), args.pods);
    let pak = pak.expose().to_owned();
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(std::env::current_exe()?)
            .args([
                "agent-child",
                "--objects",
                &objects.to_string(),
                "--pods",
                &pods.to_string(),
            ])
            .env("BROKKR_PERF_BROKER", origin)
            .env("BROKKR_PERF_AGENT", agent_id.to_string())
            .env("BROKKR_PERF_PAK", pak)
            .output()
    })
    .await??;
    let elapsed = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "the agent process failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let line = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(line.lines().last().unwrap_or_default())?;
    let rss = report["rss_mib"].as_f64().unwrap_or(f64::MAX);
    let written: Vec<u64> = report["written_per_cycle"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
        .unwrap_or_default();
    let quiet: u64 = written.iter().rev().take(CHILD_QUIET_CYCLES).sum();
    let first: u64 = written.first().copied().unwrap_or_default();
    let pods_observed = (pods * written.len()) as f64;
    Ok(Outcome {
        scenario: "agent-rss",
        ours_per_s: pods_observed / elapsed.as_secs_f64(),
        baseline_per_s: None,
        target: 40.0,
        ratio: rss / 40.0,
        pass: rss < 40.0 && quiet == 0 && first > 0,
        latencies: Vec::new(),
        figures: serde_json::Map::new(),
    }
    .with("rss_mib", rss)
    .with(
        "peak_rss_mib",
        report["peak_rss_mib"].as_f64().unwrap_or_default(),
    )
    .with("pods", pods as f64)
    .with("writes_first_cycle", first as f64)
    .with("writes_when_unchanged", quiet as f64))
}

/// The agent process of `agent-rss`: the real agent runtime and HTTP client against a
/// simulated cluster whose clock moves 10 s per cycle.
async fn agent_child(args: &Args) -> Result<(), Failure> {
    use brokkr::agent::{Agent, AgentConfig, SimulatedCluster, SimulationConfig};
    use brokkr::client::{Client, ClientConfig};
    use brokkr::core::clock::ManualClock;
    let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let agent_id: AgentId = var("BROKKR_PERF_AGENT")?.parse()?;
    let client = Client::new(ClientConfig::new(
        var("BROKKR_PERF_BROKER")?,
        agent_id,
        var("BROKKR_PERF_PAK")?,
    ))?;
    // Simulated time runs from 5 minutes ago up to now: the broker (real time) accepts
    // the past, not timestamps from the future.
    let span = chrono::Duration::seconds(CHILD_STEP_S * CHILD_CYCLES as i64);
    let clock = ManualClock::new(Utc::now() - span);
    let cluster = Arc::new(SimulatedCluster::new(
        Arc::new(clock.clone()),
        SimulationConfig {
            pods_per_object: (args.pods / args.objects.max(1)).max(1),
            nodes: 10,
            ..SimulationConfig::default()
        },
    ));
    let agent = Agent::new(
        cluster.clone(),
        client,
        clock.clone(),
        AgentConfig::default(),
    )?
    .with_applier(cluster);
    let mut written = Vec::new();
    for _ in 0..CHILD_CYCLES {
        agent.reconcile_once().await?;
        let checked = agent.check_once().await?;
        agent.heartbeat_once().await?;
        written.push(checked.reported);
        clock.advance(chrono::Duration::seconds(CHILD_STEP_S));
    }
    let (rss, peak) = rss_mib();
    println!(
        "{}",
        json!({"rss_mib": rss, "peak_rss_mib": peak, "written_per_cycle": written})
    );
    Ok(())
}
