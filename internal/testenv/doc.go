// Package testenv gives tests real services: a Postgres database per test,
// cloned from a migrated template, and unique Kafka topic names per test on
// a real broker.
//
// Services come from DATABASE_URL / KAFKA_BROKERS when set (make test starts
// a real PostgreSQL and a real Apache Kafka broker and sets them); otherwise
// from testcontainers-go when a Docker engine is reachable; otherwise Kafka
// falls back to an in-process kfake broker and Postgres fails the test with
// a clear message. Under CI=true a missing service fails the test: nothing
// is ever skipped.
package testenv
