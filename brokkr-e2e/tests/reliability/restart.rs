//! The broker process is killed under load and started again: nothing it acknowledged is
//! lost, and agents carry on by themselves.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brokkr::agent::{Agent, AgentConfig, SimulatedCluster, SimulationConfig};
use brokkr::client::{Client, ClientConfig};
use brokkr::core::clock::SystemClock;
use brokkr::store_postgres::testing::fresh_database;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};

use crate::support::{ADMIN, BrokerProcess, Caller, register_agent, stack_for};
use crate::traffic::{
    Ledger, admin_traffic, agent_traffic, assert_newest_stored, diagnostics_traffic,
};

/// An agent runtime with short intervals, so a restart shows within seconds.
fn quick_agent(
    base: &str,
    id: &str,
    key: &str,
) -> Agent<Arc<SimulatedCluster>, Client, SystemClock> {
    let cluster = Arc::new(SimulatedCluster::new(
        Arc::new(SystemClock),
        SimulationConfig::default(),
    ));
    let client = Client::new(ClientConfig::new(base, id.parse().unwrap(), key)).unwrap();
    let config = AgentConfig {
        heartbeat_interval: chrono::Duration::milliseconds(300),
        check_interval: chrono::Duration::seconds(1),
        diagnostics_poll: chrono::Duration::milliseconds(500),
        reconcile_interval: chrono::Duration::seconds(1),
        ..AgentConfig::default()
    };
    Agent::new(cluster.clone(), client, SystemClock, config)
        .unwrap()
        .with_applier(cluster)
}

async fn last_heartbeat(caller: &Caller, agent: &str) -> Option<DateTime<Utc>> {
    let status = caller
        .try_send(
            Method::GET,
            &format!("/api/v1/agents/{agent}/operational-status"),
            ADMIN,
            None,
        )
        .await?;
    status.body["last_heartbeat_at"].as_str()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_broker_loses_nothing_it_acknowledged_and_agents_reconnect() {
    let database = fresh_database().await;
    let mut broker = BrokerProcess::start(&database).await;
    let caller = Caller::new(&broker.base);
    let mut agents = Vec::new();
    for i in 0..4 {
        agents.push(register_agent(&caller, &format!("edge-{i}")).await);
    }
    let objects = stack_for(&caller, &agents, 3).await;
    let runtime = register_agent(&caller, "runtime").await;
    stack_for(&caller, std::slice::from_ref(&runtime), 1).await;

    // A real agent, left alone for the whole test.
    let (stop_agent, agent_stopped) = tokio::sync::oneshot::channel::<()>();
    let agent_task = tokio::spawn(quick_agent(&broker.base, &runtime.id, &runtime.key).run(
        async {
            let _ = agent_stopped.await;
        },
    ));

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    // Half the agents fall silent just before the kill: what they were last told was
    // stored can only have been stored by the old process.
    let stop_early = Arc::new(AtomicBool::new(false));
    let mut early = tokio::task::JoinSet::new();
    let mut traffic = tokio::task::JoinSet::new();
    for (i, agent) in agents.iter().enumerate() {
        let (set, flag) = if i < 2 {
            (&mut early, &stop_early)
        } else {
            (&mut traffic, &stop)
        };
        set.spawn(agent_traffic(
            caller.clone(),
            agent.clone(),
            objects.clone(),
            ledger.clone(),
            flag.clone(),
        ));
        traffic.spawn(diagnostics_traffic(
            caller.clone(),
            agent.clone(),
            objects[0].clone(),
            ledger.clone(),
            stop.clone(),
        ));
    }
    traffic.spawn(admin_traffic(caller.clone(), ledger.clone(), stop.clone()));

    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_early.store(true, Ordering::Relaxed);
    while early.join_next().await.is_some() {}
    let (before_kill, silent) = {
        let ledger = ledger.lock().unwrap();
        let silent: Vec<_> = agents[..2]
            .iter()
            .map(|a| {
                (
                    a.id.clone(),
                    ledger.heartbeats[&a.id],
                    ledger.reports[&a.id],
                )
            })
            .collect();
        (ledger.results.len(), silent)
    };
    assert!(before_kill > 0, "no diagnostics round trip before the kill");
    broker.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    broker.restart().await;
    let restarted_at = Utc::now();
    let restarted = Instant::now();

    // The agent runtime reaches the new process without help.
    loop {
        if last_heartbeat(&caller, &runtime.id)
            .await
            .is_some_and(|at| at > restarted_at)
        {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(30),
            "the agent did not come back after the broker restarted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reconnected = restarted.elapsed();
    // Traffic through the new process for a while.
    tokio::time::sleep(Duration::from_secs(2)).await;

    stop.store(true, Ordering::Relaxed);
    while traffic.join_next().await.is_some() {}
    let _ = stop_agent.send(());
    tokio::time::timeout(Duration::from_secs(30), agent_task)
        .await
        .expect("the agent did not stop")
        .unwrap();

    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    assert!(ledger.violations.is_empty(), "{:#?}", ledger.violations);
    assert!(
        ledger.results.len() > before_kill,
        "no diagnostics result acknowledged after the restart"
    );
    // Every acknowledged write is in the restarted broker's answers.
    let caller = Caller::new(&broker.base);
    for id in &ledger.results {
        let request = caller
            .ok(
                Method::GET,
                &format!("/api/v1/diagnostics/{id}"),
                ADMIN,
                None,
            )
            .await;
        assert_eq!(request["status"], "completed", "{request}");
        assert_eq!(request["result"]["log_tails"]["web-1/app"][0], "started");
    }
    for id in &ledger.stacks {
        let stack = caller
            .send(
                Method::GET,
                &format!("/api/v1/stacks/{id}/health"),
                ADMIN,
                None,
            )
            .await;
        assert_eq!(
            stack.status,
            StatusCode::OK,
            "acknowledged stack {id}: {stack:?}"
        );
    }
    // The silent agents' last acknowledged heartbeat and report, from the old process.
    for (agent, beats, reports) in &silent {
        assert_newest_stored(
            &caller,
            agent,
            *beats,
            *reports,
            objects.len(),
            " before the kill",
        )
        .await;
    }
    for agent in &agents[2..] {
        assert_newest_stored(
            &caller,
            &agent.id,
            ledger.heartbeats[&agent.id],
            ledger.reports[&agent.id],
            objects.len(),
            "",
        )
        .await;
    }
    eprintln!(
        "restart: agent back after {reconnected:?}; acknowledged and found: {} results, {} \
         stacks; answers {:?}",
        ledger.results.len(),
        ledger.stacks.len(),
        ledger.statuses
    );
}
