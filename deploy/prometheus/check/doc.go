// Package check runs promtool, built from the Go module proxy at the
// version this module pins, on deploy/prometheus.
package check
