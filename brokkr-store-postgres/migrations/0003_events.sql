-- The fleet events outbox, shared by every broker replica. `seq` is the SSE event id;
-- writers hold a transaction-level advisory lock while inserting, so sequence numbers
-- become visible in commit order and a reader polling `seq > n` never skips one.
CREATE TABLE fleet_events (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    body       jsonb NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX fleet_events_created_at ON fleet_events (created_at);

-- The staleness last announced per agent, and as of when: a replica's watcher writes an
-- event only when it changes the state, so one change gives one event however many
-- replicas watch, and an observation older than the recorded one is not applied.
ALTER TABLE agent_liveness ADD COLUMN announced_staleness text;
ALTER TABLE agent_liveness ADD COLUMN announced_at timestamptz;

-- Who delivers event `event_seq` to a webhook: the replica whose insert succeeded.
CREATE TABLE webhook_event_claims (
    webhook_id uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_seq  bigint NOT NULL REFERENCES fleet_events (seq) ON DELETE CASCADE,
    claimed_at timestamptz NOT NULL,
    PRIMARY KEY (webhook_id, event_seq)
);
CREATE INDEX webhook_event_claims_event_seq ON webhook_event_claims (event_seq);
