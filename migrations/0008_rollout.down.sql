SET lock_timeout = '5s';
DROP INDEX IF EXISTS audit_events_operator_idx;
-- The audit trail is append-only: its rows without a tenant stay, and so
-- does the column's nullability when there are any.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM audit_events WHERE tenant_id IS NULL) THEN
        ALTER TABLE audit_events ALTER COLUMN tenant_id SET NOT NULL;
    END IF;
END;
$$;
DELETE FROM api_keys WHERE role = 'operator';
ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_operator_no_tenant;
ALTER TABLE api_keys ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check CHECK (role IN ('admin', 'viewer'));
DROP TABLE IF EXISTS rollout_default;
ALTER TABLE tenants DROP COLUMN IF EXISTS rollout_state, DROP COLUMN IF EXISTS rollout_updated_at;
