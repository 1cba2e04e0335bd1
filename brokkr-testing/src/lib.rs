//! Test support for crates built on `brokkr-core` (not published): the store
//! conformance suite every `Store` implementation runs ([`store_conformance_tests!`]),
//! and fixtures for tests of code built on the broker.
#![forbid(unsafe_code)]

pub mod conformance;
mod fixtures;

pub use fixtures::{Seeded, one_agent_one_object};
