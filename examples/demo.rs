//! A fleet in one process: a broker on loopback, simulated agents talking to it over
//! real HTTP, scripted faults, and a live summary of what the broker knows.
//!
//! ```text
//! cargo run --example demo --features client        # 20 agents, 60 s
//! cargo run --example demo --features client -- --agents 50 --duration 90
//! ```
//!
//! Time runs fast: heartbeats every 2 s, health checks every 3 s, graces of seconds
//! instead of minutes, an agent is stale after 6 s without a heartbeat and lost after
//! 15 s. Faults arrive one after another: a missing image, a crash loop, a lost node,
//! pods that fit nowhere, an apply the cluster refuses, and one agent that goes silent.
//! Halfway through, the demo asks for diagnostics of a failing object and prints the
//! bundle (note the redacted secrets in the log tails).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use brokkr::agent::{Agent, AgentConfig, Fault, FaultKind, SimulatedCluster, SimulationConfig};
use brokkr::client::{Client, ClientConfig};
use brokkr::core::auth::{Pak, Principal, Role};
use brokkr::core::broker::{Broker, BrokerConfig};
use brokkr::core::clock::{Clock, SystemClock};
use brokkr::core::diagnostics::DiagnosticStatus;
use brokkr::core::health::{Health, HealthPolicy};
use brokkr::core::ids::{AgentId, DeploymentObjectId, StackId};
use brokkr::core::model::{
    DiagnosticOutcome, FailureReason, NewAgent, NewDeploymentObject, NewStack, NewTarget,
};
use brokkr::core::staleness::{Staleness, StalenessPolicy};
use brokkr::core::store::{PageRequest, Store};
use brokkr::http::{HttpConfig, router, serve};
use brokkr::store_memory::MemoryStore;
use chrono::Duration;
use clap::Parser;
use tokio::sync::watch;

#[derive(Debug, Parser)]
#[command(about = "Brokkr demo: a broker and simulated agents over loopback HTTP")]
struct Args {
    /// Simulated agents (clusters).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(8..=500))]
    agents: u16,
    /// Seconds to run.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(10..=3600))]
    duration: u64,
    /// Seconds between summaries.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    interval: u64,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

const STACKS: [&str; 4] = ["web", "api", "worker", "cache"];

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

type DemoAgent = Agent<Arc<SimulatedCluster>, Client, SystemClock>;

/// One simulated cluster with its agent and what the demo knows about it.
struct Member {
    id: AgentId,
    name: String,
    cluster: Arc<SimulatedCluster>,
    objects: Vec<DeploymentObjectId>,
    stop: watch::Sender<bool>,
    /// The agent until it is started, then its task.
    agent: Option<DemoAgent>,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn broker_config() -> BrokerConfig {
    BrokerConfig {
        staleness: StalenessPolicy {
            heartbeat_interval: Duration::seconds(2),
            stale_after: Duration::seconds(6),
            lost_after: Duration::seconds(15),
        },
        refresh_interval: Duration::seconds(20),
        health_ttl: Duration::seconds(10),
        ..BrokerConfig::default()
    }
}

fn agent_config() -> AgentConfig {
    AgentConfig {
        heartbeat_interval: Duration::seconds(2),
        check_interval: Duration::seconds(3),
        diagnostics_poll: Duration::seconds(1),
        reconcile_interval: Duration::seconds(2),
        recover_after: Duration::seconds(5),
        refresh_interval: Duration::seconds(20),
        apply_backoff: Duration::seconds(2),
        apply_backoff_max: Duration::seconds(10),
        health_policy: HealthPolicy {
            pull_grace: Duration::seconds(6),
            config_grace: Duration::seconds(6),
            start_grace: Duration::seconds(10),
            ready_grace: Duration::seconds(10),
            unschedulable_grace: Duration::seconds(8),
            ..HealthPolicy::default()
        },
        ..AgentConfig::default()
    }
}

async fn run() -> Result<(), Failure> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        // The summary is the output; agents' own warnings would only interleave with it.
        .with_env_filter(tracing_subscriber::EnvFilter::try_new("error")?)
        .init();
    let clock = Arc::new(SystemClock);
    let admin_key = Pak::generate(Role::Admin)?;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let broker: Broker<dyn Store> =
        Broker::new(store, clock.clone(), admin_key.hash(), broker_config())?;
    let admin = broker.authenticate(admin_key.expose()).await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop_server, server_stopped) = watch::channel(false);
    let server = tokio::spawn(serve(
        listener,
        router(broker.clone(), &HttpConfig::default()),
        wait(server_stopped),
    ));
    println!("broker on {url} (in-memory store)");

    let mut stacks = Vec::new();
    for name in STACKS {
        let stack = broker
            .create_stack(
                &admin,
                NewStack {
                    name: name.to_owned(),
                    labels: BTreeMap::default(),
                },
            )
            .await?;
        let object = broker
            .add_deployment_object(
                &admin,
                stack.id,
                NewDeploymentObject {
                    yaml_content: format!(
                        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n\
                         spec:\n  replicas: 3\n"
                    ),
                    is_deletion: false,
                },
            )
            .await?;
        stacks.push((stack.id, name, object.id));
    }

    let mut fleet = Vec::new();
    for i in 0..usize::from(args.agents) {
        fleet.push(join(&broker, &admin, &url, &stacks, i).await?);
    }
    println!(
        "{} agents, {} stacks, each agent runs 2 of them\n",
        fleet.len(),
        stacks.len()
    );

    let started = Instant::now();
    let total = std::time::Duration::from_secs(args.duration);
    let every = std::time::Duration::from_secs(args.interval);
    let mut script = Script::new(fleet.len(), args.duration);
    // Faults scripted for the start are in place before the agents first look.
    script.advance(0, &mut fleet, clock.as_ref());
    for member in &mut fleet {
        let (stop, stopped) = watch::channel(false);
        member.stop = stop;
        member.task = member
            .agent
            .take()
            .map(|agent| tokio::spawn(agent.run(wait(stopped))));
    }
    let mut diagnosed = false;
    while started.elapsed() < total {
        tokio::time::sleep(every.min(total.saturating_sub(started.elapsed()))).await;
        let elapsed = started.elapsed().as_secs();
        script.advance(elapsed, &mut fleet, clock.as_ref());
        print_summary(&broker, &admin, &fleet, &stacks, elapsed).await?;
        if !diagnosed && elapsed >= args.duration / 2 {
            diagnosed = diagnose(&broker, &admin, &fleet, &stacks).await?;
        }
    }

    for member in &fleet {
        let _ = member.stop.send(true);
    }
    for member in fleet {
        if let Some(task) = member.task {
            let _ = task.await;
        }
    }
    let _ = stop_server.send(true);
    server.await??;
    println!("demo finished after {} s", started.elapsed().as_secs());
    Ok(())
}

async fn wait(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Registers agent `i`, targets two stacks, and builds its agent (over HTTP).
async fn join(
    broker: &Broker<dyn Store>,
    admin: &Principal,
    url: &str,
    stacks: &[(StackId, &str, DeploymentObjectId)],
    i: usize,
) -> Result<Member, Failure> {
    let name = format!("cluster-{i:02}");
    let registered = broker
        .register_agent(
            admin,
            NewAgent {
                name: name.clone(),
                cluster_name: name.clone(),
                labels: BTreeMap::from([("region".to_owned(), ["eu", "us"][i % 2].to_owned())]),
            },
        )
        .await?;
    let mut objects = Vec::new();
    for k in [i % stacks.len(), (i + 1) % stacks.len()] {
        let (stack_id, _, object) = stacks[k];
        broker
            .target(admin, registered.agent.id, NewTarget { stack_id })
            .await?;
        objects.push(object);
    }
    let cluster = Arc::new(SimulatedCluster::new(
        Arc::new(SystemClock),
        SimulationConfig::default(),
    ));
    let client = Client::new(ClientConfig::new(
        url,
        registered.agent.id,
        registered.pak.expose(),
    ))?;
    let agent = Agent::new(cluster.clone(), client, SystemClock, agent_config())?
        .with_applier(cluster.clone());
    Ok(Member {
        id: registered.agent.id,
        name,
        cluster,
        objects,
        stop: watch::channel(false).0,
        agent: Some(agent),
        task: None,
    })
}

/// The faults, each at its time, on agents spread over the fleet.
struct Script {
    steps: Vec<(u64, usize, Step)>,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Fault(usize, Kind),
    GoSilent,
    Heal,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    ImagePull,
    Crash,
    NodeLoss,
    Unschedulable,
    Rejected,
}

impl Script {
    fn new(agents: usize, duration: u64) -> Self {
        let at = |fraction: u64| duration * fraction / 100;
        // Distinct agents for each step (there are at least 8).
        let agent = |k: usize| (k * agents / 7 + 1) % agents;
        Self {
            steps: vec![
                (0, agent(4), Step::Fault(1, Kind::Rejected)),
                (at(10), agent(0), Step::Fault(0, Kind::ImagePull)),
                (at(15), agent(1), Step::Fault(0, Kind::Crash)),
                (at(20), agent(2), Step::Fault(0, Kind::NodeLoss)),
                (at(25), agent(3), Step::Fault(1, Kind::Unschedulable)),
                (at(30), agent(5), Step::GoSilent),
                (at(70), agent(1), Step::Heal),
            ],
        }
    }

    fn advance(&mut self, elapsed: u64, fleet: &mut [Member], clock: &dyn Clock) {
        let (due, later): (Vec<_>, Vec<_>) =
            self.steps.drain(..).partition(|(at, _, _)| *at <= elapsed);
        self.steps = later;
        for (_, i, step) in due {
            let member = &mut fleet[i];
            match step {
                Step::Fault(k, kind) => {
                    let object = member.objects[k];
                    let kind = match kind {
                        Kind::ImagePull => FaultKind::ImagePullBackOff,
                        Kind::Crash => FaultKind::CrashLoopBackOff,
                        Kind::NodeLoss => FaultKind::NodeLoss(0),
                        Kind::Unschedulable => FaultKind::Unschedulable,
                        Kind::Rejected => FaultKind::ApplyRejected(FailureReason::Forbidden),
                    };
                    println!(">>> {}: {kind:?}", member.name);
                    let object = (!matches!(kind, FaultKind::NodeLoss(_))).then_some(object);
                    member.cluster.inject(Fault {
                        object,
                        kind,
                        from: clock.now(),
                        until: None,
                    });
                }
                Step::GoSilent => {
                    println!(">>> {}: agent stops (network cut)", member.name);
                    if let Some(task) = &member.task {
                        task.abort();
                    }
                }
                Step::Heal => {
                    println!(">>> {}: faults fixed", member.name);
                    member.cluster.clear_faults();
                }
            }
        }
    }
}

fn name_of(fleet: &[Member], id: AgentId) -> &str {
    fleet
        .iter()
        .find(|m| m.id == id)
        .map_or("?", |m| m.name.as_str())
}

async fn print_summary(
    broker: &Broker<dyn Store>,
    admin: &Principal,
    fleet: &[Member],
    stacks: &[(StackId, &str, DeploymentObjectId)],
    elapsed: u64,
) -> Result<(), Failure> {
    let summary = broker.fleet_summary(admin).await?;
    let a = &summary.agents;
    let h = &summary.health;
    println!("── t+{elapsed:>3}s ─────────────────────────────────────────────");
    println!(
        "agents   {} total: {} fresh, {} stale, {} lost",
        a.total, a.fresh, a.stale, a.lost
    );
    println!(
        "verdicts {} healthy, {} degraded, {} failing, {} unknown",
        h.healthy, h.degraded, h.failing, h.unknown
    );
    let page = PageRequest {
        limit: 500,
        after: None,
    };
    for state in [Staleness::Stale, Staleness::Lost] {
        let agents = broker.list_agents(admin, page, Some(state)).await?;
        for view in agents.items {
            println!(
                "  {:?}: {} (last heartbeat {})",
                state,
                view.agent.name,
                view.last_heartbeat_at
                    .map_or_else(|| "never".to_owned(), |t| t.format("%H:%M:%S").to_string())
            );
        }
    }
    for (stack, name, _) in stacks {
        let health = broker.stack_health(admin, *stack).await?;
        for object in &health.deployment_objects {
            for entry in &object.agents {
                if entry.status <= Health::Healthy {
                    continue;
                }
                let why = entry.summary.as_ref().map_or_else(
                    || "never reported".to_owned(),
                    |s| {
                        let mut why = s.conditions.join(", ");
                        if why.is_empty() {
                            why = s.phase.clone().unwrap_or_default();
                        }
                        let top = s
                            .findings
                            .first()
                            .map(|f| {
                                let text = |k: &str| f.get(k).and_then(|v| v.as_str());
                                let of = f
                                    .get("affected")
                                    .map(|a| format!(" {}/{} pods", a["n"], a["of"]))
                                    .unwrap_or_default();
                                format!(
                                    "\n           top finding: {}{of}: {}",
                                    text("display").unwrap_or("?"),
                                    text("message").unwrap_or("")
                                )
                            })
                            .unwrap_or_default();
                        format!("{why} ({}/{} pods ready){top}", s.pods_ready, s.pods_total)
                    },
                );
                println!(
                    "  {:<8} {:<9} on {}: {why}{}",
                    name,
                    entry.status.as_str(),
                    name_of(fleet, entry.agent_id),
                    if entry.stale { " [stale]" } else { "" }
                );
            }
        }
    }
    for member in fleet {
        let status = broker.operational_status(admin, member.id).await?;
        if status.reconcile.objects_failing > 0 {
            let reason = status
                .reconcile
                .last_failure_reason
                .and_then(|r| serde_json::to_value(r).ok())
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            println!(
                "  reconcile failing on {}: {reason}, {} retries",
                member.name, status.reconcile.retry_total
            );
        }
    }
    Ok(())
}

/// Asks for diagnostics of the first failing object and prints the bundle; false when
/// nothing is failing yet.
async fn diagnose(
    broker: &Broker<dyn Store>,
    admin: &Principal,
    fleet: &[Member],
    stacks: &[(StackId, &str, DeploymentObjectId)],
) -> Result<bool, Failure> {
    let mut target = None;
    for (stack, _, _) in stacks {
        let health = broker.stack_health(admin, *stack).await?;
        for object in health.deployment_objects {
            for entry in &object.agents {
                if entry.status != Health::Failing || entry.stale {
                    continue;
                }
                // Only an agent that is still heartbeating will answer.
                let live = broker.operational_status(admin, entry.agent_id).await?;
                if live.staleness == Staleness::Fresh {
                    target = Some((object.id, entry.agent_id));
                    break;
                }
            }
            if target.is_some() {
                break;
            }
        }
        if target.is_some() {
            break;
        }
    }
    let Some((object, agent)) = target else {
        return Ok(false);
    };
    println!(
        "\n>>> diagnostics requested for {object} on {}",
        name_of(fleet, agent)
    );
    let request = broker
        .request_diagnostics(admin, object, Some(agent), "demo")
        .await?[0]
        .id;
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let view = broker.diagnostic(admin, request).await?;
        match (view.request.status, view.result) {
            (DiagnosticStatus::Completed, Some(DiagnosticOutcome::Bundle(bundle))) => {
                println!("bundle collected at {}", bundle.collected_at);
                for chain in bundle.owner_chain.iter().take(3) {
                    println!("  owner   {chain}");
                }
                for pod in bundle.pod_statuses.iter().take(3) {
                    for c in &pod.container_statuses {
                        println!(
                            "  pod     {} [{}] {}: {:?} {} restarts={}{}",
                            pod.name,
                            pod.phase,
                            c.name,
                            c.state,
                            c.reason.as_deref().unwrap_or(""),
                            c.restart_count,
                            c.last_termination_reason
                                .as_ref()
                                .map(|r| format!(" last={r}"))
                                .unwrap_or_default()
                        );
                    }
                }
                let warnings = bundle.events.iter().filter(|e| e.event_type == "Warning");
                for event in warnings.rev().take(4) {
                    println!(
                        "  event   {} {} x{}: {}",
                        event.event_type, event.reason, event.count, event.message
                    );
                }
                if let Some((key, lines)) = bundle.log_tails.iter().next() {
                    println!("  log     {key}");
                    for line in lines.iter().take(4) {
                        println!("          {line}");
                    }
                }
                println!();
                return Ok(true);
            }
            (DiagnosticStatus::Failed | DiagnosticStatus::Completed, result) => {
                println!("diagnostics ended without a bundle: {result:?}\n");
                return Ok(true);
            }
            _ if Instant::now() > deadline => {
                println!("diagnostics not answered within 5 s\n");
                return Ok(true);
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(250)).await,
        }
    }
}
