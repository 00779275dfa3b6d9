// Package aggregate is stage 2 of the processor for count and rate rules
// (docs/design/aggregate-alerts.md): per group of a rule, an event-time
// sliding window of 60 epoch-aligned buckets, and the lifecycle
// inactive → firing → resolving → resolved that turns the window into
// firings, repeats and resolves.
//
// It is pure logic, like processor/engine: no Kafka, no Postgres, no clock.
// Time comes only from the inputs (event times) and from the effective
// watermark E the caller passes in (the minimum of the per-source markers
// less the configured delay). Decisions use integers only, so a replay of
// the same inputs and watermarks decides the same, with the same ids.
//
// Every change of a batch can be undone (Begin/Commit/Abort), so a Kafka
// transaction that aborts leaves no trace when the batch is processed again.
//
// It must not read the wall clock, log, or depend on the order of Go map
// iteration for anything it outputs.
package aggregate
