// Package processor is the stream processor of Exosphere Alerts. It consumes
// workflow-events, keeps the alert rules and webhook endpoints as global
// tables read from their compacted topics (read to the end before any event
// is processed), matches each event against its tenant's rules, evaluates
// their conditions and emits one delivery record per (rule, event) to the
// deliveries topic. Consumption, production and offset commits happen in one
// Kafka transaction (exactly once). Records that are not valid workflow
// events go to workflow-events.invalid with the reason.
//
// Count and rate rules (docs/design/aggregate-alerts.md) take two stages
// in the same transaction session: stage 1 (the event loop) turns each
// matching event into an aggregate input on processor.aggregate-input,
// keyed by rule, and sends watermark markers; stage 2 consumes that topic
// beside the events, keeps the groups of each rule in processor/aggregate,
// changelogged to processor.aggregate-state, and emits their firing and
// resolved deliveries.
//
// It never touches Postgres and never performs HTTP: delivery is the
// dispatcher's job.
package processor
