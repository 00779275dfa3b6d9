// Package condition compiles and evaluates the optional condition of an
// alert rule: an expr-lang expression over a typed view of the event
// (workflow.name, run.duration_ms, error.code, labels.env, ...). Compilation
// is strict (typed environment, boolean result, node and length limits, no
// non-deterministic builtins) so a replay decides the same. The control plane
// uses the same compiler to reject bad conditions with their position.
package condition
