// Package aggregate is stage 2 of the processor for count and rate rules
// (docs/design/aggregate-alerts.md): it consumes the records of
// processor.aggregate-input — inputs keyed tenant/rule and watermark
// markers of every events partition — and keeps, per group of a rule, an
// event-time sliding window of 60 epoch-aligned buckets and the lifecycle
// inactive → firing → resolving → resolved that turns the window into
// firing, repeat and resolved deliveries.
//
// Engine (engine.go) holds the partitions assigned to the processor. Per
// partition: the newest marker of each source and the effective watermark
// E (their minimum less a delay; nothing time-driven happens until every
// source reported), the groups, a heap of the groups due at a boundary
// (heap.go), the counts of each rule (dropped by max_groups, late), and
// what the next Flush writes: the changelog processor.aggregate-state,
// which Assign restores exactly (state.go, encode.go), and the status
// records of aggregate-groups. Count rules fire on the arrival of the
// crossing input; rate rules and every resolve are decided at closed
// bucket boundaries under E. Deliveries carry the ids of ids.go and the
// payload of payload.go.
//
// It is pure logic, like processor/engine: no Kafka, no Postgres, no clock.
// Time comes only from the inputs (event times) and the markers. Decisions
// use integers only and visit groups in key order, so a replay of the same
// inputs, markers and rule versions decides the same, with the same ids.
//
// Every change of a batch can be undone (Begin/Commit/Abort, undo.go), so a
// Kafka transaction that aborts leaves no trace when the batch is processed
// again. Stats move at Commit only.
//
// It must not read the wall clock, log, or depend on the order of Go map
// iteration for anything it outputs.
package aggregate
