-- wasmq schema, PostgreSQL: the same tables as the SQLite migrations up to
-- 0008_leases. Times are milliseconds since the Unix epoch; flags are 0/1
-- integers; text compares byte by byte (COLLATE "C"), as in SQLite.

CREATE TABLE jobs (
    id               TEXT COLLATE "C" PRIMARY KEY,
    tenant           TEXT COLLATE "C" NOT NULL,
    job_type         TEXT COLLATE "C" NOT NULL,
    plugin_name      TEXT COLLATE "C" NOT NULL,
    plugin_version   TEXT NOT NULL,
    plugin_digest    TEXT NOT NULL,
    state            TEXT NOT NULL,
    path             TEXT COLLATE "C" NOT NULL,
    excluded_paths   TEXT NOT NULL,
    params           TEXT NOT NULL,
    priority         BIGINT NOT NULL DEFAULT 0,
    require_confirmation BIGINT NOT NULL DEFAULT 0,
    name             TEXT COLLATE "C",
    description      TEXT,
    created_by       TEXT NOT NULL,
    server_name      TEXT,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    completed_at     BIGINT,
    updated_at       BIGINT NOT NULL,
    total            BIGINT NOT NULL DEFAULT 0,
    succeeded        BIGINT NOT NULL DEFAULT 0,
    failed           BIGINT NOT NULL DEFAULT 0,
    progress_message TEXT,
    progress_at      BIGINT,
    fuel_used        BIGINT NOT NULL DEFAULT 0,
    error            TEXT,
    checkpoint       BYTEA,
    comments         TEXT,
    locale           TEXT,
    submitter_email  TEXT,
    total_size       BIGINT NOT NULL DEFAULT 0,
    run_at           BIGINT,
    schedule_id      TEXT,
    weight           BIGINT NOT NULL DEFAULT 1,
    cpu_ns           BIGINT NOT NULL DEFAULT 0,
    preempted_by     TEXT,
    notified_at      BIGINT,
    owner            TEXT,
    lease_until      BIGINT
);
CREATE INDEX jobs_by_state ON jobs (state, priority DESC, created_at);
CREATE INDEX jobs_by_created ON jobs (created_at);
CREATE UNIQUE INDEX jobs_name_per_tenant ON jobs (tenant, name) WHERE name IS NOT NULL;
CREATE INDEX jobs_by_completed ON jobs (tenant, completed_at);
CREATE INDEX jobs_to_notify ON jobs (completed_at)
    WHERE state IN ('Complete', 'Failed', 'Cancelled') AND notified_at IS DISTINCT FROM completed_at;

CREATE TABLE tasks (
    job_id      TEXT COLLATE "C" NOT NULL,
    seq         BIGINT NOT NULL,
    path        TEXT COLLATE "C" NOT NULL,
    input       BYTEA NOT NULL,
    state       TEXT NOT NULL,
    code        BIGINT,
    message     TEXT,
    etag        TEXT,
    attempts    BIGINT NOT NULL DEFAULT 0,
    not_before  BIGINT NOT NULL DEFAULT 0,
    fuel_used   BIGINT NOT NULL DEFAULT 0,
    started_at  BIGINT,
    finished_at BIGINT,
    cpu_ns      BIGINT NOT NULL DEFAULT 0,
    owner       TEXT,
    lease_until BIGINT,
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX tasks_by_state ON tasks (job_id, state, seq);
CREATE INDEX tasks_running ON tasks (lease_until) WHERE state = 'running';

CREATE TABLE job_logs (
    id      BIGSERIAL PRIMARY KEY,
    job_id  TEXT COLLATE "C" NOT NULL,
    at      BIGINT NOT NULL,
    level   TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX job_logs_by_job ON job_logs (job_id, id);

CREATE TABLE assets (
    tenant       TEXT COLLATE "C" NOT NULL,
    path         TEXT COLLATE "C" NOT NULL,
    size         BIGINT NOT NULL,
    etag         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    modified_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, path)
);

CREATE TABLE metadata (
    tenant TEXT COLLATE "C" NOT NULL,
    path   TEXT COLLATE "C" NOT NULL,
    name   TEXT COLLATE "C" NOT NULL,
    idx    BIGINT NOT NULL,
    kind   TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (tenant, path, name, idx)
);

CREATE TABLE refs (
    tenant TEXT COLLATE "C" NOT NULL,
    source TEXT COLLATE "C" NOT NULL,
    target TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, source, target)
);
CREATE INDEX refs_by_target ON refs (tenant, target, source);

CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    tenant     TEXT COLLATE "C" NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE schedules (
    id          TEXT PRIMARY KEY,
    tenant      TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    cron        TEXT NOT NULL,
    template    TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    next_run    BIGINT NOT NULL,
    last_run    BIGINT,
    last_job_id TEXT,
    UNIQUE (tenant, name)
);
CREATE INDEX schedules_by_next_run ON schedules (next_run);

CREATE TABLE tenants (
    tenant    TEXT COLLATE "C" PRIMARY KEY,
    weight    BIGINT NOT NULL DEFAULT 1,
    cpu_ns    BIGINT NOT NULL DEFAULT 0,
    fuel_used BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE renditions (
    tenant       TEXT COLLATE "C" NOT NULL,
    path         TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    size         BIGINT NOT NULL,
    etag         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    modified_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, path, name)
);

CREATE TABLE published (
    tenant       TEXT COLLATE "C" NOT NULL,
    path         TEXT COLLATE "C" NOT NULL,
    etag         TEXT NOT NULL,
    size         BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    renditions   TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    published_by TEXT NOT NULL,
    PRIMARY KEY (tenant, path)
);

CREATE TABLE inbox (
    id         TEXT PRIMARY KEY,
    tenant     TEXT COLLATE "C" NOT NULL,
    user_name  TEXT COLLATE "C" NOT NULL,
    job_id     TEXT NOT NULL,
    job_state  TEXT NOT NULL,
    locale     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    read_at    BIGINT
);
CREATE INDEX inbox_by_user ON inbox (tenant, user_name, created_at);

CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    tenant     TEXT COLLATE "C" NOT NULL,
    url        TEXT NOT NULL,
    events     TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhooks_by_tenant ON webhooks (tenant, created_at);

CREATE TABLE deliveries (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    tenant       TEXT COLLATE "C" NOT NULL,
    webhook_id   TEXT,
    recipient    TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    event        TEXT NOT NULL,
    subject      TEXT NOT NULL,
    body         TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_attempt BIGINT NOT NULL,
    last_status  BIGINT,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX deliveries_due ON deliveries (next_attempt) WHERE state = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, created_at);
