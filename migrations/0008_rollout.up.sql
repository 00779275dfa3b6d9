-- The live rollout flag (issue #10): each tenant's explicit rollout state
-- and the global default, changed by operators (API keys of role operator,
-- or the exo-alerts command) and published on the compacted tenants topic.
-- Who is served by which states: internal/rollout.
SET lock_timeout = '5s';

-- NULL: no explicit state; the tenant follows the global default.
ALTER TABLE tenants
    ADD COLUMN rollout_state      text CHECK (rollout_state IN ('off', 'beta', 'ga')),
    ADD COLUMN rollout_updated_at timestamptz;

-- The global default: one row, absent until a control plane has stored
-- what EXO_TENANTS says (or an operator has set it).
CREATE TABLE rollout_default (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    state      text NOT NULL CHECK (state IN ('off', 'beta', 'ga')),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Operator keys belong to no tenant: they manage the rollout and nothing of
-- a tenant's, and a tenant's keys cannot manage the rollout.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check CHECK (role IN ('admin', 'viewer', 'operator'));
ALTER TABLE api_keys ALTER COLUMN tenant_id DROP NOT NULL;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_operator_no_tenant CHECK ((role = 'operator') = (tenant_id IS NULL));

-- Audit rows of changes that concern no single tenant (the global default,
-- operator keys) have no tenant; row-level security shows them to no tenant.
ALTER TABLE audit_events ALTER COLUMN tenant_id DROP NOT NULL;
CREATE INDEX audit_events_operator_idx ON audit_events (id) WHERE resource_type IN ('rollout_default', 'tenant_rollout');
