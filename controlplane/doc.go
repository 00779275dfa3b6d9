// Package controlplane is the REST control plane of Exosphere Alerts (Huma
// v2) and its dashboard. Every change to an endpoint or a rule is written
// together with its audit row and its outbox row in one tenant transaction
// of the store (internal/store, which holds the statements), and the outbox
// relay publishes the snapshots to the compacted alert-rules and
// webhook-endpoints topics. It authenticates API keys (stored hashed) and
// runs each request in a transaction bound to the key's tenant, so
// row-level security scopes every statement.
//
// It must not deliver webhooks or evaluate events (the processor's and the
// dispatcher's job), record delivery history (the recorder's), or hold SQL.
package controlplane
