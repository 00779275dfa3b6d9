-- A target URL that carries a credential (a Slack incoming-webhook URL, a
-- URL with a query string) is kept sealed here; target_url then holds its
-- masked display form.
SET lock_timeout = '5s';
ALTER TABLE webhook_endpoints ADD COLUMN target_url_sealed jsonb;
