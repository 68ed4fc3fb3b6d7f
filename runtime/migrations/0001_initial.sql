-- Initial schema: the sinks' tables, consumer offsets stored with results, durable timers.

CREATE TABLE IF NOT EXISTS leads (
    id              bigserial PRIMARY KEY,
    action_id       text NOT NULL UNIQUE,
    rule_id         text NOT NULL,
    lead_id         text NOT NULL,
    source_item_key text NOT NULL,
    title           text NOT NULL,
    responsible_id  text NOT NULL,
    company_id      text,
    contact_ids     text[] NOT NULL DEFAULT '{}',
    is_repeat       boolean NOT NULL DEFAULT true,
    status          text NOT NULL DEFAULT 'new',
    event_occurred_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS deals (
    id              bigserial PRIMARY KEY,
    action_id       text NOT NULL UNIQUE,
    rule_id         text NOT NULL,
    deal_id         text NOT NULL,
    source_item_key text NOT NULL,
    title           text NOT NULL,
    pipeline_id     text NOT NULL,
    stage_id        text NOT NULL,
    responsible_id  text NOT NULL,
    amount          numeric,
    currency        text,
    company_id      text,
    contact_ids     text[] NOT NULL DEFAULT '{}',
    fields          jsonb NOT NULL DEFAULT '{}',
    copy_depth      integer NOT NULL,
    event_occurred_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS activities (
    id              bigserial PRIMARY KEY,
    action_id       text NOT NULL UNIQUE,
    rule_id         text NOT NULL,
    activity_id     text NOT NULL,
    item_key        text NOT NULL,
    stage_id        text NOT NULL,
    stage_entry_id  text NOT NULL,
    subject         text NOT NULL,
    description     text NOT NULL DEFAULT '',
    deadline        timestamptz NOT NULL,
    duration_minutes integer NOT NULL DEFAULT 0,
    responsible_id  text NOT NULL,
    color           text,
    add_to_calendar boolean NOT NULL DEFAULT false,
    client_ids      text[] NOT NULL DEFAULT '{}',
    invitee_ids     text[] NOT NULL DEFAULT '{}',
    address         text,
    location_id     text,
    link            text,
    files           text[] NOT NULL DEFAULT '{}',
    complete_on_stage_exit boolean NOT NULL DEFAULT false,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'completed')),
    completed_at    timestamptz,
    event_occurred_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS activities_open_by_entry
    ON activities (item_key, stage_entry_id) WHERE status = 'open';

-- Completions that arrived before their activity: applied when the activity lands.
CREATE TABLE IF NOT EXISTS activity_completions (
    action_id       text PRIMARY KEY,
    item_key        text NOT NULL,
    stage_id        text NOT NULL,
    stage_entry_id  text NOT NULL,
    completed_at    timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS activity_completions_by_entry
    ON activity_completions (item_key, stage_entry_id);

CREATE TABLE IF NOT EXISTS executions (
    id              bigserial PRIMARY KEY,
    execution_key   text NOT NULL UNIQUE,
    action_id       text,
    rule_id         text NOT NULL,
    rule_version    text,
    item_key        text NOT NULL,
    event_id        text NOT NULL,
    status          text NOT NULL
        CHECK (status IN ('fired', 'scheduled', 'cancelled', 'skipped', 'failed', 'stale')),
    due_at          timestamptz,
    reason          text,
    recorded_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_by_item ON executions (item_key, recorded_at);

-- Consumer offsets stored in the same transaction as the results they cover.
CREATE TABLE IF NOT EXISTS consumer_offsets (
    consumer_group  text NOT NULL,
    topic           text NOT NULL,
    partition       integer NOT NULL,
    next_offset     bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
