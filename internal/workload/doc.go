// Package workload builds and produces workflow events the way a workflow
// engine does (CloudEvents, structured or binary content mode), for the
// emit command, tests and benchmarks. It is not used by the product's
// components.
package workload
