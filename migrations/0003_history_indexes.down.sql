SET lock_timeout = '5s';
DROP INDEX IF EXISTS dead_letters_rule_idx;
DROP INDEX IF EXISTS dead_letters_endpoint_idx;
DROP INDEX IF EXISTS alerts_endpoint_idx;
DROP INDEX IF EXISTS alerts_rule_idx;
