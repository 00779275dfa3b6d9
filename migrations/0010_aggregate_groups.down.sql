SET lock_timeout = '5s';
DROP TABLE IF EXISTS aggregate_rule_stats;
DROP TABLE IF EXISTS aggregate_groups;
