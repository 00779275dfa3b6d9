// Package kafka holds the Kafka plumbing shared by the components: topic
// names (with the configurable prefix), idempotent topic creation through
// kadm, and common client options. It must not contain component logic.
package kafka
