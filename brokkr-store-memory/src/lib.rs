//! In-process `Store` for Brokkr.
//!
//! This crate will hold a complete implementation of the `brokkr-core` store traits over
//! in-process maps, with the same semantics as the Postgres store (including the
//! exactly-once diagnostic claim). It is the default store of the examples and tests.
//! The store traits land with the store issue; until then the crate is intentionally empty.
