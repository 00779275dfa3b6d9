//go:build race

package signature

// raceEnabled: the tests run with the race detector, whose sync.Pool drops
// a share of what is put back at random (so kept HMAC states are rebuilt).
const raceEnabled = true
