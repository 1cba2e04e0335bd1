-- The fleet events outbox, shared by every broker replica. `seq` is the SSE event id;
-- writers hold a transaction-level advisory lock while inserting, so sequence numbers
-- become visible in commit order and a reader polling `seq > n` never skips one.
CREATE TABLE fleet_events (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    body       jsonb NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX fleet_events_created_at ON fleet_events (created_at);

-- The staleness last announced per agent: a replica's watcher writes an event only when
-- it changes this column, so one change gives one event however many replicas watch.
ALTER TABLE agent_liveness ADD COLUMN announced_staleness text;

-- Who delivers event `event_seq` to a webhook: the replica whose insert succeeded.
CREATE TABLE webhook_event_claims (
    webhook_id uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_seq  bigint NOT NULL,
    claimed_at timestamptz NOT NULL,
    PRIMARY KEY (webhook_id, event_seq)
);
CREATE INDEX webhook_event_claims_claimed_at ON webhook_event_claims (claimed_at);
