package processor

import (
	"encoding/json"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/ktable"
	"github.com/exospherehost/exo-alerts/processor/engine"
	"github.com/exospherehost/exo-alerts/schemas"
)

type fixedClock struct{ now time.Time }

func (c *fixedClock) Now() time.Time { return c.now }

type noEndpoints struct{}

func (noEndpoints) Active(string, string) bool { return false }

// Markers: none without an aggregate rule; with one, at most one round a
// second, one marker per events partition whose watermark moved at least a
// second since its last, sent to every input partition, keyed ~wm/<source>;
// none for a partition without a watermark yet.
func TestMarkers(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	clock := &fixedClock{now: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)}
	p := &Processor{cfg: Config{Topics: kafka.NewTopics("t.")}, log: log, rules: newRuleIndex(log), next: map[int32]int64{}, topo: topology{events: 3, inputs: 4}}
	p.eng = engine.New(engine.Config{Clock: clock}, p.rules, noEndpoints{})
	for part := range int32(3) {
		p.eng.Assign(part, nil)
		p.next[part] = 0
	}
	p.eng.Tick(0, true) // partitions 0 and 1 caught up: watermark = wall clock
	p.eng.Tick(1, true)
	start := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC) // the loop's pacing clock

	if recs := p.markers(start); len(recs) != 0 {
		t.Fatalf("%d markers without an aggregate rule", len(recs))
	}
	r := schemas.RuleRecord{TenantID: "acme", ID: "c", IsActive: true, Kind: schemas.RuleKindCount, EventType: schemas.TypeRunFailed, WindowMS: 60_000, Threshold: 3}
	p.rules.apply(ktable.Change[schemas.RuleRecord]{Key: "acme/c", Value: &r})

	recs := p.markers(start)
	if len(recs) != 2*4 {
		t.Fatalf("%d markers, want 8: partitions 0 and 1 (2 has no watermark) to each of 4 input partitions", len(recs))
	}
	seen := map[string]map[int32]bool{}
	for _, rec := range recs {
		var in schemas.AggregateInput
		if err := json.Unmarshal(rec.Value, &in); err != nil || schemas.Validate(schemas.KindAggregateInput, rec.Value) != nil {
			t.Fatalf("marker %s: %v", rec.Value, err)
		}
		if rec.Topic != p.cfg.Topics.AggregateInput || in.Kind != schemas.AggregateInputKindWatermark || in.SourcePartition == nil ||
			string(rec.Key) != schemas.WatermarkKeyPrefix+strconv.Itoa(int(*in.SourcePartition)) || !in.Watermark.Equal(clock.now) {
			t.Fatalf("marker key %q topic %s value %s", rec.Key, rec.Topic, rec.Value)
		}
		if seen[string(rec.Key)] == nil {
			seen[string(rec.Key)] = map[int32]bool{}
		}
		seen[string(rec.Key)][rec.Partition] = true
	}
	for key, parts := range seen {
		if len(parts) != 4 {
			t.Fatalf("marker %s on partitions %v, want all 4", key, parts)
		}
	}

	clock.now = clock.now.Add(5 * time.Second)
	p.eng.Tick(0, true) // partition 0 moves 5 s, partition 1 stays
	if recs := p.markers(start.Add(500 * time.Millisecond)); len(recs) != 0 {
		t.Fatalf("%d markers half a second after the last round", len(recs))
	}
	recs = p.markers(start.Add(time.Second))
	if len(recs) != 4 || string(recs[0].Key) != "~wm/0" {
		t.Fatalf("%d markers (first %q), want partition 0's alone: 1 did not move", len(recs), recs[0].Key)
	}
	p.marks.forget() // an aborted transaction
	if recs := p.markers(start.Add(1100 * time.Millisecond)); len(recs) != 8 {
		t.Fatalf("%d markers after an abort, want both partitions again", len(recs))
	}
}
