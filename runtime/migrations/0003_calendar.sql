-- The calendar sink's memory: which CalDAV events it wrote for which stage entry, and
-- the completions it has seen (a completion may arrive before its activity's event).

-- One row per event resource (a person's event and, when booked, the room's copy).
CREATE TABLE IF NOT EXISTS calendar_events (
    href            text PRIMARY KEY,
    action_id       text NOT NULL,
    item_key        text NOT NULL,
    stage_entry_id  text NOT NULL,
    stage_id        text NOT NULL,
    calendar        text NOT NULL CHECK (calendar IN ('user', 'room')),
    principal       text NOT NULL,
    complete_on_stage_exit boolean NOT NULL,
    completed_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS calendar_events_open_by_entry
    ON calendar_events (item_key, stage_entry_id)
    WHERE completed_at IS NULL AND complete_on_stage_exit;

-- A stage entry that was left: its activities are (to be) completed at completed_at.
CREATE TABLE IF NOT EXISTS calendar_completions (
    action_id       text PRIMARY KEY,
    item_key        text NOT NULL,
    stage_entry_id  text NOT NULL,
    stage_id        text NOT NULL,
    completed_at    timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS calendar_completions_by_entry
    ON calendar_completions (item_key, stage_entry_id);
