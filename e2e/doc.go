// Package e2e holds the end-to-end tests: the control plane, processor,
// dispatcher and recorder run in one test process against a real
// PostgreSQL and a real Kafka broker, and a local HTTP receiver plays the
// tenant's endpoint. Tests of a path through several services (delivery
// history through the API, quarantine and replay) live here, since a
// service's own tests may not import another service.
package e2e
