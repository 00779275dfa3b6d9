-- A webhook endpoint's own delivery rate: at most this many attempts per
-- second from each dispatcher. NULL: the dispatcher's operator default
-- (EXO_DISPATCHER_ENDPOINT_RATE).
SET lock_timeout = '5s';

ALTER TABLE webhook_endpoints ADD COLUMN rate_limit_per_second integer
    CONSTRAINT webhook_endpoints_rate_limit_per_second_check CHECK (rate_limit_per_second BETWEEN 1 AND 10000);
