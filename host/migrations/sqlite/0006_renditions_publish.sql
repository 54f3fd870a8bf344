-- Renditions (named binaries derived from an asset, stored beside it) and
-- the published state of assets (what the publish target holds).

CREATE TABLE renditions (
    tenant       TEXT NOT NULL,
    path         TEXT NOT NULL,
    name         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    etag         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    modified_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, path, name)
) WITHOUT ROWID;

CREATE TABLE published (
    tenant       TEXT NOT NULL,
    path         TEXT NOT NULL,
    etag         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    renditions   TEXT NOT NULL,                -- JSON: [{name, etag, contentType, size}]
    published_at INTEGER NOT NULL,
    published_by TEXT NOT NULL,                -- the job that published this version
    PRIMARY KEY (tenant, path)
) WITHOUT ROWID;
