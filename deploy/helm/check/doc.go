// Package check keeps the Helm chart deploy/helm/exo-alerts honest. Its tests
// lint the chart as `helm lint --strict` does, render it as `helm template`
// does with the default values and with ci/full-values.yaml (every option
// on), decode every rendered manifest strictly into its Kubernetes API type
// (an unknown or misspelt field fails), and assert what an operator relies
// on: non-root containers with probes on the ports the binary listens on,
// distinct and stable processor transactional ids, the migration Job as a
// pre-install,pre-upgrade hook, Secrets referenced rather than inlined, and
// only flags and environment variables the binary reads.
//
// It is a Go module of its own so that Helm and the Kubernetes API types stay
// out of the product's go.mod; deploy/local/test.sh runs its tests after the
// product's.
package check
