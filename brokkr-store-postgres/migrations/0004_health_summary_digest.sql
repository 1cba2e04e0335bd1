-- A digest of each verdict's summary (the first 16 bytes of the SHA-256 of its JSON),
-- so a health upsert decides "unchanged" without reading the summaries back. Rows
-- written before this column existed have none: their next report rewrites them once.
ALTER TABLE deployment_health ADD COLUMN summary_digest bytea;
