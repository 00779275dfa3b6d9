//go:build race

package e2e_test

// raceEnabled: the tests run with the race detector (so does the binary
// they build).
const raceEnabled = true
