// Package controlplane is the REST control plane of Exosphere Alerts (Huma
// v2) and its dashboard. It owns Postgres: every change to an endpoint or a
// rule is written together with its audit row and its outbox row in one
// transaction, and the outbox relay publishes the snapshots to the compacted
// alert-rules and webhook-endpoints topics. It authenticates API keys
// (stored hashed) and scopes every query to the key's tenant.
//
// It must not deliver webhooks or evaluate events: that is the processor's
// and the dispatcher's job.
package controlplane
