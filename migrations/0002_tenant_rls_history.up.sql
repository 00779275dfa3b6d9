-- Tenant isolation enforced by Postgres, and what the recorder keeps.
SET lock_timeout = '5s';

-- The application role. API requests run as this role (SET LOCAL ROLE per
-- transaction) with the tenant in the transaction-local setting
-- exo.tenant_id; row-level security then shows and accepts only that
-- tenant's rows. It owns nothing and cannot log in. Roles are per cluster,
-- so several databases of one cluster share it: create it once, and keep it
-- on down.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'exo_app') THEN
        CREATE ROLE exo_app NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- created meanwhile by a migration of another database
END;
$$;
-- The migrating role (the tables' owner) must be able to switch to it.
DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'exo_app', 'MEMBER') THEN
        EXECUTE format('GRANT exo_app TO %I', current_user);
    END IF;
EXCEPTION WHEN OTHERS THEN
    IF NOT pg_has_role(current_user, 'exo_app', 'MEMBER') THEN
        RAISE;
    END IF;
END;
$$;

-- Every alert the processor emitted, as the recorder read it from the
-- deliveries topic: what the history shows and what a redelivery sends.
CREATE TABLE alerts (
    alert_id    text PRIMARY KEY,
    tenant_id   text NOT NULL,
    rule_id     text NOT NULL,
    endpoint_id text NOT NULL,
    event_type  text NOT NULL,
    record      jsonb NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX alerts_tenant_idx ON alerts (tenant_id, created_at DESC);
CREATE INDEX alerts_created_idx ON alerts (created_at);

-- An alert redelivered from the API starts again at attempt 1: an attempt is
-- identified by its delivery id (unique per attempt), not its number.
ALTER TABLE delivery_attempts DROP CONSTRAINT delivery_attempts_pkey;
ALTER TABLE delivery_attempts ADD PRIMARY KEY (alert_id, delivery_id);
CREATE INDEX delivery_attempts_alert_idx ON delivery_attempts (alert_id, attempted_at);
CREATE INDEX delivery_attempts_attempted_idx ON delivery_attempts (attempted_at);
CREATE INDEX dead_letters_dead_idx ON dead_letters (dead_at);

GRANT USAGE ON SCHEMA public TO exo_app;
GRANT SELECT ON tenants TO exo_app;
GRANT SELECT, INSERT, UPDATE ON webhook_endpoints, alert_rules TO exo_app;
GRANT SELECT, INSERT ON audit_events TO exo_app;
GRANT INSERT ON outbox TO exo_app;
GRANT SELECT ON alerts, delivery_attempts, dead_letters TO exo_app;
GRANT UPDATE (replayed_at) ON dead_letters TO exo_app;

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants TO exo_app
    USING (id = current_setting('exo.tenant_id', true));

ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_endpoints TO exo_app
    USING (tenant_id = current_setting('exo.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('exo.tenant_id', true));

ALTER TABLE alert_rules ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON alert_rules TO exo_app
    USING (tenant_id = current_setting('exo.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('exo.tenant_id', true));

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_events TO exo_app
    USING (tenant_id = current_setting('exo.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('exo.tenant_id', true));

ALTER TABLE alerts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON alerts TO exo_app
    USING (tenant_id = current_setting('exo.tenant_id', true));

ALTER TABLE delivery_attempts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON delivery_attempts TO exo_app
    USING (tenant_id = current_setting('exo.tenant_id', true));

ALTER TABLE dead_letters ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dead_letters TO exo_app
    USING (tenant_id = current_setting('exo.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('exo.tenant_id', true));
