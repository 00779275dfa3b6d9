SET lock_timeout = '5s';
ALTER TABLE alert_rules DROP CONSTRAINT IF EXISTS alert_rules_tenant_endpoint_fkey;
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_webhook_endpoint_id_fkey
    FOREIGN KEY (webhook_endpoint_id) REFERENCES webhook_endpoints (id);
ALTER TABLE webhook_endpoints DROP CONSTRAINT IF EXISTS webhook_endpoints_tenant_id_id_key;
DROP POLICY IF EXISTS tenant_isolation ON outbox;
ALTER TABLE outbox DISABLE ROW LEVEL SECURITY;
