-- Items created by automation are announced on crm.stage-changes through this outbox:
-- written in the sink's transaction, relayed to Kafka after commit.
CREATE TABLE IF NOT EXISTS outbox (
    id              bigserial PRIMARY KEY,
    action_id       text NOT NULL UNIQUE,
    topic           text NOT NULL,
    key             bytea NOT NULL,
    value           bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    relayed_at      timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id) WHERE relayed_at IS NULL;
