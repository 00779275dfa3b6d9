package ktable

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
)

// Change is one update of the table: Value is nil for a deletion.
type Change[T any] struct {
	Key   string
	Value *T
}

// Table is a compacted topic materialised in memory.
type Table[T any] struct {
	topic    string
	decode   func([]byte) (T, error)
	onChange func(Change[T])
	log      *slog.Logger

	mu    sync.RWMutex
	rows  map[string]T
	ready chan struct{}

	// pos is the next offset to read per partition; posCh is closed and
	// replaced whenever pos advances. adm is set once Run has a client.
	posMu sync.Mutex
	pos   map[int32]int64
	posCh chan struct{}
	adm   *kadm.Client
}

// New returns a table over topic. decode turns a record value into a row; a
// value it refuses is logged and skipped (the topic is written only by the
// control plane, so this means a bug or a foreign writer, never a reason to
// stop). onChange, if set, is called for every applied change, in order, from
// the table's goroutine.
func New[T any](topic string, decode func([]byte) (T, error), onChange func(Change[T]), log *slog.Logger) *Table[T] {
	return &Table[T]{topic: topic, decode: decode, onChange: onChange, log: log.With("table", topic), rows: map[string]T{}, ready: make(chan struct{}), pos: map[int32]int64{}, posCh: make(chan struct{})}
}

// Ready is closed once the table has read everything the topic held when Run started.
func (t *Table[T]) Ready() <-chan struct{} { return t.ready }

// Get returns the row under key.
func (t *Table[T]) Get(key string) (T, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	v, ok := t.rows[key]
	return v, ok
}

// Len returns the number of rows.
func (t *Table[T]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.rows)
}

// Run reads the topic until ctx ends. opts are the client options (brokers,
// logger); Run adds its own consume options.
func (t *Table[T]) Run(ctx context.Context, opts []kgo.Opt) error {
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumeTopics(t.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200_000_000), // 200ms: a change is visible well within a second
		// A transactional writer's aborted records are never rows, and its
		// commit markers (kept, skipped by apply) show that a partition has
		// been read to its end: without them a topic whose last offset is a
		// marker would never be Ready.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return fmt.Errorf("ktable %s: new client: %w", t.topic, err)
	}
	defer cl.Close()
	t.posMu.Lock()
	t.adm = kadm.NewClient(cl)
	t.posMu.Unlock()

	// The offsets to read up to before the table is Ready. Kafka may be
	// unreachable (the component started during an outage), or a topic
	// created a moment ago not known to the broker yet: the table waits,
	// not Ready, until Kafka answers (kafka.Wait).
	var pending map[int32]int64
	err = kafka.Wait(ctx, t.log, "ktable: initial load", func(ctx context.Context) error {
		var err error
		pending, err = t.endOffsets(ctx, cl)
		return err
	})
	if ctx.Err() != nil {
		return nil //nolint:nilerr // a cancelled context is a clean stop
	}
	if err != nil {
		return err
	}
	if len(pending) == 0 {
		pending = nil
		close(t.ready)
	}
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil //nolint:nilerr // a cancelled context is a clean stop
		}
		var fatal error
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			t.log.Warn("fetch error", "partition", p, "err", err)
			if errors.Is(err, kgo.ErrClientClosed) {
				fatal = err
			}
		})
		if fatal != nil {
			return fmt.Errorf("ktable %s: %w", t.topic, fatal)
		}
		fetches.EachRecord(t.apply)
		t.advance(fetches)
		if pending != nil {
			fetches.EachPartition(func(p kgo.FetchTopicPartition) {
				if end, ok := pending[p.Partition]; ok && (p.HighWatermark >= end && len(p.Records) > 0 && p.Records[len(p.Records)-1].Offset+1 >= end) {
					delete(pending, p.Partition)
				}
			})
			if len(pending) == 0 {
				pending = nil
				close(t.ready)
				t.log.Debug("table ready", "rows", t.Len())
			}
		}
	}
}

// endOffsets returns, per partition that holds records, the end offset to
// reach: the last stable offset, as the table reads committed records only.
func (t *Table[T]) endOffsets(ctx context.Context, cl *kgo.Client) (map[int32]int64, error) {
	adm := kadm.NewClient(cl)
	ends, err := adm.ListCommittedOffsets(ctx, t.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("ktable %s: list end offsets: %w", t.topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, t.topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("ktable %s: list start offsets: %w", t.topic, err)
	}
	pending := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := starts.Lookup(o.Topic, o.Partition)
		if o.Offset > s.Offset {
			pending[o.Partition] = o.Offset
		}
	})
	return pending, nil
}

func (t *Table[T]) apply(r *kgo.Record) {
	if r.Attrs.IsControl() {
		return // a transaction marker, kept only to track offsets
	}
	key := string(r.Key)
	if r.Value == nil {
		t.mu.Lock()
		delete(t.rows, key)
		t.mu.Unlock()
		if t.onChange != nil {
			t.onChange(Change[T]{Key: key})
		}
		return
	}
	v, err := t.decode(r.Value)
	if err != nil {
		t.log.Error("undecodable record skipped", "key", key, "partition", r.Partition, "offset", r.Offset, "err", err)
		return
	}
	t.mu.Lock()
	t.rows[key] = v
	t.mu.Unlock()
	if t.onChange != nil {
		t.onChange(Change[T]{Key: key, Value: &v})
	}
}

// advance records how far each partition has been read.
func (t *Table[T]) advance(fetches kgo.Fetches) {
	moved := false
	t.posMu.Lock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if n := len(p.Records); n > 0 {
			if next := p.Records[n-1].Offset + 1; next > t.pos[p.Partition] {
				t.pos[p.Partition] = next
				moved = true
			}
		}
	})
	if moved {
		close(t.posCh)
		t.posCh = make(chan struct{})
	}
	t.posMu.Unlock()
}

// ErrNotRunning is returned by Sync before Run has connected.
var ErrNotRunning = errors.New("ktable: not running")

// Sync waits until the table has applied every record that was on the topic
// when Sync was called, so a change published before an event is in force
// when that event is processed.
func (t *Table[T]) Sync(ctx context.Context) error {
	t.posMu.Lock()
	adm := t.adm
	t.posMu.Unlock()
	if adm == nil {
		return ErrNotRunning
	}
	ends, err := adm.ListCommittedOffsets(ctx, t.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("ktable %s: sync: %w", t.topic, err)
	}
	for {
		t.posMu.Lock()
		behind := false
		ends.Each(func(o kadm.ListedOffset) {
			if o.Offset > 0 && t.pos[o.Partition] < o.Offset {
				behind = true
			}
		})
		ch := t.posCh
		t.posMu.Unlock()
		if !behind {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("ktable %s: sync: %w", t.topic, ctx.Err())
		}
	}
}
