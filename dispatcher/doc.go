// Package dispatcher delivers alerts: it consumes the deliveries topic,
// looks the endpoint up in the table read from the compacted
// webhook-endpoints topic, decrypts its secret in memory, signs the payload
// (X-Exosphere-Signature and Standard Webhooks), POSTs it through an
// SSRF-guarded HTTP client, and reports every attempt to delivery-results.
// Offsets are committed only after the outcome records are acknowledged by
// Kafka (at-least-once; a repeated attempt carries the same webhook-id).
//
// It never touches Postgres: a Postgres outage must not stop alerts.
package dispatcher
