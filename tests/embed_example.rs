//! The `embed` example as a host engineer would run it: the broker's API nested under
//! `/brokkr` answers an agent, the host's own routes and fallback stay the host's, and
//! one scrape of the host's `/metrics` carries the host's metrics and the broker's, with
//! the broker's route labels unchanged by the prefix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{Running, example, free_port};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const ADMIN: &str = "brokkr_admin_Q7x2Lp9Vd4Mz8Rk1Tw6Yb3Nf5Hs0Jc2Gu7Ea9Kq1Po4";

/// One HTTP/1.1 exchange: status and body.
fn call(
    port: u16,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = body.unwrap_or("");
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, rest) = answer.split_once("\r\n\r\n").unwrap();
    // Chunked answers (streamed bodies): join the chunks.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            out.push_str(&tail[..size]);
            rest = &tail[size + 2..];
        }
        out
    } else {
        rest.to_owned()
    };
    (status, body)
}

fn started(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the embed example did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_host_and_the_broker_share_one_server_and_one_scrape() {
    let binary = example("embed");
    let port = free_port();
    let _host = Running(
        Command::new(&binary)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("BROKKR_ADMIN_PAK", ADMIN)
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    started(port);

    // The host's own routes and fallback.
    assert_eq!(
        call(port, "GET", "/orders", None, None),
        (200, "[]\n".to_owned())
    );
    let (status, body) = call(port, "GET", "/nowhere", None, None);
    assert_eq!(
        (status, body.as_str()),
        (404, "the host knows no such page\n")
    );

    // An agent registers and reports through the nested API.
    let (status, body) = call(
        port,
        "POST",
        "/brokkr/api/v1/agents",
        Some(ADMIN),
        Some(r#"{"name":"edge-1","cluster_name":"c1"}"#),
    );
    assert_eq!(status, 201, "{body}");
    let agent: Value = serde_json::from_str(&body).unwrap();
    let (id, key) = (
        agent["id"].as_str().unwrap(),
        agent["pak"].as_str().unwrap(),
    );
    let (status, body) = call(
        port,
        "POST",
        &format!("/brokkr/api/v1/agents/{id}/heartbeat"),
        Some(key),
        Some(r#"{"node_count":3}"#),
    );
    assert_eq!(status, 204, "{body}");
    // The broker's probes and documentation under the prefix; the document says where.
    assert_eq!(call(port, "GET", "/brokkr/readyz", None, None).0, 200);
    let (status, body) = call(port, "GET", "/brokkr/openapi.json", None, None);
    assert_eq!(status, 200);
    let document: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(document["servers"][0]["url"], "/brokkr");
    // An unknown route under the prefix is the host's to answer.
    assert_eq!(
        call(port, "GET", "/brokkr/api/v1/nowhere", None, None),
        (404, "the host knows no such page\n".to_owned())
    );

    // One scrape: the host's metrics (registered before and after the broker's), the
    // broker's request counts with their own route templates, fresh fleet gauges.
    let (status, metrics) = call(port, "GET", "/metrics", None, None);
    assert_eq!(status, 200);
    assert!(metrics.contains("host_orders_total 1"), "{metrics}");
    assert!(metrics.contains("host_clusters 3"), "{metrics}");
    assert!(
        metrics.contains(r#"route="/api/v1/agents/{id}/heartbeat""#),
        "broker route labels carry no host prefix: {metrics}"
    );
    assert!(
        metrics.contains(r#"brokkr_agents{state="fresh"} 1"#),
        "fleet gauges refreshed on the host's scrape: {metrics}"
    );
}
