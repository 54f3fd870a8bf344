-- Job record details: comments, locale, submitter email, total size; names unique per tenant.
ALTER TABLE jobs ADD COLUMN comments TEXT;
ALTER TABLE jobs ADD COLUMN locale TEXT;
ALTER TABLE jobs ADD COLUMN submitter_email TEXT;
ALTER TABLE jobs ADD COLUMN total_size INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX jobs_name_per_tenant ON jobs (tenant, name) WHERE name IS NOT NULL;
CREATE INDEX jobs_by_completed ON jobs (tenant, completed_at);
