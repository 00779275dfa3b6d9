// Partition restore: the group's assign and revoke callbacks are queued and
// applied between batches; an assigned partition's run state is rebuilt
// from the run-state changelog.

package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/schemas"
)

type rebalance struct {
	assign bool
	parts  []int32
}

func (p *Processor) queueRebalance(assign bool, parts []int32) {
	if len(parts) == 0 {
		return
	}
	p.rbMu.Lock()
	p.rbQueue = append(p.rbQueue, rebalance{assign: assign, parts: parts})
	p.rbMu.Unlock()
}

// applyRebalances restores newly assigned partitions and drops revoked ones,
// in the order the group reported them.
func (p *Processor) applyRebalances(ctx context.Context) error {
	p.rbMu.Lock()
	q := p.rbQueue
	p.rbQueue = nil
	p.rbMu.Unlock()
	for _, rb := range q {
		for _, part := range rb.parts {
			if !rb.assign {
				p.eng.Revoke(part)
				delete(p.next, part)
				delete(p.caughtUp, part)
				continue
			}
			if p.eng.Assigned(part) {
				continue // already restored when its records arrived first
			}
			if err := p.assign(ctx, part); err != nil {
				return err
			}
		}
	}
	return nil
}

// assign rebuilds partition part's run state from the changelog.
func (p *Processor) assign(ctx context.Context, part int32) error {
	start := time.Now()
	states, err := p.restore(ctx, part)
	if err != nil {
		return err
	}
	p.eng.Assign(part, states)
	p.next[part] = -1 // unknown until a record or a lag check says
	p.caughtUp[part] = false
	p.lagAt = time.Time{}
	p.log.Info("partition assigned; run state restored", "partition", part, "runs", len(states), "took_ms", time.Since(start).Milliseconds())
	return nil
}

// restore reads partition part of the run-state changelog to its end.
//
// The end is the high watermark, not the last stable offset: the previous
// owner's last transaction may be decided but not yet marked on this
// partition (the coordinator writes the markers after EndTransaction
// returns), and its last stable offset would then stop the restore before
// state that is committed. Reading read_committed to the high watermark
// waits for that marker instead (or, for a producer that died inside a
// transaction, for the broker to abort it after the transaction timeout).
func (p *Processor) restore(ctx context.Context, part int32) ([]schemas.RunState, error) {
	topic := p.cfg.Topics.RunState
	ends, err := p.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("processor: restore partition %d: end offsets: %w", part, err)
	}
	end, _ := ends.Lookup(topic, part)
	starts, err := p.adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("processor: restore partition %d: start offsets: %w", part, err)
	}
	begin, _ := starts.Lookup(topic, part)
	if end.Offset <= begin.Offset {
		return nil, nil
	}
	cl, err := kgo.NewClient(append(p.base,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return nil, fmt.Errorf("processor: restore client: %w", err)
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	byKey := map[string]schemas.RunState{}
	for {
		fetches := cl.PollFetches(rctx)
		if err := rctx.Err(); err != nil {
			return nil, fmt.Errorf("processor: restore partition %d: %w", part, err)
		}
		done := false
		for _, r := range fetches.Records() {
			if r.Offset+1 >= end.Offset {
				done = true
			}
			if r.Attrs.IsControl() {
				continue
			}
			if r.Value == nil {
				delete(byKey, string(r.Key))
				continue
			}
			var st schemas.RunState
			if err := json.Unmarshal(r.Value, &st); err != nil {
				p.log.Error("undecodable run state skipped", "partition", part, "offset", r.Offset, "err", err)
				continue
			}
			byKey[string(r.Key)] = st
		}
		if done {
			break
		}
	}
	out := make([]schemas.RunState, 0, len(byKey))
	for _, st := range byKey {
		out = append(out, st)
	}
	return out, nil
}
