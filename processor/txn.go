// Transaction shaping: what one batch's transaction carries. Only the last
// run-state write of each run is produced; a batch with nothing to produce
// does not get a transaction of its own, its offsets ride the next one.

package processor

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Transaction timing (docs/architecture.md, "Transaction timing").
const (
	// concurrentTxnBackoff is how long the client waits before asking
	// again when the broker answers CONCURRENT_TRANSACTIONS: with
	// transactions v2 (KIP-890), the coordinator completes a committed
	// transaction (writes its markers) after answering EndTxn, and the
	// first produce of the next transaction is refused until it has. On a
	// healthy broker that takes a few milliseconds; kgo's default backoff
	// (20 ms) then adds up to 20 ms to every batch that follows a commit.
	concurrentTxnBackoff = 2 * time.Millisecond
	// metadataMinAge is the least time between two metadata refreshes of
	// the processor's client (kgo's default: 5 s). With transactions v2
	// the first produce of a transaction is what the broker refuses with
	// CONCURRENT_TRANSACTIONS while it completes the previous one, and kgo
	// retries a refused produce only after a metadata refresh: with the
	// default, a transaction that came too soon after a commit waited up
	// to 5 s (3 s seen in a debug log of BenchmarkLiveLatency, on a busy
	// broker), holding every alert of its batch back. A refresh is one
	// small request; failing refreshes back off on their own (kgo's retry
	// backoff, 250 ms to 5 s), so an outage does not make them frequent.
	metadataMinAge = 50 * time.Millisecond
	// maxCarry bounds how long the offsets of batches with nothing to
	// produce wait for a transaction that produces: past it they are
	// committed in a transaction of their own. Since such a transaction
	// is the first after at least maxCarry without one, the broker has
	// completed the previous one and does not refuse it.
	maxCarry = 500 * time.Millisecond
	// minCarry is the least time the offsets wait when the loop is idle
	// (a poll returned nothing) before they are committed alone, for the
	// same reason.
	minCarry = 50 * time.Millisecond
)

// carried is the batches processed since the last transaction that had
// nothing to produce (every event a duplicate or of a type not alerted
// on): their effects on the engine are in memory (none is persisted: a
// duplicate changes no run state), their offsets are committed by the
// next transaction, and their event counts (Processor.counts) reach the
// metrics when it commits.
//
// A transaction of only offsets, begun right after a commit, would be
// refused by the broker (CONCURRENT_TRANSACTIONS, which kgo's
// GroupTransactSession.End treats as a reason to abort, not to retry) and
// its batch processed again; a replay of runs already seen did that for
// most of its batches.
type carried struct {
	// first is the first offset of each events partition in the carried
	// batches: where the partition resumes if the transaction that was to
	// commit them aborts.
	first map[int32]int64
	// since is when the first carried batch was processed (zero: none).
	since time.Time
}

// pending reports whether offsets are carried.
func (c *carried) pending() bool { return !c.since.IsZero() }

// add carries a batch whose first offsets per events partition are first.
func (c *carried) add(first map[int32]int64, now time.Time) {
	if c.since.IsZero() {
		c.since = now
	}
	if c.first == nil {
		c.first = make(map[int32]int64, len(first))
	}
	for part, off := range first {
		if _, ok := c.first[part]; !ok {
			c.first[part] = off
		}
	}
}

// due reports whether the carried offsets must be committed now, alone:
// they have waited maxCarry, or minCarry and the loop is idle.
func (c *carried) due(now time.Time, idle bool) bool {
	if !c.pending() {
		return false
	}
	age := now.Sub(c.since)
	return age >= maxCarry || (idle && age >= minCarry)
}

// reset forgets the carried batches: their offsets are committed, or the
// session is over.
func (c *carried) reset() {
	c.since = time.Time{}
	clear(c.first)
}

// commitCarried commits the carried offsets in a transaction of their
// own as the session ends (ctx ended, nothing polled left unprocessed), so
// that a restart does not read those events again. Best effort: offsets
// left uncommitted only make the next session read duplicates again.
func (p *Processor) commitCarried(ctx context.Context, sess *kgo.GroupTransactSession) {
	if !p.carry.pending() {
		return
	}
	defer p.carry.reset()
	committed, err := p.transact(ctx, sess, nil, nil)
	switch {
	case err != nil:
		p.log.Debug("carried offsets not committed at the end of the session; their events are read again", "err", err)
	case committed:
		p.flushCounts()
		p.m.txns.WithLabelValues("committed").Inc()
	default:
		p.m.txns.WithLabelValues("aborted").Inc()
	}
}

// stateKey is a run-state record's identity in the changelog.
type stateKey struct {
	part int32
	key  string
}

// keepLastStates drops every run-state record of out but the last one of
// its run (partition and key), tombstones included, keeping from[i] with
// out[i]; the order of what is kept does not change. The engine writes a
// run's state at each of its events, so a run that starts and ends in one
// batch would write it twice; inside one transaction only the last write
// is ever read (restore replays the changelog in order, compaction keeps
// the last), so the earlier ones are only cost, on the broker and at every
// restore.
func (p *Processor) keepLastStates(out []*kgo.Record, from []eventAt) ([]*kgo.Record, []eventAt) {
	topic := p.cfg.Topics.RunState
	states := 0
	for _, r := range out {
		if r.Topic == topic {
			states++
		}
	}
	if states < 2 {
		return out, from
	}
	if p.stateSeen == nil {
		p.stateSeen = make(map[stateKey]struct{}, states)
	}
	defer clear(p.stateSeen)
	// Backwards, so that the first write of a run met is its last; kept
	// records move to the end of out.
	w := len(out)
	for i := len(out) - 1; i >= 0; i-- {
		r := out[i]
		if r.Topic == topic {
			if _, later := p.stateSeen[stateKey{r.Partition, string(r.Key)}]; later {
				continue
			}
			p.stateSeen[stateKey{r.Partition, string(r.Key)}] = struct{}{}
		}
		w--
		out[w], from[w] = r, from[i]
	}
	return out[w:], from[w:]
}
