-- The current state of aggregate rules' groups, for the groups API
-- (docs/design/aggregate-alerts.md §4): stored by the recorder from the
-- compacted aggregate-groups topic. A key always lands on one partition, so
-- the row with the highest offset is the latest; a tombstone deletes it.
SET lock_timeout = '5s';

CREATE TABLE aggregate_groups (
    tenant_id        text NOT NULL,
    rule_id          text NOT NULL,
    group_key        text NOT NULL,
    group_values     jsonb NOT NULL DEFAULT '{}',
    state            text NOT NULL CHECK (state IN ('inactive', 'firing', 'resolving')),
    firing_since     timestamptz,
    resolving_since  timestamptz,
    last_resolved_at timestamptz,
    incident_id      text,
    value            jsonb NOT NULL DEFAULT '{}',
    last_event_at    timestamptz,
    evaluated_at     timestamptz,
    kafka_partition  integer NOT NULL,
    kafka_offset     bigint NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, rule_id, group_key)
);
CREATE INDEX aggregate_groups_state_idx ON aggregate_groups (tenant_id, state, rule_id, group_key);

CREATE TABLE aggregate_rule_stats (
    tenant_id       text NOT NULL,
    rule_id         text NOT NULL,
    groups          bigint NOT NULL DEFAULT 0,
    dropped         bigint NOT NULL DEFAULT 0,
    late            bigint NOT NULL DEFAULT 0,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, rule_id)
);

GRANT SELECT ON aggregate_groups, aggregate_rule_stats TO exo_app;

ALTER TABLE aggregate_groups ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON aggregate_groups TO exo_app
    USING (tenant_id = current_setting('exo.tenant_id', true));

ALTER TABLE aggregate_rule_stats ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON aggregate_rule_stats TO exo_app
    USING (tenant_id = current_setting('exo.tenant_id', true));
