-- Brokkr broker schema. Timestamps are timestamptz (UTC on the wire); enums are text
-- checked against their values so a bad write fails loudly.

CREATE TABLE agents (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    cluster_name text NOT NULL,
    labels       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL
);

-- Keys are looked up by their SHA-256 (primary key index), never scanned.
CREATE TABLE agent_keys (
    pak_hash bytea PRIMARY KEY CHECK (length(pak_hash) = 32),
    agent_id uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE
);
CREATE INDEX agent_keys_agent ON agent_keys (agent_id);

-- Narrow, frequently updated liveness rows: fillfactor leaves room for HOT updates and
-- no index covers the timestamps, so a heartbeat never touches an index.
CREATE TABLE agent_liveness (
    agent_id          uuid PRIMARY KEY REFERENCES agents (id) ON DELETE CASCADE,
    last_heartbeat_at timestamptz,
    health_checked_at timestamptz,
    snapshot          jsonb
) WITH (fillfactor = 75);

CREATE TABLE stacks (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    labels        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL,
    last_sequence bigint NOT NULL DEFAULT 0
);

CREATE TABLE deployment_objects (
    id           uuid PRIMARY KEY,
    stack_id     uuid NOT NULL REFERENCES stacks (id) ON DELETE CASCADE,
    sequence_id  bigint NOT NULL,
    yaml_content text NOT NULL,
    is_deletion  boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL,
    UNIQUE (stack_id, sequence_id)
);

CREATE TABLE targets (
    agent_id   uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    stack_id   uuid NOT NULL REFERENCES stacks (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (agent_id, stack_id)
);
CREATE INDEX targets_stack ON targets (stack_id);

CREATE TABLE deliveries (
    agent_id                   uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    deployment_object_id       uuid NOT NULL REFERENCES deployment_objects (id) ON DELETE CASCADE,
    state                      text NOT NULL CHECK (state IN ('pending', 'acknowledged', 'applied', 'failed')),
    acknowledged_at            timestamptz,
    applied_at                 timestamptz,
    retry_count                bigint NOT NULL DEFAULT 0,
    last_attempt_at            timestamptz,
    failure_reason             text,
    failure_message            text,
    reconciliation_duration_ms bigint,
    PRIMARY KEY (agent_id, deployment_object_id)
);
CREATE INDEX deliveries_object ON deliveries (deployment_object_id);
CREATE INDEX deliveries_pending ON deliveries (agent_id) WHERE state = 'pending';

CREATE TABLE work_orders (
    id           uuid PRIMARY KEY,
    agent_id     uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    kind         text NOT NULL,
    payload      jsonb NOT NULL,
    status       text NOT NULL CHECK (status IN ('pending', 'claimed', 'completed', 'failed')),
    created_at   timestamptz NOT NULL,
    claimed_at   timestamptz,
    completed_at timestamptz
);
CREATE INDEX work_orders_open ON work_orders (agent_id, created_at) WHERE status IN ('pending', 'claimed');

-- The latest verdict per agent x deployment object.
CREATE TABLE deployment_health (
    agent_id             uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    deployment_object_id uuid NOT NULL REFERENCES deployment_objects (id) ON DELETE CASCADE,
    status               text NOT NULL CHECK (status IN ('healthy', 'unknown', 'degraded', 'failing')),
    summary              jsonb NOT NULL,
    checked_at           timestamptz NOT NULL,
    reported_at          timestamptz NOT NULL,
    UNIQUE (agent_id, deployment_object_id)
);
CREATE INDEX deployment_health_object ON deployment_health (deployment_object_id);

-- Health rows by status, maintained in the same transaction as every health write, so
-- the fleet summary never scans deployment_health.
CREATE TABLE fleet_health_counts (
    status text PRIMARY KEY CHECK (status IN ('healthy', 'unknown', 'degraded', 'failing')),
    count  bigint NOT NULL DEFAULT 0
);
INSERT INTO fleet_health_counts (status) VALUES ('healthy'), ('unknown'), ('degraded'), ('failing');

CREATE TABLE diagnostic_requests (
    id                   uuid PRIMARY KEY,
    deployment_object_id uuid NOT NULL REFERENCES deployment_objects (id) ON DELETE CASCADE,
    agent_id             uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    requested_by         text NOT NULL,
    status               text NOT NULL CHECK (status IN ('pending', 'claimed', 'completed', 'failed', 'expired')),
    created_at           timestamptz NOT NULL,
    claim_deadline       timestamptz NOT NULL,
    claimed_at           timestamptz,
    claim_token          text,
    completed_at         timestamptz,
    expires_at           timestamptz NOT NULL,
    failure_reason       text
);
-- What agents poll: their pending requests.
CREATE INDEX diagnostic_requests_pending ON diagnostic_requests (agent_id, created_at) WHERE status = 'pending';
CREATE INDEX diagnostic_requests_expiry ON diagnostic_requests (expires_at);

CREATE TABLE diagnostic_results (
    request_id uuid PRIMARY KEY REFERENCES diagnostic_requests (id) ON DELETE CASCADE,
    outcome    jsonb NOT NULL,
    stored_at  timestamptz NOT NULL
);
