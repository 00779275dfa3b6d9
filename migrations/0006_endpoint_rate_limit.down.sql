SET lock_timeout = '5s';
ALTER TABLE webhook_endpoints DROP COLUMN IF EXISTS rate_limit_per_second;
