// Package recorder keeps the delivery history in Postgres: it consumes
// deliveries (table alerts), delivery-results (delivery_attempts),
// deliveries.dlq (dead_letters) and rule-errors (the rules' last errors),
// disables a rule whose endpoint answered 404 or 410 (with an audit row
// and a new snapshot for the processor, in the same transaction), sets
// aside what it can never write (quarantined_records), and deletes what
// the retention no longer keeps.
//
// It is at-least-once with idempotent writes: a poll's records are written
// in one transaction and their offsets committed after it. Every statement
// is internal/store's; the recorder holds no SQL. It never serves HTTP and
// never imports another service: cmd/exo-alerts runs it, on its own
// (exo-alerts recorder) or next to the control plane.
package recorder
