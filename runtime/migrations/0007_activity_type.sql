-- What an activity is, as Bitrix plans it: call, meeting, task or email.
ALTER TABLE activities ADD COLUMN IF NOT EXISTS activity_type text NOT NULL DEFAULT 'task'
    CHECK (activity_type IN ('call', 'meeting', 'task', 'email'));
