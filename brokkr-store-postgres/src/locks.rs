//! Every advisory lock the store takes, in one place: two writers agree on a lock only
//! if they compute the same key, so the keys are never spelled out anywhere else.
//!
//! | lock | key | held by |
//! |---|---|---|
//! | one agent | `hashtextextended(<agent id>::text, 7)` | an agent's read-decide-write transactions: deliveries, health rows and their counts, key changes |
//! | the outbox | `hashtextextended('brokkr.fleet_events', 11)` | writers of fleet events, until commit, so sequence numbers commit in order |

/// The SQL key of the advisory lock on the agent whose id is the SQL expression `$id`
/// (a string literal, e.g. `"$1"` or a column name). A macro, so statements can embed
/// it with `concat!`.
macro_rules! agent_lock_key {
    ($id:literal) => {
        concat!("hashtextextended(", $id, "::text, 7)")
    };
}

/// Takes the lock of the agent bound as `$1` until the transaction ends: its batches run
/// one at a time across every broker process, so read-decide-write needs no retry loop.
pub(crate) const AGENT_LOCK: &str =
    concat!("SELECT pg_advisory_xact_lock(", agent_lock_key!("$1"), ")");

/// Serializes outbox writers until their commit, so sequence numbers are committed in
/// order. Only writes that produce events take it (status changes are rare next to
/// unchanged reports).
pub(crate) const OUTBOX_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('brokkr.fleet_events', 11))";
