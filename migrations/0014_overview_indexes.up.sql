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

-- The run id and workflow name of an alert's payload as columns of their
-- own. An index on the JSON paths themselves is of no use to the API:
-- under row-level security Postgres applies a condition on a function that
-- is not leakproof (#>>) only after the policy, never as an index
-- condition, so the search read every alert of the tenant. A comparison of
-- plain text columns is leakproof. A trigger fills them from the record
-- (the recorder's statements stay as they are); alerts stored before are
-- filled here. Not generated columns: adding one rewrites the table under
-- an exclusive lock, which would stop the recorder for as long.
ALTER TABLE alerts ADD COLUMN run_id text, ADD COLUMN workflow_name text;

CREATE FUNCTION alerts_search_columns() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.run_id := NEW.record #>> '{payload,data,run,id}';
    NEW.workflow_name := NEW.record #>> '{payload,data,workflow,name}';
    RETURN NEW;
END;
$$;
CREATE TRIGGER alerts_search_columns BEFORE INSERT OR UPDATE OF record ON alerts
    FOR EACH ROW EXECUTE FUNCTION alerts_search_columns();

UPDATE alerts SET run_id = record #>> '{payload,data,run,id}', workflow_name = record #>> '{payload,data,workflow,name}';

CREATE INDEX alerts_run_idx ON alerts (tenant_id, run_id, created_at DESC, alert_id DESC);
CREATE INDEX alerts_workflow_idx ON alerts (tenant_id, workflow_name, created_at DESC, alert_id DESC);
