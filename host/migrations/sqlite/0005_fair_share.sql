-- Fair scheduling: job weights, CPU time per task, job and tenant, tenant
-- weights, and the job that preempted a paused one.

ALTER TABLE jobs ADD COLUMN weight INTEGER NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN cpu_ns INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN preempted_by TEXT;
ALTER TABLE tasks ADD COLUMN cpu_ns INTEGER NOT NULL DEFAULT 0;

CREATE TABLE tenants (
    tenant    TEXT PRIMARY KEY,
    weight    INTEGER NOT NULL DEFAULT 1,
    cpu_ns    INTEGER NOT NULL DEFAULT 0,
    fuel_used INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO tenants (tenant, fuel_used)
    SELECT tenant, sum(fuel_used) FROM jobs GROUP BY tenant;
