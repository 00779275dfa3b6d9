SET lock_timeout = '5s';
-- Without the columns an aggregate rule would read as a per-event rule and
-- alert on every event, and a workflow.run.finished rule would break the
-- restored event type check: refuse while any exists.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM alert_rules
               WHERE event_type = 'workflow.run.finished' OR (kind <> 'per_event' AND deleted_at IS NULL)) THEN
        RAISE EXCEPTION 'alert_rules holds count or rate rules (or workflow.run.finished rules): delete them before migrating down';
    END IF;
END;
$$;
DROP INDEX IF EXISTS alert_rules_aggregate_idx;
ALTER TABLE alert_rules DROP CONSTRAINT alert_rules_event_type_check,
    ADD CONSTRAINT alert_rules_event_type_check CHECK (event_type IN ('workflow.run.started', 'workflow.run.succeeded',
        'workflow.run.failed', 'workflow.run.duration_exceeded'));
ALTER TABLE alert_rules
    DROP COLUMN IF EXISTS kind,
    DROP COLUMN IF EXISTS window_ms,
    DROP COLUMN IF EXISTS threshold,
    DROP COLUMN IF EXISTS success_ratio_below_bp,
    DROP COLUMN IF EXISTS min_runs,
    DROP COLUMN IF EXISTS group_by,
    DROP COLUMN IF EXISTS max_groups,
    DROP COLUMN IF EXISTS hold_ms,
    DROP COLUMN IF EXISTS repeat_interval_ms;
