-- A digest of each verdict's summary (the first 16 bytes of the SHA-256 of its JSON),
-- so a health upsert decides "unchanged" without reading the summaries back. Rows
-- written before this column existed have none: their next report rewrites them once.
ALTER TABLE deployment_health ADD COLUMN summary_digest bytea;

-- Health counts per agent instead of four fleet-wide rows: every status change used to
-- update the same row of `fleet_health_counts`, so writers of different agents queued
-- for it. An agent's rows are only written under that agent's advisory lock, so they
-- never contend, and they go with the agent (no subtraction on delete). The fleet
-- rollup sums them (it runs in the fleet summary snapshot, not per request).
CREATE TABLE agent_health_counts (
    agent_id uuid   NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    status   text   NOT NULL CHECK (status IN ('healthy', 'unknown', 'degraded', 'failing')),
    count    bigint NOT NULL,
    PRIMARY KEY (agent_id, status)
);
INSERT INTO agent_health_counts (agent_id, status, count)
SELECT agent_id, status, count(*) FROM deployment_health GROUP BY agent_id, status;
DROP TABLE fleet_health_counts;
