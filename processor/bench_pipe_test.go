package processor_test

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/schemas"
)

// benchPipeBatch is the processor's batch cap (maxBatch in processor.go):
// the pipe polls at most this many records per transaction.
const benchPipeBatch = 2000

// benchCPU returns the CPU time (user + system) this process has used so
// far. The broker is another process, so a difference of two readings is
// the benchmark process's own CPU: the processor's, or the pipe's, plus the
// benchmark's polling of a metric every 5 ms.
func benchCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchOutput is what the processor wrote to one topic: committed records
// and their bytes (key, value and headers).
type benchOutput struct {
	records int
	bytes   int64
	// duration is how many of the records are duration alerts (by their
	// event-type header; deliveries only).
	duration int
}

// benchCountOutput reads topic's committed records up to its high
// watermark (read_committed waits there for the last markers), counting
// them, their bytes and the duration alerts among them.
func benchCountOutput(ctx context.Context, b *testing.B, brokers []string, adm *kadm.Client, topic string) benchOutput {
	b.Helper()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		b.Fatal(err)
	}
	pending := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			pending[o.Partition] = o.Offset
		}
	})
	cl, err := kgo.NewClient(append(kafka.ClientOpts(brokers, nil),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	var out benchOutput
	for len(pending) > 0 {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			b.Fatalf("read %d records of %s; partitions not read to their end: %v", out.records, topic, pending)
		}
		f.EachRecord(func(r *kgo.Record) {
			if end, ok := pending[r.Partition]; ok && r.Offset+1 >= end {
				delete(pending, r.Partition)
			}
			if r.Offset >= ends[topic][r.Partition].Offset || r.Attrs.IsControl() {
				return
			}
			out.records++
			if kafka.Header(r, schemas.HeaderEventType) == schemas.TypeRunDurationExceeded {
				out.duration++
			}
			out.bytes += int64(len(r.Key) + len(r.Value))
			for _, h := range r.Headers {
				out.bytes += int64(len(h.Key) + len(h.Value))
			}
		})
	}
	return out
}

// benchPipeShape is what the pipe writes per event, taken from the
// processor's output in the same op.
type benchPipeShape struct {
	deliveriesPerEvent, statesPerEvent float64
	deliveryBytes, stateBytes          int // per record: key + value
}

func benchShape(deliveries, states benchOutput) benchPipeShape {
	per := func(o benchOutput) (float64, int) {
		if o.records == 0 {
			return 0, 0
		}
		return float64(o.records) / benchEvents, int((o.bytes + int64(o.records)/2) / int64(o.records))
	}
	var s benchPipeShape
	s.deliveriesPerEvent, s.deliveryBytes = per(deliveries)
	s.statesPerEvent, s.stateBytes = per(states)
	return s
}

// benchPipe is the processor's realistic limit: a raw transactional
// consume→produce pipe (read_committed, a GroupTransactSession, batches of at
// most benchPipeBatch records, the processor's client options) that reads
// the events topic with a fresh group and, per event, writes shape's share of
// delivery and run-state records of shape's sizes, committing each batch's
// offsets with its output. It returns the events committed in the measured
// window (after the first batch is polled, which is not counted), the
// window's length and the process's CPU in it.
func benchPipe(ctx context.Context, b *testing.B, brokers []string, adm *kadm.Client, prefix, eventsTopic string, specs []kafka.Spec, deliveriesTopic, stateTopic string, shape benchPipeShape) (int, time.Duration, time.Duration) {
	b.Helper()
	// Output topics configured as the processor's own.
	outDeliveries, outStates := prefix+"pipe-deliveries", prefix+"pipe-run-state"
	var out []kafka.Spec
	for _, s := range specs {
		switch s.Name {
		case deliveriesTopic:
			s.Name = outDeliveries
			out = append(out, s)
		case stateTopic:
			s.Name = outStates
			out = append(out, s)
		}
	}
	if len(out) != 2 {
		b.Fatalf("no specs for %s and %s", deliveriesTopic, stateTopic)
	}
	if err := kafka.EnsureTopics(ctx, adm, out); err != nil {
		b.Fatal(err)
	}
	sess, err := kgo.NewGroupTransactSession(append(kafka.ClientOpts(brokers, nil),
		kgo.ConsumerGroup(prefix+"pipe"),
		kgo.ConsumeTopics(eventsTopic),
		kgo.TransactionalID(prefix+"pipe-bench"),
		kgo.TransactionTimeout(20*time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.SessionTimeout(10*time.Second),
	)...)
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
	// pad makes a value of n bytes less the key's from the event's own
	// bytes, repeated to the size: real JSON, which compresses as the
	// processor's JSON records do. Zeros (as before) compressed to almost
	// nothing and flattered the pipe's produce CPU (~0.35 µs per event
	// against the processor's ~0.7).
	pad := func(n, key int, src []byte) []byte {
		if n -= key; n < 0 {
			n = 0
		}
		v := make([]byte, n)
		for i := 0; i < n && len(src) > 0; {
			i += copy(v[i:], src)
		}
		return v
	}
	var (
		committed, firstN int
		firstAt           time.Time
		firstCPU          time.Duration
		dCredit, sCredit  float64
		recs              []*kgo.Record
		produceErr        error
		mu                sync.Mutex
	)
	for committed < benchEvents {
		fetches := sess.PollRecords(ctx, benchPipeBatch)
		if ctx.Err() != nil {
			b.Fatalf("pipe committed %d of %d events", committed, benchEvents)
		}
		if err := fetches.Err0(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			b.Fatalf("pipe poll: %v", err)
		}
		n := fetches.NumRecords()
		if n == 0 {
			continue
		}
		if firstAt.IsZero() {
			firstAt, firstCPU, firstN = time.Now(), benchCPU(b), n
		}
		recs = recs[:0]
		fetches.EachRecord(func(r *kgo.Record) {
			for dCredit += shape.deliveriesPerEvent; dCredit >= 1; dCredit-- {
				recs = append(recs, &kgo.Record{Topic: outDeliveries, Key: r.Key, Value: pad(shape.deliveryBytes, len(r.Key), r.Value)})
			}
			for sCredit += shape.statesPerEvent; sCredit >= 1; sCredit-- {
				recs = append(recs, &kgo.Record{Topic: outStates, Key: r.Key, Value: pad(shape.stateBytes, len(r.Key), r.Value)})
			}
		})
		if err := sess.Begin(); err != nil {
			b.Fatalf("pipe begin: %v", err)
		}
		produceErr = nil
		for _, rec := range recs {
			sess.Produce(ctx, rec, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					produceErr = err // any error fails the op
					mu.Unlock()
				}
			})
		}
		flushErr := sess.Client().Flush(ctx)
		ok, err := sess.End(ctx, kgo.TransactionEndTry(flushErr == nil && produceErr == nil))
		if err != nil || flushErr != nil || produceErr != nil {
			b.Fatalf("pipe transaction: end %v, flush %v, produce %v", err, flushErr, produceErr)
		}
		if ok {
			committed += n
		}
	}
	cpu := benchCPU(b) - firstCPU
	elapsed := time.Since(firstAt)
	// Sanity: the pipe wrote, within rounding, as many records of each kind
	// as the processor did, and of the same size.
	for _, c := range []struct {
		topic       string
		perEvent    float64
		recordBytes int
	}{{outDeliveries, shape.deliveriesPerEvent, shape.deliveryBytes}, {outStates, shape.statesPerEvent, shape.stateBytes}} {
		got, want := benchCountOutput(ctx, b, brokers, adm, c.topic), c.perEvent*benchEvents
		if float64(got.records) < want-1 || float64(got.records) > want+1 {
			b.Errorf("pipe wrote %d records to %s, want %.0f", got.records, c.topic, want)
		}
		if got.records > 0 && (got.bytes/int64(got.records) < int64(c.recordBytes)-1 || got.bytes/int64(got.records) > int64(c.recordBytes)+1) {
			b.Errorf("pipe wrote %d B per record to %s, want %d", got.bytes/int64(got.records), c.topic, c.recordBytes)
		}
	}
	if committed == firstN {
		return committed, elapsed, cpu
	}
	return committed - firstN, elapsed, cpu
}
