-- A copied deal keeps every field its source item carried: the dates, the company's
-- title and the contacts' details (name, last name, email, phone), not only their ids.
ALTER TABLE deals ADD COLUMN IF NOT EXISTS begin_date date;
ALTER TABLE deals ADD COLUMN IF NOT EXISTS close_date date;
ALTER TABLE deals ADD COLUMN IF NOT EXISTS company_title text;
ALTER TABLE deals ADD COLUMN IF NOT EXISTS contacts jsonb NOT NULL DEFAULT '[]';
