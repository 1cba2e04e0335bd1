//! The classifier's hot path: a healthy pod costs no heap allocation.
#![allow(clippy::unwrap_used)]

use brokkr_core::health::synthetic::healthy_deployment;
use brokkr_core::health::{Health, HealthPolicy, classify};
use chrono::{TimeZone, Utc};

#[test]
fn healthy_pods_cost_no_allocations() {
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let policy = HealthPolicy::default();
    let small = healthy_deployment("shop", "web", 10, now);
    let large = healthy_deployment("shop", "web", 1_000, now);
    let mut verdicts = Vec::with_capacity(2);
    let mut allocations = |observations| {
        allocation_counter::measure(|| verdicts.push(classify(observations, now, &policy)))
            .count_total
    };
    let for_small = allocations(&small);
    let for_large = allocations(&large);
    assert_eq!(
        for_small, for_large,
        "990 more healthy pods must not allocate ({for_small} vs {for_large} allocations)"
    );
    assert!(verdicts.iter().all(|a| a.health == Health::Healthy));
    assert_eq!(verdicts[1].pods_total, 1_000);
    assert_eq!(verdicts[1].pods_ready, 1_000);
}
