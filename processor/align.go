// Watermark alignment: while aggregate rules exist, the events partitions
// this instance replays are kept close together in event time, so that the
// inputs of one group, which come from every events partition, reach stage
// 2 in roughly event-time order instead of tens of minutes apart (a group's
// window is a ring of 60 buckets behind its newest input: an input further
// behind is dropped as late).

package processor

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// alignSkew is how far in event time a partition that is behind may
	// run ahead of the slowest one that is behind, while aggregate rules
	// exist: half the smallest window (1 minute).
	alignSkew = 30 * time.Second
	// alignPartBytes caps each partition's share of a fetch while aggregate
	// rules exist (kgo's default is 1 MiB, 2,000 events or more): one poll
	// then moves a partition a little, not tens of minutes, in a backlog.
	alignPartBytes    = 64 << 10
	defaultPartBytes  = 1 << 20
	defaultFetchBytes = 50 << 20
)

// align pauses the events partitions that are behind (not caught up) and
// more than alignSkew ahead of the slowest such partition, and resumes the
// others; caught-up partitions are never paused, so live traffic is not
// held back by a replay. Without aggregate rules nothing is paused and
// fetches are kgo's default size. Paused partitions' buffered records are
// fetched again on resume (kgo), so nothing is skipped.
func (p *Processor) align(cl *kgo.Client) {
	aggregates := p.rules.AggregateCount() > 0
	if aggregates != p.aligning {
		p.aligning = aggregates
		if aggregates {
			cl.UpdateFetchMaxBytes(defaultFetchBytes, alignPartBytes)
		} else {
			cl.UpdateFetchMaxBytes(defaultFetchBytes, defaultPartBytes)
		}
	}
	want := map[int32]bool{}
	if aggregates {
		var slowest time.Time
		found := false
		for part := range p.next {
			if !p.eng.Assigned(part) || p.caughtUp[part] {
				continue
			}
			if wm := p.eng.Watermark(part); !found || wm.Before(slowest) {
				slowest, found = wm, true
			}
		}
		for part := range p.next {
			if found && p.eng.Assigned(part) && !p.caughtUp[part] && p.eng.Watermark(part).Sub(slowest) > alignSkew {
				want[part] = true
			}
		}
	}
	var pause, resume []int32
	for part := range want {
		if !p.paused[part] {
			pause = append(pause, part)
		}
	}
	for part := range p.paused {
		if !want[part] {
			resume = append(resume, part)
		}
	}
	if len(pause) > 0 {
		slices.Sort(pause)
		cl.PauseFetchPartitions(map[string][]int32{p.cfg.Topics.Events: pause})
	}
	if len(resume) > 0 {
		slices.Sort(resume)
		cl.ResumeFetchPartitions(map[string][]int32{p.cfg.Topics.Events: resume})
	}
	p.paused = want
}

// byEventTime reorders a batch's event records by event time across
// partitions, keeping each partition's records in offset order (a merge of
// the partitions' sequences, the record whose event is earliest first; an
// undecodable one counts as the earliest): the partitions are independent
// in stage 1, but the inputs they make for one group reach stage 2 in the
// order they are made, and a poll holds whole stretches of each partition,
// minutes of event time apart. Other records keep their place after the
// events.
func (p *Processor) byEventTime(records []*kgo.Record, decoded []decodedEvent) ([]*kgo.Record, []decodedEvent) {
	queues := map[int32][]int{}
	var parts []int32
	var others []int
	for i, r := range records {
		if r.Topic != p.cfg.Topics.Events {
			others = append(others, i)
			continue
		}
		if _, ok := queues[r.Partition]; !ok {
			parts = append(parts, r.Partition)
		}
		queues[r.Partition] = append(queues[r.Partition], i)
	}
	if len(parts) < 2 {
		return records, decoded
	}
	slices.Sort(parts)
	at := func(i int) time.Time {
		if d := decoded[i]; d.err == nil && d.ev != nil {
			return d.ev.Time
		}
		return time.Time{}
	}
	order := make([]int, 0, len(records))
	for {
		best := int32(-1)
		for _, part := range parts {
			q := queues[part]
			if len(q) > 0 && (best < 0 || at(q[0]).Before(at(queues[best][0]))) {
				best = part
			}
		}
		if best < 0 {
			break
		}
		order = append(order, queues[best][0])
		queues[best] = queues[best][1:]
	}
	order = append(order, others...)
	outR := make([]*kgo.Record, len(order))
	outD := make([]decodedEvent, len(order))
	for j, i := range order {
		outR[j], outD[j] = records[i], decoded[i]
	}
	return outR, outD
}
