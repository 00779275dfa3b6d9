//go:build race

package engine

// raceEnabled: the tests run with the race detector, whose sync.Pool drops
// a share of what is put back at random (encoding/json's encoder states, so
// a delivery's encoding allocates more).
const raceEnabled = true
