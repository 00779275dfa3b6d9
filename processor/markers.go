// Watermark markers: stage 1 tells stage 2 how far event time has gone on
// each events partition it owns, so that stage 2's clock (the minimum over
// every source) moves only when every events partition has been read that
// far.

package processor

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/schemas"
)

// markerInterval is both the least a partition's watermark moves between
// two of its markers and the least time between two rounds of markers.
const markerInterval = time.Second

// marks is what the markers already sent say.
type marks struct {
	at   time.Time           // when the last round was made (wall clock)
	sent map[int32]time.Time // events partition -> the watermark of its last marker
}

// forget drops what was sent: after an aborted transaction, a revoke or a
// new session, markers are sent again at the next round.
func (m *marks) forget() {
	m.at = time.Time{}
	clear(m.sent)
}

// markers returns the markers due in this batch: at most once a second,
// while at least one aggregate rule is active, for each assigned events
// partition whose watermark moved at least a second since its last marker,
// one marker to every partition of processor.aggregate-input. The watermark
// is the engine's (event time, and the wall clock once the partition has no
// lag), so idle partitions keep reporting.
func (p *Processor) markers(now time.Time) []*kgo.Record {
	if p.topo.inputs == 0 || p.rules.AggregateCount() == 0 || now.Sub(p.marks.at) < markerInterval {
		return nil
	}
	parts := make([]int32, 0, len(p.next))
	for part := range p.next {
		if p.eng.Assigned(part) {
			parts = append(parts, part)
		}
	}
	slices.Sort(parts)
	var out []*kgo.Record
	for _, part := range parts {
		wm := p.eng.Watermark(part)
		if wm.IsZero() {
			continue // no event and not caught up yet: nothing to say
		}
		if last, ok := p.marks.sent[part]; ok && wm.Sub(last) < markerInterval {
			continue
		}
		src := part
		value, _ := json.Marshal(schemas.AggregateInput{Kind: schemas.AggregateInputKindWatermark, SourcePartition: &src, Watermark: wm.UTC()}) // plain struct
		key := []byte(schemas.WatermarkKeyPrefix + strconv.Itoa(int(part)))
		for ip := range p.topo.inputs {
			out = append(out, &kgo.Record{Topic: p.cfg.Topics.AggregateInput, Key: key, Value: value, Partition: ip})
		}
		if p.marks.sent == nil {
			p.marks.sent = map[int32]time.Time{}
		}
		p.marks.sent[part] = wm
	}
	p.marks.at = now
	return out
}
