-- wasmq schema, SQLite. Times are milliseconds since the Unix epoch.

CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    tenant           TEXT NOT NULL,
    job_type         TEXT NOT NULL,
    plugin_name      TEXT NOT NULL,
    plugin_version   TEXT NOT NULL,
    plugin_digest    TEXT NOT NULL,
    state            TEXT NOT NULL,
    path             TEXT NOT NULL,
    excluded_paths   TEXT NOT NULL,            -- JSON array of paths
    params           TEXT NOT NULL,            -- JSON object
    priority         INTEGER NOT NULL DEFAULT 0,
    require_confirmation INTEGER NOT NULL DEFAULT 0,
    name             TEXT,
    description      TEXT,
    created_by       TEXT NOT NULL,
    server_name      TEXT,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    completed_at     INTEGER,
    updated_at       INTEGER NOT NULL,
    total            INTEGER NOT NULL DEFAULT 0,
    succeeded        INTEGER NOT NULL DEFAULT 0,
    failed           INTEGER NOT NULL DEFAULT 0,
    progress_message TEXT,
    progress_at      INTEGER,
    fuel_used        INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    checkpoint       BLOB
);
CREATE INDEX jobs_by_state ON jobs (state, priority DESC, created_at);
CREATE INDEX jobs_by_created ON jobs (created_at);

CREATE TABLE tasks (
    job_id      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    path        TEXT NOT NULL,
    input       BLOB NOT NULL,
    state       TEXT NOT NULL,                 -- pending | running | succeeded | failed
    code        INTEGER,
    message     TEXT,
    etag        TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    not_before  INTEGER NOT NULL DEFAULT 0,
    fuel_used   INTEGER NOT NULL DEFAULT 0,
    started_at  INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE INDEX tasks_by_state ON tasks (job_id, state, seq);

CREATE TABLE job_logs (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  TEXT NOT NULL,
    at      INTEGER NOT NULL,
    level   TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX job_logs_by_job ON job_logs (job_id, id);

CREATE TABLE assets (
    tenant       TEXT NOT NULL,
    path         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    etag         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    modified_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, path)
) WITHOUT ROWID;

CREATE TABLE metadata (
    tenant TEXT NOT NULL,
    path   TEXT NOT NULL,
    name   TEXT NOT NULL,
    idx    INTEGER NOT NULL,
    kind   TEXT NOT NULL,                      -- text | long | double | boolean | date
    value  TEXT NOT NULL,
    PRIMARY KEY (tenant, path, name, idx)
) WITHOUT ROWID;

CREATE TABLE refs (
    tenant TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    PRIMARY KEY (tenant, source, target)
) WITHOUT ROWID;
CREATE INDEX refs_by_target ON refs (tenant, target, source);
