SET lock_timeout = '5s';

DROP INDEX IF EXISTS alerts_workflow_idx;
DROP INDEX IF EXISTS alerts_run_idx;
DROP TRIGGER IF EXISTS alerts_search_columns ON alerts;
DROP FUNCTION IF EXISTS alerts_search_columns();
ALTER TABLE alerts DROP COLUMN IF EXISTS run_id, DROP COLUMN IF EXISTS workflow_name;
CREATE INDEX IF NOT EXISTS alerts_tenant_idx ON alerts (tenant_id, created_at DESC);
DROP INDEX IF EXISTS alerts_tenant_created_idx;
DROP INDEX IF EXISTS notices_endpoint_unhealthy_idx;
DROP INDEX IF EXISTS delivery_attempts_endpoint_failed_idx;
DROP INDEX IF EXISTS delivery_attempts_tenant_time_idx;
