//! Keeps the broker's fleet summary snapshot fresh while someone reads it.
//!
//! The summary (route, `/metrics`, `/metrics.json`) is served from a snapshot at most
//! `fleet_snapshot_max_age` old. Without help, the first reader after it expires would
//! wait for the pass over every agent; instead, once summaries are being read, a task
//! recomputes the snapshot a little before it expires, so readers are answered from
//! memory. The task stops after a minute without readers (an idle broker does no work
//! for a dashboard nobody looks at) and the next reader starts it again.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use brokkr_core::broker::Broker;
use brokkr_core::store::Store;

/// Without a reader for this long, the refresher stops.
const IDLE_AFTER: Duration = Duration::from_mins(1);

/// The refresher of one router's broker.
#[derive(Debug)]
pub struct FleetSnapshotRefresher {
    running: AtomicBool,
    last_read: Mutex<Instant>,
}

impl Default for FleetSnapshotRefresher {
    fn default() -> Self {
        Self {
            running: AtomicBool::new(false),
            last_read: Mutex::new(Instant::now()),
        }
    }
}

impl FleetSnapshotRefresher {
    /// Notes a reader of the summary and starts the refresher unless it runs (needs a
    /// Tokio runtime).
    pub fn reading(self: &std::sync::Arc<Self>, broker: &Broker<dyn Store>) {
        *self.last_read() = Instant::now();
        let Ok(max_age) = broker.config().fleet_snapshot_max_age.to_std() else {
            return;
        };
        // Refresh at four fifths of the age, so the computation (well under a second
        // even at 100k agents) ends before the snapshot expires.
        let every = max_age * 4 / 5;
        if every.is_zero() || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        // Made before the task: if the task is dropped unpolled (its runtime shutting
        // down), dropping the guard still lets the next reader start a new one.
        let running = Running(self.clone());
        let broker = broker.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if running.0.last_read().elapsed() > IDLE_AFTER {
                    break;
                }
                if let Err(error) = broker.refresh_fleet_summary().await {
                    tracing::warn!(%error, "refreshing the fleet summary failed");
                }
            }
        });
    }

    fn last_read(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.last_read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Marks the refresher stopped when its task ends or is dropped.
struct Running(std::sync::Arc<FleetSnapshotRefresher>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}
