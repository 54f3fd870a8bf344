-- Scheduled jobs: a one-off start time per job, and recurring schedules that create jobs.
ALTER TABLE jobs ADD COLUMN run_at INTEGER;
ALTER TABLE jobs ADD COLUMN schedule_id TEXT;

CREATE TABLE schedules (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    cron        TEXT NOT NULL,
    template    TEXT NOT NULL,                -- the job submission body, JSON
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    next_run    INTEGER NOT NULL,
    last_run    INTEGER,
    last_job_id TEXT,
    UNIQUE (tenant, name)
);
CREATE INDEX schedules_by_next_run ON schedules (next_run);
