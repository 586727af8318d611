-- Who runs a job: a run left 'running' by a process that no longer exists on its host
-- is marked 'killed' by the next job that starts (catalog/runs.py).
ALTER TABLE runs ADD COLUMN IF NOT EXISTS host VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS pid INTEGER;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS pid_started BIGINT;
