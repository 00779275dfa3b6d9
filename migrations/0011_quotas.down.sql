SET lock_timeout = '5s';
DROP TABLE IF EXISTS quota_suppressions;
ALTER TABLE tenants DROP COLUMN IF EXISTS delivery_quota_per_minute;
