//! Security over real HTTP: who may call what, hostile input, secrets in logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod authz;
mod hostile;
mod integrity;
mod secrets;
mod server;
#[path = "../reliability/support.rs"]
#[allow(dead_code)]
mod support;
