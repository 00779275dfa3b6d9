package aggregate

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"

	"github.com/exospherehost/exo-alerts/schemas"
)

// SpecOf is the spec of an aggregate rule, stamped on its inputs by stage 1
// (AggregateInput.Spec): 16 hex characters of SHA-256 over what decides its
// windows and its condition (kind, event type, condition, window, threshold,
// ratio, min runs, group_by, duration threshold). Name, severity, endpoint,
// hold, repeat and max attempts are not part of it: changing them keeps the
// groups' state. Stage 2 ignores inputs of another spec (stale_spec) and
// resolves and drops the groups of a rule whose spec changed.
func SpecOf(r schemas.RuleRecord) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	part := func(s string) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	part(r.RuleKind())
	part(r.EventType)
	part(r.Condition)
	part(strconv.FormatInt(r.WindowMS, 10))
	part(strconv.Itoa(r.Threshold))
	part(strconv.Itoa(r.SuccessRatioBelowBP))
	part(strconv.Itoa(r.MinRuns))
	part(strconv.Itoa(len(r.GroupBy)))
	for _, g := range r.GroupBy {
		part(g)
	}
	part(strconv.FormatInt(r.DurationThresholdMS, 10))
	return hex.EncodeToString(h.Sum(nil)[:8])
}
