// Package engine is the alert engine of the processor: given decoded
// workflow events and the passage of (event) time, it decides which alerts
// fire and how each run's state changes. It is pure logic — no Kafka, no
// clock of its own (one is injected), single-goroutine — so that every rule
// of the processor (docs/architecture.md, "Processor") is unit-tested here:
//
//   - matching by tenant and alert type, conditions, inactive endpoints;
//   - duplicate suppression: a run's event type fires once (run state
//     remembers what it has seen);
//   - duration windows: per-partition event-time watermark, advanced with the
//     wall clock while the partition has no lag; a deadline
//     started_at + threshold fires once, when at or below the watermark,
//     unless a terminal event came first; rules created while runs are in
//     flight apply to them;
//   - grace-period tombstones for finished runs;
//   - per-rule rate limit and cooldown, counted when they suppress;
//   - Begin/Commit/Abort: every change of a batch is undone when its Kafka
//     transaction aborts.
//
// A partition may hold a million running runs, so a run's state is kept in
// a compact form (runstate.go: under 200 bytes per running run with its map
// entry, expiry and timer); a schemas.RunState is built only for the
// run-state record an Output carries, and read only by Assign on restore.
// Conditions are evaluated by one condition.Evaluator, reusing its VM.
//
// The processor package feeds it from Kafka and turns its outputs into
// records of one transaction.
package engine
