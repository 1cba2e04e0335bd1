//! The broker served over real TCP for these tests.

use std::sync::Arc;

use brokkr::core::auth::hash_pak;
use brokkr::core::broker::{Broker, BrokerConfig};
use brokkr::core::clock::SystemClock;
use brokkr::core::store::Store;
use brokkr::http::ratelimit::AuthLimits;
use brokkr::http::{HttpConfig, ServeOptions, router, serve_with};
use brokkr::store_memory::MemoryStore;

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
