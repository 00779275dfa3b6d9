// Package e2e holds the end-to-end tests: the control plane, processor and
// dispatcher run in one test process against a real PostgreSQL and a real
// Kafka broker, and a local HTTP receiver plays the tenant's endpoint.
package e2e
