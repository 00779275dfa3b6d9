package aggregate

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"time"
)

// GroupKey names the group of a rule with the given group_by values:
// "grp_" + 16 bytes of SHA-256 over the parts. Each part is length-prefixed,
// so no two lists of values share a key ("a\x00", "b" vs "a", "\x00b").
func GroupKey(tenant, rule string, values []string) string {
	buf := make([]byte, 0, 256)
	put := func(p string) {
		buf = binary.AppendUvarint(buf, uint64(len(p)))
		buf = append(buf, p...)
	}
	put(tenant)
	put(rule)
	for _, v := range values {
		put(v)
	}
	sum := sha256.Sum256(buf)
	var out [4 + 32]byte
	copy(out[:], "grp_")
	hex.Encode(out[4:], sum[:16])
	return string(out[:])
}

// IncidentID is the identity of one episode of a group, from its crossing to
// its resolve (PagerDuty's dedup_key). firingSince is the crossing input's
// event time (count) or the boundary (rate), so a replay makes the same id.
func IncidentID(tenant, rule, groupKey string, firingSince time.Time) string {
	return "inc_" + sum16(tenant, rule, groupKey, "aggregate", strconv.FormatInt(firingSince.UnixNano(), 10))
}

// FiringAlertID is the alert_id (webhook-id) of an episode's firing.
func FiringAlertID(incident string) string { return hashID(incident, "firing") }

// RepeatAlertID is the alert_id of the n-th repeat (n ≥ 1) of an episode.
func RepeatAlertID(incident string, n int) string {
	return hashID(incident, "repeat", strconv.Itoa(n))
}

// ResolvedAlertID is the alert_id of an episode's resolve.
func ResolvedAlertID(incident string) string { return hashID(incident, "resolved") }

// hashID is processor/engine's alert id: "alrt_" + 16 bytes of SHA-256 over
// the parts separated by a zero byte.
func hashID(parts ...string) string { return "alrt_" + sum16(parts...) }

func sum16(parts ...string) string {
	h := sha256.New()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
