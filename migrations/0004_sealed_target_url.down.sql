SET lock_timeout = '5s';
-- target_url_sealed is the only copy of the URLs it holds (target_url has
-- their masked form): refuse to drop it while it holds any.
DO $$
BEGIN
    IF EXISTS (SELECT FROM webhook_endpoints WHERE target_url_sealed IS NOT NULL) THEN
        RAISE EXCEPTION 'webhook_endpoints.target_url_sealed holds the only copy of % target URL(s); migrating down would lose them',
            (SELECT count(*) FROM webhook_endpoints WHERE target_url_sealed IS NOT NULL);
    END IF;
END;
$$;
ALTER TABLE webhook_endpoints DROP COLUMN IF EXISTS target_url_sealed;
