//! PostgreSQL `Store` for Brokkr.
//!
//! This crate will implement the `brokkr-core` store traits over an sqlx `PgPool` with
//! SQL built by sea-query, embedded migrations, batch writes with `UNNEST`, and a claim
//! that is a single conditional `UPDATE ... RETURNING` so several broker replicas can
//! share one database. It lands with the store issue; until then it is intentionally empty.
