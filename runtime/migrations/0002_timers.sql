-- Durable timers of the scheduler, and the tombstones that let a cancel beat its schedule.

-- One row per delayed action; the timer id is the action id, so a replayed schedule
-- command inserts nothing. Rows stay after firing or cancelling (the audit trail that
-- `timers list` shows); only pending rows are in the due-time index.
CREATE TABLE IF NOT EXISTS timers (
    timer_id        text PRIMARY KEY,
    item_key        text NOT NULL,
    -- NULL when the rule opted out of cancellation on stage exit.
    stage_entry_id  text,
    rule_id         text NOT NULL,
    rule_version    text NOT NULL,
    event_id        text NOT NULL,
    -- When the schedule was issued (the triggering event's time): compared with a
    -- rule-wide cancel's issued_at.
    issued_at       timestamptz NOT NULL,
    due_at          timestamptz NOT NULL,
    -- The Avro single-object encoded Action, produced as-is when the timer fires.
    action          bytea NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'fired', 'cancelled')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    fired_at        timestamptz,
    cancelled_at    timestamptz,
    cancel_reason   text
);

-- The fire loop's only access path: pending timers in due order. Partial, so fired and
-- cancelled history does not slow it down or grow it.
CREATE INDEX IF NOT EXISTS timers_pending_by_due ON timers (due_at) WHERE status = 'pending';
-- Cancels look up pending timers by stage entry and by rule.
CREATE INDEX IF NOT EXISTS timers_pending_by_entry
    ON timers (item_key, stage_entry_id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS timers_pending_by_rule
    ON timers (rule_id, issued_at) WHERE status = 'pending';

-- Stage entries that were left: any schedule for one of them, arriving before or after
-- the cancel, is cancelled (a stage entry id is never re-entered; re-entry is a new id).
CREATE TABLE IF NOT EXISTS cancelled_stage_entries (
    item_key        text NOT NULL,
    stage_entry_id  text NOT NULL,
    issued_at       timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (item_key, stage_entry_id)
);

-- Rules deleted or disabled, with the latest cancel's issued_at. A schedule of the rule
-- issued strictly BEFORE that moment is cancelled, whenever it arrives; one issued at
-- or after it (the rule was re-enabled and fired again) stays pending.
CREATE TABLE IF NOT EXISTS cancelled_rules (
    rule_id         text PRIMARY KEY,
    issued_at       timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
