-- Leases: a running task, and a job being planned or finished, is held by one
-- node (its server name) until a time that the node's heartbeat pushes on; an
-- expired lease is rescued by any node.
ALTER TABLE tasks ADD COLUMN owner TEXT;
ALTER TABLE tasks ADD COLUMN lease_until INTEGER;
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until INTEGER;
CREATE INDEX tasks_running ON tasks (lease_until) WHERE state = 'running';
