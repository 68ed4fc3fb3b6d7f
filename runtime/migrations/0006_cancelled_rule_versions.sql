-- Versions of edited rules whose pending timers were cancelled (`rules apply --pending
-- cancel`): any schedule of such a version, arriving before or after the cancel, is
-- cancelled; schedules of the rule's other versions are not.
CREATE TABLE IF NOT EXISTS cancelled_rule_versions (
    rule_id         text NOT NULL,
    rule_version    text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, rule_version)
);
