-- Initial schema of Exosphere Alerts.
SET lock_timeout = '5s';

CREATE TABLE tenants (
    id         text PRIMARY KEY CHECK (id ~ '^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$'),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    tenant_id    text NOT NULL REFERENCES tenants (id),
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'viewer')),
    key_hash     bytea NOT NULL UNIQUE,
    key_prefix   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

-- WebhookEndpoint: id, name, target_url, secret, headers, is_active, created_by, created_at, ...
-- secret and header values are AES-256-GCM ciphertexts: {"key_id": "...", "ciphertext": "..."}.
CREATE TABLE webhook_endpoints (
    id                         text PRIMARY KEY,
    tenant_id                  text NOT NULL REFERENCES tenants (id),
    name                       text NOT NULL,
    kind                       text NOT NULL DEFAULT 'webhook' CHECK (kind IN ('webhook', 'slack', 'pagerduty')),
    target_url                 text NOT NULL,
    secret                     jsonb NOT NULL,
    secret_hint                text NOT NULL,
    previous_secret            jsonb,
    previous_secret_expires_at timestamptz,
    headers                    jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_active                  boolean NOT NULL DEFAULT true,
    disabled_reason            text,
    created_by                 text NOT NULL,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    deleted_at                 timestamptz,
    version                    bigint NOT NULL DEFAULT 1
);
CREATE INDEX webhook_endpoints_tenant_idx ON webhook_endpoints (tenant_id, created_at, id) WHERE deleted_at IS NULL;

-- AlertRule: id, name, event_type, condition, webhook_endpoint_id, is_active, ...
CREATE TABLE alert_rules (
    id                    text PRIMARY KEY,
    tenant_id             text NOT NULL REFERENCES tenants (id),
    name                  text NOT NULL,
    description           text NOT NULL DEFAULT '',
    event_type            text NOT NULL CHECK (event_type IN ('workflow.run.started', 'workflow.run.succeeded',
                                                             'workflow.run.failed', 'workflow.run.duration_exceeded')),
    condition             text NOT NULL DEFAULT '',
    duration_threshold_ms bigint CHECK (duration_threshold_ms IS NULL OR duration_threshold_ms > 0),
    webhook_endpoint_id   text NOT NULL REFERENCES webhook_endpoints (id),
    is_active             boolean NOT NULL DEFAULT true,
    disabled_reason       text,
    max_attempts          integer NOT NULL DEFAULT 8 CHECK (max_attempts BETWEEN 1 AND 50),
    rate_limit_per_minute integer CHECK (rate_limit_per_minute IS NULL OR rate_limit_per_minute > 0),
    cooldown_ms           bigint CHECK (cooldown_ms IS NULL OR cooldown_ms >= 0),
    severity              text NOT NULL DEFAULT 'error' CHECK (severity IN ('critical', 'error', 'warning', 'info')),
    include_error_message boolean NOT NULL DEFAULT false,
    created_by            text NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz,
    version               bigint NOT NULL DEFAULT 1,
    CHECK ((event_type = 'workflow.run.duration_exceeded') = (duration_threshold_ms IS NOT NULL))
);
CREATE INDEX alert_rules_tenant_idx ON alert_rules (tenant_id, created_at, id) WHERE deleted_at IS NULL;
CREATE INDEX alert_rules_endpoint_idx ON alert_rules (webhook_endpoint_id);

-- Append-only audit trail: one row per change, written in the change's transaction.
CREATE TABLE audit_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id),
    actor         text NOT NULL,
    action        text NOT NULL,
    resource_type text NOT NULL,
    resource_id   text NOT NULL,
    before        jsonb,
    after         jsonb,
    request_id    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_tenant_idx ON audit_events (tenant_id, id);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- Transactional outbox: the relay publishes each row to Kafka (value NULL = tombstone).
CREATE TABLE outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic      text NOT NULL,
    key        text NOT NULL,
    value      bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX outbox_unsent_idx ON outbox (id) WHERE sent_at IS NULL;

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('exo_outbox', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Delivery history: one row per attempt, from delivery-results.
CREATE TABLE delivery_attempts (
    alert_id         text NOT NULL,
    attempt          integer NOT NULL,
    delivery_id      text NOT NULL,
    tenant_id        text NOT NULL,
    rule_id          text NOT NULL,
    endpoint_id      text NOT NULL,
    outcome          text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'endpoint_gone', 'dead')),
    status_code      integer,
    latency_ms       bigint NOT NULL DEFAULT 0,
    error_class      text,
    error            text,
    response_excerpt text,
    attempted_at     timestamptz NOT NULL,
    PRIMARY KEY (alert_id, attempt)
);
CREATE INDEX delivery_attempts_rule_idx ON delivery_attempts (tenant_id, rule_id, attempted_at DESC);
CREATE INDEX delivery_attempts_endpoint_idx ON delivery_attempts (tenant_id, endpoint_id, attempted_at DESC);

-- Dead letters, from deliveries.dlq.
CREATE TABLE dead_letters (
    alert_id    text PRIMARY KEY,
    tenant_id   text NOT NULL,
    rule_id     text NOT NULL,
    endpoint_id text NOT NULL,
    attempts    integer NOT NULL,
    last_error  text NOT NULL,
    record      jsonb NOT NULL,
    dead_at     timestamptz NOT NULL,
    replayed_at timestamptz
);
CREATE INDEX dead_letters_tenant_idx ON dead_letters (tenant_id, dead_at DESC);
