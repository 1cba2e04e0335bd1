//! Reliability under faults: the database goes away, the broker is killed, two brokers
//! share one database. Each test runs real processes or servers over real TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod outage;
mod restart;
mod support;
mod traffic;
mod two_brokers;
