-- Aggregate rules (issue #11, docs/design/aggregate-alerts.md §1.3): a rule
-- gets a kind; count and rate rules take a window, their threshold, group_by
-- and noise controls. Existing rows become per_event, unchanged.
SET lock_timeout = '5s';

ALTER TABLE alert_rules
    ADD COLUMN kind text NOT NULL DEFAULT 'per_event' CHECK (kind IN ('per_event', 'count', 'rate')),
    ADD COLUMN window_ms bigint CHECK (window_ms IS NULL OR (window_ms BETWEEN 60000 AND 86400000 AND window_ms % 60000 = 0)),
    ADD COLUMN threshold integer CHECK (threshold IS NULL OR threshold BETWEEN 1 AND 100000),
    ADD COLUMN success_ratio_below_bp integer CHECK (success_ratio_below_bp IS NULL OR success_ratio_below_bp BETWEEN 1 AND 10000),
    ADD COLUMN min_runs integer CHECK (min_runs IS NULL OR min_runs BETWEEN 1 AND 100000),
    ADD COLUMN group_by text[] NOT NULL DEFAULT '{}' CHECK (cardinality(group_by) <= 4),
    ADD COLUMN max_groups integer CHECK (max_groups IS NULL OR max_groups BETWEEN 1 AND 5000),
    ADD COLUMN hold_ms bigint CHECK (hold_ms IS NULL OR hold_ms BETWEEN 0 AND 86400000),
    ADD COLUMN repeat_interval_ms bigint CHECK (repeat_interval_ms IS NULL OR repeat_interval_ms BETWEEN 60000 AND 604800000),
    ADD CONSTRAINT alert_rules_kind_window CHECK ((kind = 'per_event') = (window_ms IS NULL)),
    ADD CONSTRAINT alert_rules_kind_count CHECK ((kind = 'count') = (threshold IS NOT NULL)),
    ADD CONSTRAINT alert_rules_kind_rate CHECK ((kind = 'rate') = (success_ratio_below_bp IS NOT NULL AND min_runs IS NOT NULL)),
    ADD CONSTRAINT alert_rules_groups CHECK (kind <> 'per_event' OR (cardinality(group_by) = 0 AND max_groups IS NULL)),
    ADD CONSTRAINT alert_rules_finished CHECK (event_type <> 'workflow.run.finished' OR kind <> 'per_event'),
    ADD CONSTRAINT alert_rules_rate_finished CHECK (kind <> 'rate' OR event_type = 'workflow.run.finished');

-- workflow.run.finished: a filter of aggregate rules (a run's succeeded or
-- failed event), not an event type.
ALTER TABLE alert_rules DROP CONSTRAINT alert_rules_event_type_check,
    ADD CONSTRAINT alert_rules_event_type_check CHECK (event_type IN ('workflow.run.started', 'workflow.run.succeeded',
        'workflow.run.failed', 'workflow.run.duration_exceeded', 'workflow.run.finished'));

-- The per-tenant caps on aggregate rules count these.
CREATE INDEX alert_rules_aggregate_idx ON alert_rules (tenant_id)
    WHERE kind <> 'per_event' AND is_active AND deleted_at IS NULL;
