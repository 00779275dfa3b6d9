-- API keys of role ingest (issue #12): a tenant's key that may only send
-- workflow events to POST /v1/events, for a workflow engine that cannot
-- embed a Kafka client. It reads and changes nothing else.
SET lock_timeout = '5s';

ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check CHECK (role IN ('admin', 'viewer', 'operator', 'ingest'));
