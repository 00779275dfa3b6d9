package dispatcher

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
)

// DefaultTiers are the retry delays of design §5.
var DefaultTiers = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute,
	30 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour}

// MaxRetryAfter caps how long a Retry-After answer can push a retry out.
const MaxRetryAfter = 24 * time.Hour

// Retry record headers.
const (
	HeaderAttempt    = "exo-attempt"    // the number of the next attempt
	HeaderNotBefore  = "exo-not-before" // unix milliseconds
	HeaderLastError  = "exo-last-error" // class and message of the last failure
	HeaderOrigTopic  = "exo-original-topic"
	HeaderOrigPart   = "exo-original-partition"
	HeaderOrigOffset = "exo-original-offset"
	HeaderErrorClass = "exo-last-error-class"
)

// TierName names a tier topic after its delay: 5s, 30s, 2m, 1h.
func TierName(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d >= time.Second && d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	default:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
}

// TierTopic is the topic of the retry tier with delay d.
func TierTopic(t kafka.Topics, d time.Duration) string {
	return t.Deliveries + ".retry." + TierName(d)
}

// jitter spreads d by ±20%.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64())) //nolint:gosec // G404: jitter needs no cryptographic randomness
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// nextTier picks the tier of the retry after failed attempt n (1-based) and
// when it is due: tier n-1 (the last one beyond), with jitter; a Retry-After
// pushes it later (clamped between the tier's delay and MaxRetryAfter) and
// moves it to the highest tier whose delay it reaches, so it does not hold
// back the head of a short tier.
func nextTier(tiers []time.Duration, n int, retryAfter time.Duration, now time.Time) (int, time.Time) {
	idx := min(max(n-1, 0), len(tiers)-1)
	delay := jitter(tiers[idx])
	if retryAfter > 0 {
		ra := min(max(retryAfter, tiers[idx]), MaxRetryAfter)
		if ra > delay {
			delay = ra
		}
		for i := idx + 1; i < len(tiers) && tiers[i] <= delay; i++ {
			idx = i
		}
	}
	return idx, now.Add(delay)
}

// notBefore reads the due time of a retry record (zero: due now).
func notBefore(r *kgo.Record) time.Time {
	ms, err := strconv.ParseInt(kafka.Header(r, HeaderNotBefore), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// attemptOf reads the attempt number a record is for (1 on the main topic).
func attemptOf(r *kgo.Record) int {
	n, err := strconv.Atoi(kafka.Header(r, HeaderAttempt))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// withHeaders returns r's headers with the named ones replaced.
func withHeaders(r *kgo.Record, kv ...string) []kgo.RecordHeader {
	set := map[string]bool{}
	for i := 0; i+1 < len(kv); i += 2 {
		set[kv[i]] = true
	}
	var out []kgo.RecordHeader
	for _, h := range r.Headers {
		if !set[h.Key] {
			out = append(out, h)
		}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return out
}

// origin returns the original topic/partition/offset headers of r: kept
// from an earlier retry, else r's own.
func origin(r *kgo.Record) []string {
	if t := kafka.Header(r, HeaderOrigTopic); t != "" {
		return []string{HeaderOrigTopic, t, HeaderOrigPart, kafka.Header(r, HeaderOrigPart), HeaderOrigOffset, kafka.Header(r, HeaderOrigOffset)}
	}
	return []string{HeaderOrigTopic, r.Topic, HeaderOrigPart, strconv.Itoa(int(r.Partition)), HeaderOrigOffset, strconv.FormatInt(r.Offset, 10)}
}
