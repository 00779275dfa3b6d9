// Package producer sends workflow run events to Exosphere Alerts over
// Kafka, for workflow engines written in Go.
//
// It builds the three events the processor acts on — Started, Succeeded
// and Failed, with the run's attempt, labels and error — as
// [schemas.WorkflowEvent] values, and produces them with franz-go to the
// workflow-events topic: keyed "tenant/run" (every event of a run on one
// partition, in order), in CloudEvents structured content mode by default
// or binary mode ([Binary]), with an idempotent producer and acks from all
// in-sync replicas, each Send returning only once the broker has the event.
//
// The contract these events follow (attributes, key, ordering, limits, the
// invalid topic) is docs/producers.md.
//
// It imports only schemas and franz-go: outside code (an engine's control
// plane) can import it without pulling in any service of this module
// (internal/archtest enforces it).
package producer
