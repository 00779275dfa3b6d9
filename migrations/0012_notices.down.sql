SET lock_timeout = '5s';
DROP TABLE IF EXISTS tenant_settings;
DROP TABLE IF EXISTS notices;
