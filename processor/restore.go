// Partition restore: the group's assign and revoke callbacks are queued and
// applied between batches; an assigned events partition's run state is
// rebuilt from the run-state changelog, an assigned aggregate-input
// partition's groups from the aggregate-state changelog.

package processor

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/schemas"
)

// tp is a partition of one of the topics the session consumes:
// workflow-events (stage 1) or processor.aggregate-input (stage 2).
type tp struct {
	topic string
	part  int32
}

type rebalance struct {
	assign bool
	parts  []tp
}

// queueRebalance queues what a group callback reported, events partitions
// first (a batch's markers and inputs come from stage 1).
func (p *Processor) queueRebalance(assign bool, m map[string][]int32) {
	var parts []tp
	for _, topic := range []string{p.cfg.Topics.Events, p.cfg.Topics.AggregateInput} {
		for _, part := range m[topic] {
			parts = append(parts, tp{topic, part})
		}
	}
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
		for _, at := range rb.parts {
			if at.topic != p.cfg.Topics.Events {
				if err := p.rebalanceAggregate(ctx, rb.assign, at); err != nil {
					return err
				}
				continue
			}
			part := at.part
			if !rb.assign {
				p.eng.Revoke(part)
				delete(p.next, part)
				delete(p.caughtUp, part)
				delete(p.marks.sent, part)
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
	states, err := restore(ctx, p, tp{p.cfg.Topics.RunState, part}, decodeRunState)
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

// restore reads partition part of the changelog topic to its end and
// returns the last value of every key still present (a tombstone removes
// its key), decoded, in offset order. A value that does not decode is
// logged and skipped.
//
// The end is the high watermark, not the last stable offset: the previous
// owner's last transaction may be decided but not yet marked on this
// partition (the coordinator writes the markers after EndTransaction
// returns), and its last stable offset would then stop the restore before
// state that is committed. Reading read_committed to the high watermark
// waits for that marker instead (or, for a producer that died inside a
// transaction, for the broker to abort it after the transaction timeout).
func restore[T any](ctx context.Context, p *Processor, at tp, decode func(r *kgo.Record) (T, error)) ([]T, error) {
	topic, part := at.topic, at.part
	ends, err := p.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("processor: restore %s partition %d: end offsets: %w", topic, part, err)
	}
	end, _ := ends.Lookup(topic, part)
	starts, err := p.adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("processor: restore %s partition %d: start offsets: %w", topic, part, err)
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
	type kept struct {
		off int64
		v   T
	}
	byKey := map[string]kept{}
	for {
		fetches := cl.PollFetches(rctx)
		if err := rctx.Err(); err != nil {
			return nil, fmt.Errorf("processor: restore %s partition %d: %w", topic, part, err)
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
			v, err := decode(r)
			if err != nil {
				p.log.Error("undecodable changelog record skipped", "topic", topic, "partition", part, "offset", r.Offset, "err", err)
				continue
			}
			byKey[string(r.Key)] = kept{r.Offset, v}
		}
		if done {
			break
		}
	}
	all := make([]kept, 0, len(byKey))
	for _, k := range byKey {
		all = append(all, k)
	}
	slices.SortFunc(all, func(a, b kept) int { return cmp.Compare(a.off, b.off) })
	out := make([]T, len(all))
	for i, k := range all {
		out[i] = k.v
	}
	return out, nil
}

func decodeRunState(r *kgo.Record) (schemas.RunState, error) {
	var st schemas.RunState
	err := json.Unmarshal(r.Value, &st)
	return st, err
}
