package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// consume delivers the records of topic (the main topic, or a retry tier).
// Records are handed to per-endpoint lanes and finish in any order; an
// offset is committed once every record before it has its outcome records
// acknowledged by Kafka (at-least-once: a crash repeats at most the records
// in flight, with the same webhook-id). In a tier, a partition whose head
// record is not due yet is rewound to it and paused until it is.
func (d *Dispatcher) consume(ctx context.Context, base []kgo.Opt, topic, group string, tier bool) error {
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
	cl, err = kgo.NewClient(append(base,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.OnPartitionsRevoked(func(rctx context.Context, _ *kgo.Client, m map[string][]int32) {
			commit(rctx) // what is finished; the rest is attempted again by the next owner
			tr.drop(m[topic])
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			tr.drop(m[topic])
		}),
	)...)
	if err != nil {
		return fmt.Errorf("dispatcher: consumer: %w", err)
	}
	defer cl.Close()

	var wg sync.WaitGroup
	defer wg.Wait() // in-flight attempts end with ctx; their records are not committed
	// Twice the lane's slots: a worker keeps its record until Kafka has
	// acknowledged the outcome, and meanwhile another uses the slot.
	queues := &keyQueues{n: 2 * d.cfg.EndpointConcurrency, m: map[string]*keyQueue{}}
	fatal := make(chan error, 1)
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	for {
		for tr.inflight() >= d.cfg.MaxInFlight {
			select {
			case <-tr.wake:
			case <-ticker.C:
				commit(ctx)
			case <-ctx.Done():
				return nil
			}
		}
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fetches := cl.PollRecords(pctx, 500)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		select {
		case err := <-fatal:
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
			return fmt.Errorf("dispatcher: fetch: %w", ferr)
		}
		due := fetches
		if tier {
			due = d.holdUntilDue(ctx, cl, topic, fetches)
		}
		due.EachRecord(func(r *kgo.Record) {
			tr.add(r.Partition, r.Offset, r.LeaderEpoch)
			d.inFlight.Inc()
			queues.add(r, wg.Go, func(r *kgo.Record) {
				defer d.inFlight.Dec()
				out := d.handle(ctx, r)
				if ctx.Err() != nil {
					return
				}
				if err := cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
					if ctx.Err() == nil {
						select {
						case fatal <- fmt.Errorf("dispatcher: produce outcomes: %w", err):
						default:
						}
					}
					return
				}
				tr.finish(r.Partition, r.Offset)
			})
		})
		commit(ctx)
	}
}

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
	recs    []*kgo.Record
	workers int
}

// add queues r behind the earlier records of its key, and starts a worker
// (with start) running them through run if the key has fewer than n.
func (ks *keyQueues) add(r *kgo.Record, start func(func()), run func(*kgo.Record)) {
	key := string(r.Key)
	ks.mu.Lock()
	q := ks.m[key]
	if q == nil {
		q = &keyQueue{}
		ks.m[key] = q
	}
	q.recs = append(q.recs, r)
	if q.workers >= ks.n {
		ks.mu.Unlock()
		return
	}
	q.workers++
	ks.mu.Unlock()
	start(func() {
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
			q.recs[0] = nil
			q.recs = q.recs[1:]
			ks.mu.Unlock()
			run(next)
		}
	})
}
