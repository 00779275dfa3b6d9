// Package drill runs the fault drills of `make drill`: the real
// components, as subprocesses of the built exo-alerts binary, on a private
// PostgreSQL and Kafka started with deploy/local's scripts, under a steady
// stream of failed-run events, while it kills, stops and restarts them. A
// checker that knows every expected alert reads the receiver's POSTs and the
// deliveries topic and reports, per scenario, what was missing, duplicated by
// the processor or redelivered by the dispatcher.
//
// It talks to the components only through their CLI, HTTP API and Kafka: it
// must not import controlplane, processor or dispatcher (it tests the
// binary an operator runs, not the packages).
package drill
