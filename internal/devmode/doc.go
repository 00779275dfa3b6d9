// Package devmode holds the parts of dev mode that are not wiring: the dev
// key ring kept in the user's config directory, the quickstart it prints,
// and a demo receiver that shows what it received and whether the
// signatures verified. The composition itself (Postgres from DATABASE_URL or
// a throwaway local cluster, Kafka from KAFKA_BROKERS or an in-process kfake
// broker, migrations, all three components, a demo API key) is in
// cmd/exo-alerts, the only composition root; this package imports no
// service. It is for trying the product, not for production.
package devmode
