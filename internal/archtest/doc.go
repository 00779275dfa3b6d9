// Package archtest checks the import graph against the layering rules of
// docs/architecture.md: every arrow points down.
//
//   - A service (controlplane, processor, dispatcher and their
//     sub-packages) does not import another service's packages.
//   - Nothing under internal/ imports a service.
//   - schemas and signature import no other package of this module:
//     receivers and every component import them, so they must bring nothing
//     with them.
//   - producer imports of this module only schemas, and outside it only the
//     standard library and franz-go: engines import it into their own
//     programs.
//
// Check applies the rules to a graph; arch_test.go runs it on the real one,
// read with `go list -deps -json`, so `go test ./...` (and `make test`)
// fails on a new upward or sideways import. Test imports count too.
package archtest
