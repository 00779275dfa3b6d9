package dispatcher

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/schemas"
)

// DefaultTiers are the default retry delays (EXO_RETRY_TIERS overrides them;
// docs/architecture.md, "Dispatcher").
var DefaultTiers = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute,
	30 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour}

// MaxRetryAfter caps how long a Retry-After answer can push a retry out.
const MaxRetryAfter = 24 * time.Hour

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
	if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
		if s > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter, true // and no overflow of time.Duration
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// nextTier picks the tier of the retry after failed attempt n (1-based) and
// when it is due: tier n-1 (the last one beyond), with jitter. A longer wait
// (Retry-After, or an open breaker), clamped between that tier's delay and
// MaxRetryAfter, makes it due later and moves it up to the first tier whose
// hold (maxHold) covers the wait: a record at the head of a tier partition
// holds back every record behind it, so none may wait in a tier much longer
// than the tier's own delay. A wait beyond the last tier's hold hops through
// that tier (holdAction).
func nextTier(tiers []time.Duration, n int, wait time.Duration, now time.Time) (int, time.Time) {
	idx := min(max(n-1, 0), len(tiers)-1)
	delay := jitter(tiers[idx])
	if wait > 0 {
		delay = max(delay, min(max(wait, tiers[idx]), MaxRetryAfter))
		for idx < len(tiers)-1 && maxHold(tiers[idx]) < delay {
			idx++
		}
	}
	return idx, now.Add(delay)
}

// maxHold is the longest a tier holds a record at the head of a partition:
// its delay plus the jitter.
func maxHold(tier time.Duration) time.Duration { return tier + tier/5 }

// What a tier consumer does with a record.
type holdVerdict int

const (
	holdDeliver holdVerdict = iota // due: attempt it now
	holdPause                      // pause the partition until the time given
	holdHop                        // due later than the tier holds a record: requeue it at the tail of the tier
)

// holdAction decides for a record of tier topic tier, due at nb and
// produced (to this tier) at produced. A record due within the tier's hold
// is waited for. One due later (a Retry-After beyond the last tier) waits
// its turn in the tier like a fresh record, then hops: it is produced again
// to the tail, so the records behind it are not held back for a day. A due
// time further from its production than any retry can ask (a forged or
// corrupt header) is not honoured.
func holdAction(nb, produced, now time.Time, tier time.Duration) (holdVerdict, time.Time) {
	hold := maxHold(tier)
	switch {
	case !nb.After(now), nb.Sub(produced) > MaxRetryAfter+hold:
		return holdDeliver, time.Time{}
	case nb.Sub(now) <= hold:
		return holdPause, nb
	case now.Sub(produced) >= tier-tier/5:
		return holdHop, time.Time{}
	}
	return holdPause, produced.Add(hold)
}

// notBefore reads the due time of a retry record (zero: due now).
func notBefore(r *kgo.Record) time.Time {
	ms, err := strconv.ParseInt(kafka.Header(r, schemas.HeaderNotBefore), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// attemptOf reads the attempt number a record is for (1 on the main topic).
func attemptOf(r *kgo.Record) int {
	v := kafka.Header(r, schemas.HeaderAttempt)
	if v == "" {
		return 1 // the main topic's records have none: no error to allocate
	}
	n, err := strconv.Atoi(v)
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
	if t := kafka.Header(r, schemas.HeaderOrigTopic); t != "" {
		return []string{schemas.HeaderOrigTopic, t, schemas.HeaderOrigPartition, kafka.Header(r, schemas.HeaderOrigPartition), schemas.HeaderOrigOffset, kafka.Header(r, schemas.HeaderOrigOffset)}
	}
	return []string{schemas.HeaderOrigTopic, r.Topic, schemas.HeaderOrigPartition, strconv.Itoa(int(r.Partition)), schemas.HeaderOrigOffset, strconv.FormatInt(r.Offset, 10)}
}

// holdUntilDue returns, in order, the records of a tier fetch to handle now:
// per partition, those due and those to hop (in hops), up to the first
// record to wait for; it rewinds the partition to that record, pauses it,
// and resumes it when the record comes due (holdAction).
func (d *Dispatcher) holdUntilDue(ctx context.Context, cl *kgo.Client, topic string, tierDelay time.Duration, fetches kgo.Fetches) ([]*kgo.Record, map[*kgo.Record]bool) {
	now := time.Now()
	var recs []*kgo.Record
	hops := map[*kgo.Record]bool{}
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		for _, r := range p.Records {
			verdict, until := holdAction(notBefore(r), r.Timestamp, now, tierDelay)
			if verdict != holdPause {
				recs = append(recs, r)
				hops[r] = verdict == holdHop
				continue
			}
			part := p.Partition
			cl.PauseFetchPartitions(map[string][]int32{topic: {part}})
			cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{topic: {part: {Epoch: -1, Offset: r.Offset}}})
			time.AfterFunc(until.Sub(now), func() {
				if ctx.Err() == nil {
					cl.ResumeFetchPartitions(map[string][]int32{topic: {part}})
				}
			})
			break
		}
	})
	return recs, hops
}
