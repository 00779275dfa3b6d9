// Lag and watermarks: which partitions have caught up with the events
// topic (only those let the wall clock advance their watermark), and the
// per-partition lag gauge.

package processor

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// refreshLag decides, at most every half second, which partitions have no
// lag: only those let the wall clock advance their watermark.
func (p *Processor) refreshLag(ctx context.Context, fetches kgo.Fetches) {
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if fp.Topic != p.cfg.Topics.Events {
			return
		}
		if n := len(fp.Records); n > 0 {
			p.caughtUp[fp.Partition] = fp.Records[n-1].Offset+1 >= fp.LastStableOffset
		}
	})
	if time.Since(p.lagAt) < 500*time.Millisecond {
		return
	}
	p.lagAt = time.Now()
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ends, err := p.adm.ListCommittedOffsets(lctx, p.cfg.Topics.Events)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		p.log.Debug("lag check failed; watermarks follow event time only", "err", err)
		for part := range p.caughtUp {
			p.caughtUp[part] = false
		}
		return
	}
	lags := make(map[int32]int64, len(p.next))
	for part, next := range p.next {
		end, ok := ends.Lookup(p.cfg.Topics.Events, part)
		if !ok {
			continue
		}
		pos := next
		if pos < 0 {
			pos = p.committedOffset(part)
		}
		p.caughtUp[part] = pos >= end.Offset
		lags[part] = end.Offset - pos
	}
	p.m.parts.setLags(lags)
}

// watermarks returns the event-time watermark of every assigned partition.
func (p *Processor) watermarks() map[int32]time.Time {
	out := make(map[int32]time.Time, len(p.next))
	for part := range p.next {
		if p.eng.Assigned(part) {
			out[part] = p.eng.Watermark(part)
		}
	}
	return out
}

// committedOffset is where the group resumes part: its committed offset, or
// 0 when none (consumption starts at the beginning).
func (p *Processor) committedOffset(part int32) int64 {
	if o, ok := p.client.CommittedOffsets()[p.cfg.Topics.Events][part]; ok && o.Offset >= 0 {
		return o.Offset
	}
	return 0
}
