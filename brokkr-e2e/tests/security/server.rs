//! The broker served over real TCP for these tests.

use std::sync::Arc;

use brokkr::core::auth::hash_pak;
use brokkr::core::broker::{Broker, BrokerConfig};
use brokkr::core::clock::SystemClock;
use brokkr::core::store::Store;
use brokkr::http::ratelimit::AuthLimits;
use brokkr::http::{HttpConfig, ServeOptions, router, serve_with};
use brokkr::store_memory::MemoryStore;

use reqwest::{Method, StatusCode};

use crate::support::{ADMIN, Caller};

/// A served broker: its address and a caller.
pub struct Served {
    pub caller: Caller,
    pub addr: std::net::SocketAddr,
}

/// Limits that let tests try many bad keys on purpose.
pub fn lenient() -> HttpConfig {
    HttpConfig {
        auth_limits: AuthLimits {
            per_key: 1_000_000,
            per_address: 1_000_000,
            ..AuthLimits::default()
        },
        ..HttpConfig::default()
    }
}

/// The in-memory broker with [`lenient`] limits.
pub async fn serve_memory() -> Served {
    serve_store(
        Arc::new(MemoryStore::new()),
        &lenient(),
        &ServeOptions::default(),
    )
    .await
}

/// `store` behind the router with `config`, served with `options`.
pub async fn serve_store(
    store: Arc<dyn Store>,
    config: &HttpConfig,
    options: &ServeOptions,
) -> Served {
    let broker = Broker::new(
        store,
        Arc::new(SystemClock),
        hash_pak(ADMIN),
        BrokerConfig::default(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(broker, config);
    let options = options.clone();
    tokio::spawn(async move { serve_with(listener, app, &options, std::future::pending()).await });
    Served {
        caller: Caller::new(&format!("http://{addr}")),
        addr,
    }
}

/// Sends `body` (bytes, labelled JSON) to `path` with `key`: status, content type, text.
/// An event stream is not read past its headers (it never ends).
pub async fn exchange(
    caller: &Caller,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Vec<u8>>,
) -> Result<(StatusCode, String, String), reqwest::Error> {
    let mut request = caller
        .http
        .request(method, format!("{}{path}", caller.base));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request.send().await?;
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if content_type.starts_with("text/event-stream") {
        return Ok((status, content_type, String::new()));
    }
    let text = response.text().await.unwrap_or_default();
    Ok((status, content_type, text))
}
