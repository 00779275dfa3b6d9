SET lock_timeout = '5s';
ALTER TABLE webhook_endpoints DROP COLUMN IF EXISTS target_url_sealed;
