-- Delivery quotas (docs/design/aggregate-alerts.md §5): the operator's
-- per-tenant override, and the suppressions the processor reports on the
-- quota-usage topic, stored once per record by its Kafka coordinates.
SET lock_timeout = '5s';

-- NULL: the default (EXO_TENANT_DELIVERY_QUOTA); 0: unlimited.
ALTER TABLE tenants
    ADD COLUMN delivery_quota_per_minute bigint CHECK (delivery_quota_per_minute IS NULL OR delivery_quota_per_minute >= 0);

CREATE TABLE quota_suppressions (
    kafka_partition integer NOT NULL,
    kafka_offset    bigint NOT NULL,
    tenant_id       text NOT NULL,
    minute          timestamptz NOT NULL,
    scope           text NOT NULL CHECK (scope IN ('tenant', 'global')),
    suppressed      bigint NOT NULL CHECK (suppressed > 0),
    quota_limit     bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kafka_partition, kafka_offset)
);
CREATE INDEX quota_suppressions_tenant_idx ON quota_suppressions (tenant_id, minute);
-- Retention (30 days) prunes by age.
CREATE INDEX quota_suppressions_created_idx ON quota_suppressions (created_at);

GRANT SELECT ON quota_suppressions TO exo_app;
ALTER TABLE quota_suppressions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON quota_suppressions TO exo_app
    USING (tenant_id = current_setting('exo.tenant_id', true));
