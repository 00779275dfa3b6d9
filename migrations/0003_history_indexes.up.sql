-- Indexes of the delivery-history API: a rule's and an endpoint's alerts,
-- newest first, and dead letters per endpoint or rule.
SET lock_timeout = '5s';

CREATE INDEX alerts_rule_idx ON alerts (tenant_id, rule_id, created_at DESC, alert_id DESC);
CREATE INDEX alerts_endpoint_idx ON alerts (tenant_id, endpoint_id, created_at DESC, alert_id DESC);
CREATE INDEX dead_letters_endpoint_idx ON dead_letters (tenant_id, endpoint_id, dead_at DESC);
CREATE INDEX dead_letters_rule_idx ON dead_letters (tenant_id, rule_id, dead_at DESC);
