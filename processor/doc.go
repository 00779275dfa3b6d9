// Package processor is the stream processor of Exosphere Alerts. It consumes
// workflow-events, keeps the alert rules and webhook endpoints as global
// tables read from their compacted topics (read to the end before any event
// is processed), matches each event against its tenant's rules, evaluates
// their conditions and emits one delivery record per (rule, event) to the
// deliveries topic. Consumption, production and offset commits happen in one
// Kafka transaction (exactly once). Records that are not valid workflow
// events go to workflow-events.invalid with the reason.
//
// It never touches Postgres and never performs HTTP: delivery is the
// dispatcher's job.
package processor
