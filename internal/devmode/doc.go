// Package devmode runs the whole system in one process on embedded
// defaults (design §7): Postgres from DATABASE_URL or a throwaway local
// cluster, Kafka from KAFKA_BROKERS or an in-process kfake broker on
// 127.0.0.1:9092, migrations, topics, all three components, a demo API key,
// and a demo receiver that shows what it received and whether the
// signatures verified. It is for trying the product, not for production.
package devmode
