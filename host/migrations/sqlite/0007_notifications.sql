-- Notifications when a job ends: the per-user inbox, webhooks per tenant, and
-- the webhook and email deliveries still to send (retried with backoff).

-- The completedAt of the ending whose notifications exist: a restarted job
-- that ends again is notified again. Jobs that ended before are not.
ALTER TABLE jobs ADD COLUMN notified_at INTEGER;
UPDATE jobs SET notified_at = completed_at WHERE state IN ('Complete', 'Failed', 'Cancelled');
CREATE INDEX jobs_to_notify ON jobs (completed_at)
    WHERE state IN ('Complete', 'Failed', 'Cancelled') AND notified_at IS NOT completed_at;

CREATE TABLE inbox (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    user_name  TEXT NOT NULL,               -- the token name the job was created by
    job_id     TEXT NOT NULL,
    job_state  TEXT NOT NULL,
    locale     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    read_at    INTEGER
);
CREATE INDEX inbox_by_user ON inbox (tenant, user_name, created_at);

CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    url        TEXT NOT NULL,
    events     TEXT NOT NULL,               -- JSON array of event names
    secret     TEXT NOT NULL,               -- the HMAC-SHA256 key (needed to sign)
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX webhooks_by_tenant ON webhooks (tenant, created_at);

CREATE TABLE deliveries (
    id           TEXT PRIMARY KEY,          -- X-Wasmq-Delivery: the same on every attempt
    kind         TEXT NOT NULL,             -- webhook | email
    tenant       TEXT NOT NULL,
    webhook_id   TEXT,                      -- for kind webhook
    recipient    TEXT NOT NULL,             -- the URL or the email address
    job_id       TEXT NOT NULL,
    event        TEXT NOT NULL,
    subject      TEXT NOT NULL,
    body         TEXT NOT NULL,             -- webhook: the JSON payload; email: the text
    state        TEXT NOT NULL,             -- pending | delivered | failed
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    last_status  INTEGER,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER
);
CREATE INDEX deliveries_due ON deliveries (next_attempt) WHERE state = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, created_at);
