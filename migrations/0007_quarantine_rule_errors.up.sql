-- Poison records and rule errors (issue #8): what the recorder and the
-- outbox relay could never write or publish is kept for an operator, and a
-- rule's latest evaluation error is kept on the rule.
SET lock_timeout = '5s';

-- Records the recorder consumed but Postgres refused with a data error
-- (e.g. a string it cannot hold): stored raw, with their coordinates, so an
-- operator can see them and produce them again (exo-alerts quarantine).
CREATE TABLE quarantined_records (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer       text NOT NULL,
    topic          text NOT NULL,
    "partition"    integer NOT NULL,
    "offset"       bigint NOT NULL,
    key            bytea,
    value          bytea,
    headers        jsonb NOT NULL DEFAULT '[]',
    error          text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    replayed_at    timestamptz,
    UNIQUE (consumer, topic, "partition", "offset")
);

-- An outbox row Kafka can never accept (too large, not its topic's schema)
-- is set aside instead of blocking the rows after it.
ALTER TABLE outbox ADD COLUMN quarantined_at timestamptz, ADD COLUMN quarantine_reason text;

-- The latest rule error (schemas.RuleErrorRecord, from the rule-errors
-- topic), shown read-only on the rule. condition_version is the rule
-- version whose condition is current: errors reported for an older
-- condition are not shown.
ALTER TABLE alert_rules
    ADD COLUMN last_error              text,
    ADD COLUMN last_error_at           timestamptz,
    ADD COLUMN last_error_event_id     text,
    ADD COLUMN last_error_rule_version bigint,
    ADD COLUMN error_count             bigint NOT NULL DEFAULT 0,
    ADD COLUMN condition_version       bigint NOT NULL DEFAULT 1;

-- A changed condition starts with a clean slate, whoever changes it.
CREATE FUNCTION alert_rules_condition_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.condition IS DISTINCT FROM OLD.condition THEN
        NEW.condition_version := NEW.version;
        NEW.last_error := NULL;
        NEW.last_error_at := NULL;
        NEW.last_error_event_id := NULL;
        NEW.last_error_rule_version := NULL;
        NEW.error_count := 0;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER alert_rules_condition_changed BEFORE UPDATE OF condition ON alert_rules
    FOR EACH ROW EXECUTE FUNCTION alert_rules_condition_changed();
