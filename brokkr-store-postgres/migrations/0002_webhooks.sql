-- Webhook subscriptions. The secret is kept as given: it signs deliveries (HMAC), so
-- it cannot be stored as a hash.
CREATE TABLE webhooks (
    id         uuid PRIMARY KEY,
    url        text NOT NULL,
    secret     text NOT NULL,
    events     text[] NOT NULL,
    created_at timestamptz NOT NULL
);
