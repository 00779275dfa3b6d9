// Transaction shaping: what one batch's transaction carries. Only the last
// run-state write of each run is produced; a batch with nothing to produce
// does not get a transaction of its own, its offsets ride the next one.

package processor

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
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
	// settleWindow, settlePoll and settleMax shape the wait for the
	// previous transaction to complete before the next one produces
	// (awaitSettled). A transaction that ended more than settleWindow ago
	// is taken as complete; while the coordinator still reports it
	// preparing, it is asked again every settlePoll; past settleMax the
	// batch produces all the same. settleMax is above the broker's own
	// retry backoff (add.partitions.to.txn.retry.backoff.ms, 20 ms): by
	// then the broker's retry would have been no slower.
	settleWindow = 100 * time.Millisecond
	settlePoll   = time.Millisecond
	settleMax    = 25 * time.Millisecond
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

// awaitSettled starts waiting, in the background, until the transaction
// ended last (at p.endedAt) is complete on its coordinator, and returns
// the function to call before the batch's transaction: with produce true
// it waits for that (at most settleMax from now), with false (the batch
// is carried, no transaction) it stops the wait. The wait runs while the
// batch's tables are synced and its events matched, so when the
// transaction is complete by then it costs the batch nothing.
//
// Why: with transactions v2 the coordinator answers EndTxn before it has
// written the commit markers, and the first produce of the next
// transaction, if it comes before they are written, is held by the
// partition leader, which retries adding the partition to the
// transaction after add.partitions.to.txn.retry.backoff.ms (20 ms by
// default, Kafka 4.1) — no error reaches the client. In
// BenchmarkLiveLatency about one batch in twenty came that soon (a batch
// takes a few milliseconds) and its produce took 20–30 ms instead of 1–2,
// holding back its alerts and, the loop being sequential, every event
// that arrived meanwhile. Asking the coordinator (DescribeTransactions)
// every settlePoll until the transaction is no longer preparing turns
// that wait into the few milliseconds the markers take.
//
// Best effort: an error (an old broker, no DESCRIBE on the transactional
// id), ctx ending or settleMax passing ends the wait, and the produce is
// held by the broker as before. Exactly-once does not depend on it.
func (p *Processor) awaitSettled(ctx context.Context) (settled func(produce bool)) {
	if p.endedAt.IsZero() || time.Since(p.endedAt) > settleWindow || p.adm == nil || !p.settling.CompareAndSwap(false, true) {
		// Nothing ended lately, or the previous wait's last request is
		// still out (a slow broker): one asker at a time.
		return func(bool) {}
	}
	start := time.Now()
	// The session's admin client, taken now: the asker may outlive the
	// session by a request, and the next session replaces p.adm.
	adm := p.adm
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer p.settling.Store(false)
		defer close(done)
		// The requests are not cancelled: kgo gives up the connection of a
		// request cancelled while its answer is awaited, and that is the
		// connection the transaction's own requests (TxnOffsetCommit,
		// EndTxn) use. Only the batch's wait is bounded; the asker stops
		// after its request in flight.
		rctx := context.WithoutCancel(ctx)
		for !stop.Load() && p.preparing(rctx, adm) {
			time.Sleep(settlePoll)
		}
	}()
	return func(produce bool) {
		defer stop.Store(true)
		if !produce {
			return
		}
		timer := time.NewTimer(settleMax - time.Since(start))
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
		case <-ctx.Done():
		}
	}
}

// preparing reports whether the coordinator is still completing the
// processor's last transaction (writing its markers); false when it
// cannot tell.
func (p *Processor) preparing(ctx context.Context, adm *kadm.Client) bool {
	state, err := p.txnState(ctx, adm)
	if err != nil {
		p.log.Debug("transaction state not described; producing without waiting for the previous transaction", "err", err)
		return false
	}
	switch state {
	case "PrepareCommit", "PrepareAbort", "PrepareEpochFence":
		return true
	default:
		return false
	}
}

// txnState is the state of the processor's transactional id on its
// coordinator (kadm.DescribedTransaction.State), asked through adm.
func (p *Processor) txnState(ctx context.Context, adm *kadm.Client) (string, error) {
	described, err := adm.DescribeTransactions(ctx, p.cfg.TransactionalID)
	if err != nil {
		return "", fmt.Errorf("describe transaction: %w", err)
	}
	d, ok := described[p.cfg.TransactionalID]
	switch {
	case !ok:
		return "", fmt.Errorf("describe transaction: %s not in the answer", p.cfg.TransactionalID)
	case d.Err != nil:
		return "", fmt.Errorf("describe transaction: %w", d.Err)
	}
	return d.State, nil
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
