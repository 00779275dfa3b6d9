package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// consume delivers the records of topic (the main topic, or a retry tier
// with delay tierDelay; 0 for the main topic). Records are handed to
// per-endpoint lanes and finish in any order; an offset is committed once
// every record before it has its outcome records acknowledged by Kafka
// (at-least-once: a crash repeats at most the records in flight, with the
// same webhook-id). Outcome records are produced without waiting for their
// acknowledgement: the worker goes on to its endpoint's next record, and
// the acknowledgement (the promise) marks the record finished. A produce
// that fails finishes nothing: nothing past the record is committed, and
// the source stops with the error, so that the record is attempted again
// (by this process restarted, or the partition's next owner). In a tier, a
// partition whose head record is not due yet is rewound to it and paused
// until it is.
//
// Isolation: the source holds at most MaxInFlight records. When it stays
// full for shedAfter, it does not go on waiting — one slow endpoint's
// backlog would then hold back every endpoint — but sheds the longest
// endpoint queues to the next tier (deferBacklog), so the other endpoints'
// records keep coming. A backlog to endpoints that keep up frees room all
// the time and is never shed.
func (d *Dispatcher) consume(ctx context.Context, base []kgo.Opt, topic, group string, tierDelay time.Duration) error {
	tr := newTracker()
	var cl *kgo.Client
	commit := func(cctx context.Context) {
		offs := tr.committable()
		if len(offs) == 0 {
			return
		}
		m := map[int32]kgo.EpochOffset{}
		for p, o := range offs {
			m[p] = kgo.EpochOffset{Offset: o[0], Epoch: int32(o[1])} //nolint:gosec // G115: the epoch was an int32 when stored
		}
		cl.CommitOffsetsSync(cctx, map[string]map[int32]kgo.EpochOffset{topic: m}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
			if err != nil && cctx.Err() == nil {
				d.log.Warn("commit offsets", "topic", topic, "err", err)
			}
		})
	}
	var err error
	opts := append(slices.Clone(base),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		// A crashed dispatcher's partitions go to another member after the
		// session timeout (franz-go's default: 45 s without deliveries).
		kgo.SessionTimeout(d.cfg.SessionTimeout),
		kgo.HeartbeatInterval(max(d.cfg.SessionTimeout/10, 100*time.Millisecond)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(fetchWait(tierDelay)),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Outcome records wait up to outcomeLinger to share a produce
		// request with the records of other deliveries.
		kgo.ProducerLinger(outcomeLinger),
		// A rebalance waits until the records of a poll are tracked (and a
		// tier's rewinds set): a revoke between the two would track, and
		// later commit, a partition no longer ours.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(func(rctx context.Context, cl *kgo.Client, m map[string][]int32) {
			// Outcomes already produced are waited for (a little), so that
			// their records are committed rather than attempted again by
			// the next owner.
			fctx, cancel := context.WithTimeout(rctx, flushOnRevoke)
			_ = cl.Flush(fctx)
			cancel()
			commit(rctx) // what is finished; the rest is attempted again by the next owner
			tr.drop(m[topic])
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			tr.drop(m[topic])
		}),
	)
	if d.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(d.cfg.InstanceID))
	}
	cl, err = kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("dispatcher: consumer: %w", err)
	}
	if d.cfg.InstanceID != "" {
		// A static member does not leave its group when it closes (so that
		// a restart finds its partitions waiting): one that stops cleanly
		// leaves explicitly, or its partitions would wait for its session
		// to time out — or for ever, for as long as no rebalance comes.
		defer d.leaveStatic(base, cl, group)
	} else {
		defer cl.Close()
	}

	// Outcomes are produced under pctx, not ctx: the outcome of an attempt
	// that was made is still written when the source stops, so that its
	// record is committed and not attempted again. pctx ends when the stop
	// has waited stopFlush for them (a Kafka that does not answer).
	pctx, pcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer pcancel()
	// The source's own context: a source that stops on an error (a failed
	// produce) ends its attempts in flight at once, rather than working
	// through its queues first.
	ctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		// In-flight attempts end with ctx; their records are not committed.
		// What finished is, once Kafka has its outcome, so a clean stop
		// repeats nothing.
		stop()
		timer := time.AfterFunc(stopFlush, pcancel)
		defer timer.Stop()
		wg.Wait()
		fctx, fcancel := context.WithTimeout(pctx, stopFlush)
		_ = cl.Flush(fctx)
		fcancel()
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		commit(cctx)
	}()
	// As many workers per key as its lane has slots: a worker does not
	// wait for Kafka to acknowledge an outcome, so it is busy only while
	// it holds (or waits for) a slot.
	queues := &keyQueues{n: d.cfg.EndpointConcurrency, m: map[string]*keyQueue{}}
	fatal := make(chan error, 1)
	var shedding atomic.Int64 // shed records whose deferral is not done yet
	// finishWith produces the outcome records of k's record and returns
	// without waiting for them; the record is finished once Kafka has
	// acknowledged every one of them.
	finishWith := func(k ticket, outcome func() []*kgo.Record) {
		out := outcome()
		if len(out) == 0 {
			// Nothing to write: not attempted (ctx ended, or the partition
			// is no longer ours: finish ignores it then).
			if ctx.Err() == nil {
				k.finish()
			}
			d.inFlight.Dec()
			return
		}
		acks := &outcomeAcks{}
		acks.pending.Store(int32(len(out))) //nolint:gosec // G115: at most a few records
		for _, rec := range out {
			cl.Produce(pctx, rec, func(_ *kgo.Record, err error) {
				if err != nil {
					acks.failed.Store(true)
					if pctx.Err() == nil {
						select {
						case fatal <- fmt.Errorf("dispatcher: produce outcomes: %w", err):
						default:
						}
					}
				}
				if acks.done() {
					if !acks.failed.Load() {
						k.finish()
					}
					d.inFlight.Dec()
				}
			})
		}
	}
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	for {
		fullSince := time.Now()
		for tr.inflight() >= d.cfg.MaxInFlight {
			// A source that frees room as it goes (a backlog to fast
			// endpoints) waits; one that has stayed full for shedAfter is
			// held by slow endpoints, and sheds.
			if shedding.Load() == 0 && time.Since(fullSince) >= shedAfter {
				for _, q := range queues.shed(max(d.cfg.MaxInFlight/10, 1)) {
					shedding.Add(1)
					wg.Go(func() {
						defer shedding.Add(-1)
						finishWith(q.k, func() []*kgo.Record { return d.handle(ctx, nil, q.rec, deferBacklog, q.ahead, q.k.alive) })
					})
				}
			}
			select {
			case <-tr.wake:
			case <-ticker.C:
				commit(ctx)
			case err := <-fatal:
				return err
			case <-ctx.Done():
				return nil
			}
		}
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fetches := cl.PollRecords(pctx, 500)
		cancel()
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return nil
		}
		select {
		case err := <-fatal:
			cl.AllowRebalance()
			return err
		default:
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) {
			if errors.Is(err, kgo.ErrClientClosed) {
				ferr = err
			}
		})
		if ferr != nil {
			cl.AllowRebalance()
			return fmt.Errorf("dispatcher: fetch: %w", ferr)
		}
		var recs []*kgo.Record
		var hops map[*kgo.Record]bool
		if tierDelay > 0 {
			recs, hops = d.holdUntilDue(ctx, cl, topic, tierDelay, fetches)
		} else {
			recs = fetches.Records()
		}
		for _, r := range recs {
			k := tr.add(r.Partition, r.Offset, r.LeaderEpoch)
			d.inFlight.Inc()
			if hops[r] {
				// Due later than this tier holds a record: back to its tail.
				wg.Go(func() {
					finishWith(k, func() []*kgo.Record {
						if !k.alive() {
							return nil // the partition's next owner hops it
						}
						return []*kgo.Record{{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: r.Headers}}
					})
				})
				continue
			}
			queues.add(r, k, wg.Go, func() (func(*kgo.Record, ticket), func()) {
				// One clock per worker: it bounds the worker's attempts,
				// one after another, without a context made for each.
				clock := newAttemptClock(ctx, d.cfg.AttemptTimeout)
				return func(r *kgo.Record, k ticket) {
					finishWith(k, func() []*kgo.Record { return d.handle(ctx, clock, r, "", 0, k.alive) })
				}, clock.close
			})
		}
		cl.AllowRebalance()
		// What finished is committed every 200 ms, not after every poll: a
		// busy source polls dozens of times a second, and each commit is a
		// request the broker pays for and this loop waits for.
		select {
		case <-ticker.C:
			commit(ctx)
		default:
		}
	}
}

// leaveStatic closes cl and makes its static member leave group:
// its partitions go to the other members at once. It names its member id,
// so a newer process that took over the instance id (a restart that
// overlapped) is not removed: the broker answers FENCED_INSTANCE_ID.
func (d *Dispatcher) leaveStatic(base []kgo.Opt, cl *kgo.Client, group string) {
	memberID, _ := cl.GroupMetadata()
	cl.Close() // commits are done; the client does not leave by itself
	if memberID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	adm, err := kgo.NewClient(base...)
	if err != nil {
		return
	}
	defer adm.Close()
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = group
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID = memberID
	m.InstanceID = &d.cfg.InstanceID
	m.Reason = kmsg.StringPtr("dispatcher stopping")
	req.Members = append(req.Members, m)
	resp, err := req.RequestWith(ctx, adm)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
		for _, m := range resp.Members {
			if err == nil {
				err = kerr.ErrorForCode(m.ErrorCode)
			}
		}
	}
	if err != nil && !errors.Is(err, kerr.UnknownMemberID) { // unknown: already gone
		d.log.Warn("leave group as a static member: its partitions wait for the session timeout", "group", group,
			"instance_id", d.cfg.InstanceID, "err", err)
	}
}

// outcomeLinger is how long an outcome record (result, retry, DLQ) may
// wait for others to go out in the same produce request. Without it
// (linger 0, kafka.ClientOpts) a busy dispatcher sent a request for every
// few dozen outcomes, ~450 for 20,000 deliveries, and each request costs
// the broker far more CPU than its records: 10–30 µs of broker CPU per
// delivery in BenchmarkDispatcherThroughput, on the cores the dispatcher
// and the endpoints share. With 10 ms, ~100 requests. Nobody waits for
// these records but the commit of their delivery's offset (and the
// delivery history, 10 ms later at most): the attempt is made and the
// worker goes on, and a stop or revoke flushes what lingers.
const outcomeLinger = 10 * time.Millisecond

// fetchWait is how long a source's fetch waits on the broker for records
// when there are none (kgo.FetchMaxWait): 100 ms for the main topic, a
// tenth of the tier's delay for a tier, from 100 ms to 1 s. A fetch
// returns as soon as records come, whatever the wait; the wait only sets
// how often an idle source asks again, and how long a tier partition
// resumed when its head came due (holdUntilDue) may wait for the fetch in
// flight to end before its own starts (kgo does not cut it short). The
// eight default tiers asked ~80 times a second at 100 ms each, idle — the
// broker's CPU, on the machine the dispatcher shares with it — and now ~9
// times; a due record waits at most a tenth of its tier's delay more.
func fetchWait(tierDelay time.Duration) time.Duration {
	if tierDelay <= 0 {
		return 100 * time.Millisecond
	}
	return min(max(tierDelay/10, 100*time.Millisecond), time.Second)
}

// shedAfter is how long a source stays full before it sheds.
const shedAfter = time.Second

// stopFlush bounds how long a stopping source waits for Kafka to
// acknowledge the outcomes it produced; flushOnRevoke, how long a revoke
// waits for them before it commits (the rebalance waits meanwhile).
const (
	stopFlush     = 5 * time.Second
	flushOnRevoke = 5 * time.Second
)

// outcomeAcks counts the acknowledgements one record's outcome records
// are waiting for.
type outcomeAcks struct {
	pending atomic.Int32
	failed  atomic.Bool
}

// done counts one acknowledgement and reports whether it was the last.
func (a *outcomeAcks) done() bool { return a.pending.Add(-1) == 0 }

// keyQueues hands the records of one key (tenant/endpoint, the key of its
// lane) to at most n workers, in fetch order, so one endpoint's attempts
// start in the order its deliveries were queued. A goroutine per record
// reaches its lane in whatever order the scheduler runs it: with a backlog,
// alerts went out dozens of places from their queue order, and a
// partition's committable prefix stalled behind a head record still waiting
// for its turn, so a crash repeated most of what had been delivered.
type keyQueues struct {
	n  int
	mu sync.Mutex
	m  map[string]*keyQueue
}

type keyQueue struct {
	recs    []queued
	workers int
}

type queued struct {
	rec   *kgo.Record
	k     ticket
	ahead int // set by shed: the records of its key queued or running before it
}

// add queues r behind the earlier records of its key, and starts a worker
// (with start) if the key has fewer than n. The worker calls newWorker
// once, runs the records through the run it returns, and calls its done
// when it stops.
func (ks *keyQueues) add(r *kgo.Record, k ticket, start func(func()), newWorker func() (run func(*kgo.Record, ticket), done func())) {
	key := string(r.Key)
	ks.mu.Lock()
	q := ks.m[key]
	if q == nil {
		q = &keyQueue{}
		ks.m[key] = q
	}
	q.recs = append(q.recs, queued{rec: r, k: k})
	if q.workers >= ks.n {
		ks.mu.Unlock()
		return
	}
	q.workers++
	ks.mu.Unlock()
	start(func() {
		run, done := newWorker()
		defer done()
		for {
			ks.mu.Lock()
			if len(q.recs) == 0 {
				q.workers--
				if q.workers == 0 {
					delete(ks.m, key)
				}
				ks.mu.Unlock()
				return
			}
			next := q.recs[0]
			q.recs[0] = queued{}
			q.recs = q.recs[1:]
			ks.mu.Unlock()
			run(next.rec, next.k)
		}
	})
}

// shed takes up to n records off the longest queues, newest first, never
// the last waiting record of a key: the endpoints with the largest backlog
// give way, so that the source can fetch again for the others.
func (ks *keyQueues) shed(n int) []queued {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	qs := make([]*keyQueue, 0, len(ks.m))
	for _, q := range ks.m {
		if len(q.recs) > 1 {
			qs = append(qs, q)
		}
	}
	slices.SortFunc(qs, func(a, b *keyQueue) int { return len(b.recs) - len(a.recs) })
	var out []queued
	for _, q := range qs {
		for len(q.recs) > 1 && len(out) < n {
			last := len(q.recs) - 1
			q.recs[last].ahead = last + q.workers
			out = append(out, q.recs[last])
			q.recs[last] = queued{}
			q.recs = q.recs[:last]
		}
		if len(out) >= n {
			break
		}
	}
	return out
}
