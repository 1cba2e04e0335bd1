//! Kubernetes adapter for Brokkr.
//!
//! This crate will implement `ClusterProbe` over a `kube::Client`: it finds the resources
//! of a deployment object, converts k8s-openapi objects into the observation types of
//! `brokkr_core::health` (which already deserialize from raw Kubernetes JSON), reads
//! events and log tails, and measures the cluster snapshot. It also hosts the
//! server-side-apply `Applier`. It lands with the kube adapter issue.
