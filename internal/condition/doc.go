// Package condition compiles and evaluates the optional condition of an
// alert rule: an expr-lang expression over a typed view of the event
// (workflow.name, run.duration_ms, error.code, labels.env, ...).
//
// Every condition runs on the processor's one stream for every tenant, so
// one rule must not be able to stall or crash it. Compilation is strict: a
// typed environment, a boolean result, length and node limits, and an
// allow-list of node kinds, operators and builtins (allow.go; no
// non-deterministic builtin, so a replay decides the same). Evaluation is
// charged against a budget of steps, bytes and list elements while it runs
// (budget.go), counted rather than timed so a replay decides the same; a
// condition over it is stopped with a *EvalError that the engine reports as
// a rule error. The control plane uses the same compiler to reject bad
// conditions with their position.
//
// It lives under internal/ because the processor and the control plane both
// use it. It must not import Kafka, the database, a clock or a service
// package.
package condition
