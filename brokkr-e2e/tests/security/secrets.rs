//! Keys never reach the logs or the database in the clear, log tails are redacted
//! before they are stored, and failed authentication is slowed down per address.

use std::io::Write;
use std::sync::{Arc, Mutex};

use brokkr::store_postgres::testing::fresh_store;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::server::{lenient, serve_memory, serve_store};
use crate::support::{ADMIN, Caller, register_agent, stack_for};

/// Log output kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

/// The broker (on Postgres, so the store's logs count too) logs at TRACE on this thread
/// while a client on a blocking thread authenticates well and badly.
#[tokio::test]
async fn keys_are_never_logged_nor_stored_in_the_clear() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = fresh_store().await;
    let served = serve_store(
        Arc::new(store.clone()),
        &lenient(),
        &brokkr::http::ServeOptions::default(),
    )
    .await;
    let base = served.caller.base.clone();
    // The client runs on a thread and runtime of its own: only the broker's logs (on
    // this current-thread runtime) are captured.
    let keys = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let caller = Caller::new(&base);
            let agent = register_agent(&caller, "edge").await;
            let heartbeat = format!("/api/v1/agents/{}/heartbeat", agent.id);
            let ok = caller
                .send(Method::POST, &heartbeat, &agent.key, Some(json!({})))
                .await;
            assert_eq!(ok.status, StatusCode::NO_CONTENT);
            let mut wrong = agent.key.clone();
            let last = wrong.pop().unwrap();
            wrong.push(if last == 'a' { 'b' } else { 'a' });
            let bad = caller
                .send(Method::POST, &heartbeat, &wrong, Some(json!({})))
                .await;
            assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
            let unknown = "brokkr_agent_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ";
            let bad = caller
                .send(Method::POST, &heartbeat, unknown, Some(json!({})))
                .await;
            assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
            let rotated = caller
                .ok(
                    Method::POST,
                    &format!("/api/v1/agents/{}/pak", agent.id),
                    &agent.key,
                    None,
                )
                .await;
            let rotated = rotated["pak"].as_str().unwrap().to_owned();
            vec![
                ADMIN.to_owned(),
                agent.key,
                wrong,
                unknown.to_owned(),
                rotated,
            ]
        })
    })
    .await
    .unwrap();
    // Let the server finish writing its last spans.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("/api/v1/agents/{id}/heartbeat") && text.contains("principal"),
        "the broker's request logs were not captured:\n{}",
        &text[..text.len().min(2000)]
    );
    for key in &keys {
        // The random part alone: a key cut at a line break or quoted differently must
        // not slip through either.
        let secret = &key[key.len() - 32..];
        assert!(!text.contains(secret), "a key is in the logs");
    }

    // The database holds hashes only.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(tables.iter().any(|t| t == "agents"), "{tables:?}");
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM \"{table}\" t"
        )))
        .fetch_all(store.pool())
        .await
        .unwrap();
        for row in rows {
            for key in &keys {
                assert!(
                    !row.contains(&key[key.len() - 32..]),
                    "a key is stored in {table}"
                );
            }
        }
    }
}

#[tokio::test]
async fn log_tails_are_redacted_before_they_are_stored() {
    let served = serve_memory().await;
    let caller = &served.caller;
    let agent = register_agent(caller, "edge").await;
    let object = stack_for(caller, std::slice::from_ref(&agent), 1)
        .await
        .remove(0);
    let requested = caller
        .ok(
            Method::POST,
            &format!("/api/v1/deployment-objects/{object}/diagnostics"),
            ADMIN,
            Some(json!({"agent_id": agent.id})),
        )
        .await;
    let id = requested["request_id"].as_str().unwrap();
    caller
        .ok(
            Method::POST,
            &format!("/api/v1/diagnostics/{id}/claim"),
            &agent.key,
            None,
        )
        .await;
    let lines = [
        "connecting with password=hunter2hunter2",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "postgres://app:s3cr3t-pass@db:5432/app",
        "key brokkr_agent_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA seen",
    ];
    caller
        .ok(
            Method::POST,
            &format!("/api/v1/diagnostics/{id}/result"),
            &agent.key,
            Some(
                json!({"collected_at": chrono::Utc::now().to_rfc3339(), "pod_statuses": [],
                        "events": [], "log_tails": {"web-1/app": lines}}),
            ),
        )
        .await;
    let stored = caller
        .ok(
            Method::GET,
            &format!("/api/v1/diagnostics/{id}"),
            ADMIN,
            None,
        )
        .await;
    let tail = stored["result"]["log_tails"]["web-1/app"].to_string();
    for secret in [
        "hunter2hunter2",
        "c2lnbmF0dXJl",
        "s3cr3t-pass",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert!(!tail.contains(secret), "{secret} survived: {tail}");
    }
    assert!(tail.contains("[REDACTED]"), "{tail}");
}

#[tokio::test]
async fn failed_authentication_is_limited_per_key_and_per_address_over_tcp() {
    // The default limits, as a deployment has them.
    let served = serve_store(
        Arc::new(brokkr::store_memory::MemoryStore::new()),
        &brokkr::http::HttpConfig::default(),
        &brokkr::http::ServeOptions::default(),
    )
    .await;
    let caller = &served.caller;
    let agent = register_agent(caller, "edge").await;
    let path = format!("/api/v1/agents/{}/heartbeat", agent.id);
    // A working agent: its key was verified recently.
    let first = caller
        .send(Method::POST, &path, &agent.key, Some(json!({})))
        .await;
    assert_eq!(first.status, StatusCode::NO_CONTENT, "{first:?}");
    let limited_after = |key: &str| {
        let (caller, path, key) = (caller.clone(), path.clone(), key.to_owned());
        async move {
            for i in 0..300 {
                let answer = caller
                    .send(Method::POST, &path, &key, Some(json!({})))
                    .await;
                if answer.status == StatusCode::TOO_MANY_REQUESTS {
                    assert!(answer.retry_after.is_some(), "{answer:?}");
                    assert_eq!(answer.content_type, "application/problem+json");
                    return Some(i);
                }
                assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
            }
            None
        }
    };
    // One wrong key, again and again: refused before any lookup after 10 failures.
    let same = limited_after("brokkr_agent_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(same, Some(10), "the 11th try of one key is slowed down");
    // Many different wrong keys from one address: its 100th failure in a minute (the 10
    // above count too) is answered 429.
    let mut failures = 10;
    let mut limited = None;
    for i in 0..300 {
        let guess = format!("brokkr_agent_{i:0>43}");
        let answer = caller
            .send(Method::POST, &path, &guess, Some(json!({})))
            .await;
        failures += 1;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(failures);
            break;
        }
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    }
    assert_eq!(
        limited,
        Some(100),
        "the address is slowed down at its 100th failure"
    );
    // A working agent's key from the same address still works (clients behind one
    // NAT): it is known in memory, so the blocked address costs no store round trip.
    let good = caller
        .send(Method::POST, &path, &agent.key, Some(json!({})))
        .await;
    assert_eq!(good.status, StatusCode::NO_CONTENT, "{good:?}");
    // An unknown key from it is answered 429 at once, without asking the store: the
    // 429 now comes for a key that never failed before.
    let fresh_guess = caller
        .send(
            Method::POST,
            &path,
            "brokkr_agent_CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC",
            Some(json!({})),
        )
        .await;
    assert_eq!(
        fresh_guess.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{fresh_guess:?}"
    );
    // Another address is not affected: the limit is per address, not global.
    let elsewhere = Caller {
        http: reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .build()
            .unwrap(),
        base: caller.base.clone(),
    };
    let other = elsewhere
        .send(
            Method::POST,
            &path,
            "brokkr_agent_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
            Some(json!({})),
        )
        .await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED, "{other:?}");
}
