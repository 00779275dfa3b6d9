-- Two more places where Postgres enforces the tenant, not only the code.
SET lock_timeout = '5s';

-- The application role may queue outbox rows only under its own tenant's
-- keys (tenant_id/...): a bug cannot publish a snapshot, tombstone or
-- delivery in another tenant's name. It still cannot read the outbox.
ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON outbox FOR INSERT TO exo_app
    WITH CHECK (split_part(key, '/', 1) = current_setting('exo.tenant_id', true));

-- A rule's endpoint must be of the rule's tenant. Foreign-key checks run as
-- the table owner, past row-level security, so the key itself says it.
ALTER TABLE webhook_endpoints ADD CONSTRAINT webhook_endpoints_tenant_id_id_key UNIQUE (tenant_id, id);
ALTER TABLE alert_rules DROP CONSTRAINT alert_rules_webhook_endpoint_id_fkey;
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_tenant_endpoint_fkey
    FOREIGN KEY (tenant_id, webhook_endpoint_id) REFERENCES webhook_endpoints (tenant_id, id);
