//! HTTP layer for Brokkr.
//!
//! This crate will hold the axum `Router` of the broker API (`/api/v1`, auth, problem+json
//! errors, metrics, OpenAPI) that a host application can mount, and the reqwest client an
//! agent uses to talk to the broker. It lands with the HTTP issue.
