// Package check keeps deploy/compose.yaml consistent with the binary
// without Docker: its tests load the file with compose-go (what `docker
// compose config` uses: the Compose Specification's schema, anchors, merge
// keys, interpolation) and compare every exo-alerts service with a freshly
// built exo-alerts: its subcommand, its flags (the binary parses them), the
// variables it is given (ones that subcommand reads), the ports it listens
// on and publishes, the Prometheus jobs scraping it; and the Grafana
// provisioning with the dashboard file.
//
// It is a module of its own so that compose-go stays out of the product's
// go.mod.
package check
