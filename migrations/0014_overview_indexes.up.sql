-- Indexes of the dashboard's overview and global deliveries search (issue
-- #14): the stats read a tenant's attempts of a window (index-only, with
-- the columns they aggregate), the endpoint health reads each endpoint's
-- latest failure and its breaker reports, and the search walks a tenant's
-- alerts newest first, by run or by workflow name.
SET lock_timeout = '5s';

CREATE INDEX delivery_attempts_tenant_time_idx ON delivery_attempts (tenant_id, attempted_at)
    INCLUDE (outcome, latency_ms, rule_id, endpoint_id);
CREATE INDEX delivery_attempts_endpoint_failed_idx ON delivery_attempts (tenant_id, endpoint_id, attempted_at DESC)
    WHERE outcome <> 'delivered';
CREATE INDEX notices_endpoint_unhealthy_idx ON notices (tenant_id, endpoint_id, created_at DESC)
    WHERE kind = 'endpoint_unhealthy';

-- The search's order (created_at, alert_id) whole: it replaces
-- alerts_tenant_idx (tenant_id, created_at DESC), its prefix.
CREATE INDEX alerts_tenant_created_idx ON alerts (tenant_id, created_at DESC, alert_id DESC);
DROP INDEX alerts_tenant_idx;
CREATE INDEX alerts_run_idx ON alerts (tenant_id, (record #>> '{payload,data,run,id}'), created_at DESC, alert_id DESC);
CREATE INDEX alerts_workflow_idx ON alerts (tenant_id, (record #>> '{payload,data,workflow,name}'), created_at DESC, alert_id DESC);
