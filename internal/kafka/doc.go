// Package kafka holds the Kafka plumbing shared by the components: topic
// names (with the configurable prefix), idempotent topic creation through
// kadm with the check of existing topics' cleanup policy, common client
// options, the TLS and SASL settings every client adds (Security), and what
// a start-up waits out or gives up on (Wait, Fatal). It must not contain
// component logic.
package kafka
