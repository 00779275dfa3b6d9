-- Health notices (docs/design/aggregate-alerts.md §6): written only by the
-- recorder, INSERT ... ON CONFLICT DO NOTHING on a deterministic id, so each
-- occurrence makes exactly one notice; and the tenant's notice settings.
SET lock_timeout = '5s';

CREATE TABLE notices (
    id                text PRIMARY KEY, -- ntc_ + hex(SHA-256(tenant, dedup_key))
    tenant_id         text NOT NULL REFERENCES tenants (id),
    kind              text NOT NULL CHECK (kind IN ('rule_disabled', 'endpoint_unhealthy', 'dead_letters', 'quota_exceeded')),
    dedup_key         text NOT NULL,
    rule_id           text,
    endpoint_id       text,
    title             text NOT NULL,
    detail            jsonb NOT NULL DEFAULT '{}',
    count             bigint NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    resolved_at       timestamptz,
    acknowledged_at   timestamptz,
    acknowledged_by   text,
    delivery_alert_id text
);
-- One open endpoint_unhealthy notice per endpoint, whichever dispatcher
-- reported it.
CREATE UNIQUE INDEX notices_open_unhealthy ON notices (tenant_id, endpoint_id)
    WHERE kind = 'endpoint_unhealthy' AND resolved_at IS NULL;
-- GET /v1/notices: newest first, cursor (created_at, id).
CREATE INDEX notices_tenant_idx ON notices (tenant_id, created_at DESC, id DESC);

CREATE TABLE tenant_settings (
    tenant_id          text PRIMARY KEY REFERENCES tenants (id),
    notice_endpoint_id text REFERENCES webhook_endpoints (id),
    notice_kinds       text[] NOT NULL DEFAULT '{}',
    updated_at         timestamptz NOT NULL DEFAULT now(),
    version            bigint NOT NULL DEFAULT 1
);

GRANT SELECT ON notices TO exo_app;
GRANT UPDATE (acknowledged_at, acknowledged_by, resolved_at) ON notices TO exo_app;
GRANT SELECT, INSERT, UPDATE ON tenant_settings TO exo_app;

ALTER TABLE notices ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notices TO exo_app
    USING (tenant_id = current_setting('exo.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('exo.tenant_id', true));

ALTER TABLE tenant_settings ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_settings TO exo_app
    USING (tenant_id = current_setting('exo.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('exo.tenant_id', true));
