-- An audit job runs inside the API process that accepted it. If that process stops, nothing
-- else will finish the row: its runner beats every few seconds, and a reader that finds a
-- queued or running job silent for a minute marks it failed (services/audit/job.py).
ALTER TABLE audit_job ADD COLUMN heartbeat_at timestamptz;
UPDATE audit_job SET heartbeat_at = coalesce(started_at, created_at) WHERE status IN ('queued', 'running');
