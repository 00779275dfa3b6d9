SET lock_timeout = '5s';
DROP TRIGGER IF EXISTS alert_rules_condition_changed ON alert_rules;
DROP FUNCTION IF EXISTS alert_rules_condition_changed();
ALTER TABLE alert_rules
    DROP COLUMN IF EXISTS last_error,
    DROP COLUMN IF EXISTS last_error_at,
    DROP COLUMN IF EXISTS last_error_event_id,
    DROP COLUMN IF EXISTS last_error_rule_version,
    DROP COLUMN IF EXISTS error_count,
    DROP COLUMN IF EXISTS condition_version;
ALTER TABLE outbox DROP COLUMN IF EXISTS quarantined_at, DROP COLUMN IF EXISTS quarantine_reason;
DROP TABLE IF EXISTS quarantined_records;
