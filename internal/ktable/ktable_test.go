package ktable_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/ktable"
	"github.com/exospherehost/exo-alerts/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	partitions = 3
	deadline   = 30 * time.Second
)

// row is what the test tables hold.
type row struct {
	V int `json:"v"`
}

var errNoValue = errors.New("no v")

func decode(b []byte) (row, error) {
	var r struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return row{}, err
	}
	if r.V == nil {
		return row{}, errNoValue
	}
	return row{V: *r.V}, nil
}

// write is one record for the topic: a nil value is a tombstone, raw (if
// set) is written verbatim instead of an encoded row.
type write struct {
	key   string
	value *int
	raw   []byte
}

func set(key string, v int) write          { return write{key: key, value: &v} }
func del(key string) write                 { return write{key: key} }
func garbage(key string, raw string) write { return write{key: key, raw: []byte(raw)} }

// change is what onChange saw; deleted when Value was nil.
type change struct {
	key        string
	v          int
	deleted    bool
	afterReady bool
}

func (c change) String() string {
	if c.deleted {
		return c.key + "=<deleted>"
	}
	return fmt.Sprintf("%s=%d", c.key, c.v)
}

// fixture is a compacted topic on the real broker, a producer for it, and
// (once run) a table over it.
type fixture struct {
	t       *testing.T
	brokers []string
	topic   string
	prod    *kgo.Client

	mu      sync.Mutex
	changes []change
	table   *ktable.Table[row]
	stopped chan struct{} // closed when Run has returned runErr
	runErr  error
}

// setup returns a fixture whose topic exists.
func setup(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	f.create()
	return f
}

// newFixture returns a fixture whose topic does not exist yet.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	brokers := testenv.Brokers(t)
	prod, err := kgo.NewClient(append(kafka.ClientOpts(brokers, nil),
		// Keys are placed by the test, so every partition gets records and
		// every overwrite of a key lands on that key's partition.
		kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	// A compacted topic of the test's own.
	return &fixture{t: t, brokers: brokers, topic: testenv.Topics(t).Endpoints, prod: prod}
}

// create creates the fixture's topic as the components do.
func (f *fixture) create() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var spec []kafka.Spec
	for _, s := range kafka.NewTopics("").Specs(partitions) {
		if s.Name == "webhook-endpoints" {
			s.Name = f.topic
			spec = append(spec, s)
		}
	}
	if err := kafka.EnsureTopics(ctx, kadm.NewClient(f.prod), spec); err != nil {
		f.t.Fatal(err)
	}
}

// partitionOf places a key: the same key always on the same partition.
func partitionOf(key string) int32 {
	var h int32
	for _, c := range key {
		h = (h*31 + c) & 0x7fffffff
	}
	return h % partitions
}

// produce writes ws in order (per key, the order is the partition order).
func (f *fixture) produce(ws ...write) {
	f.t.Helper()
	recs := make([]*kgo.Record, 0, len(ws))
	for _, w := range ws {
		r := &kgo.Record{Topic: f.topic, Key: []byte(w.key), Partition: partitionOf(w.key)}
		switch {
		case w.raw != nil:
			r.Value = w.raw
		case w.value != nil:
			r.Value, _ = json.Marshal(row{V: *w.value})
		}
		recs = append(recs, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := f.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		f.t.Fatalf("produce: %v", err)
	}
}

// run starts the table with extra client options; it stops at cleanup,
// and Run must then return nil.
func (f *fixture) run(opts ...kgo.Opt) *ktable.Table[row] {
	f.t.Helper()
	f.table = ktable.New(f.topic, decode, func(c ktable.Change[row]) {
		ch := change{key: c.Key, deleted: c.Value == nil}
		if c.Value != nil {
			ch.v = c.Value.V
		}
		select {
		case <-f.table.Ready():
			ch.afterReady = true
		default:
		}
		f.mu.Lock()
		f.changes = append(f.changes, ch)
		f.mu.Unlock()
	}, testenv.Log(f.t))
	ctx, cancel := context.WithCancel(context.Background())
	f.stopped = make(chan struct{})
	go func() {
		defer close(f.stopped)
		f.runErr = f.table.Run(ctx, append(kafka.ClientOpts(f.brokers, testenv.Log(f.t)), opts...))
	}()
	f.t.Cleanup(func() {
		cancel()
		select {
		case <-f.stopped:
			if f.runErr != nil {
				f.t.Errorf("Run returned %v after its context ended; want nil", f.runErr)
			}
		case <-time.After(deadline):
			f.t.Errorf("Run did not return within %v of its context ending", deadline)
		}
	})
	return f.table
}

// waitReady waits for Ready, failing with what the table held.
func (f *fixture) waitReady(tbl *ktable.Table[row]) {
	f.t.Helper()
	select {
	case <-tbl.Ready():
	case <-f.stopped:
		f.t.Fatalf("Run returned before the table was ready: %v", f.runErr)
	case <-time.After(deadline):
		f.t.Fatalf("table not ready within %v; it holds %d rows, changes seen: %v", deadline, tbl.Len(), f.seen())
	}
}

func (f *fixture) seen() []change {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.changes)
}

// eventually polls cond until it holds or the deadline passes.
func (f *fixture) eventually(what string, cond func() bool) {
	f.t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			f.t.Fatalf("%s: not within %v; changes seen: %v", what, deadline, f.seen())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expect checks the table holds exactly want.
func expect(t *testing.T, tbl *ktable.Table[row], want map[string]int, gone ...string) {
	t.Helper()
	if tbl.Len() != len(want) {
		t.Errorf("Len() = %d, want %d", tbl.Len(), len(want))
	}
	for k, v := range want {
		if got, ok := tbl.Get(k); !ok || got.V != v {
			t.Errorf("Get(%q) = %v, %v; want %d", k, got.V, ok, v)
		}
	}
	for _, k := range gone {
		if got, ok := tbl.Get(k); ok {
			t.Errorf("Get(%q) = %v; want absent (deleted)", k, got.V)
		}
	}
}

// A table over a topic that already holds records (several per key, across
// every partition, with tombstones) is Ready only once it holds the topic's
// final state: every record written before Run was applied before Ready.
func TestReadyOnlyAfterFinalState(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts []kgo.Opt
	}{
		{name: "default fetches"},
		// One batch per fetch: catching up takes many polls.
		{name: "one batch per fetch", opts: []kgo.Opt{kgo.FetchMaxBytes(1), kgo.FetchMaxPartitionBytes(1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			want := map[string]int{}
			var n int
			perPartition := map[int32]int{}
			// Three rounds, each its own produce (its own batches): every key
			// is overwritten twice.
			for round := 1; round <= 3; round++ {
				var ws []write
				for i := range 20 {
					k := fmt.Sprintf("key-%02d", i)
					ws = append(ws, set(k, round*100+i))
					want[k] = round*100 + i
					perPartition[partitionOf(k)]++
				}
				f.produce(ws...)
				n += len(ws)
			}
			// Deleted for good; deleted and written again; deleted twice.
			f.produce(del("key-05"), del("key-07"), set("key-07", 7777), del("key-11"), del("key-11"))
			n += 5
			delete(want, "key-05")
			delete(want, "key-11")
			want["key-07"] = 7777
			if len(perPartition) != partitions {
				t.Fatalf("test keys cover %d of %d partitions", len(perPartition), partitions)
			}

			tbl := f.run(tc.opts...)
			f.waitReady(tbl)
			// Nothing is written after Run started: what the table holds now is
			// what it held when Ready fired.
			expect(t, tbl, want, "key-05", "key-11")
			seen := f.seen()
			if len(seen) != n {
				t.Errorf("onChange called %d times before and at Ready, want %d (one per record)", len(seen), n)
			}
			for _, c := range seen {
				if c.afterReady {
					t.Errorf("change %v applied after Ready: Ready fired before the table held the topic's state", c)
				}
			}
			// Per key, changes arrive in the order they were written.
			var k07 []string
			for _, c := range seen {
				if c.key == "key-07" {
					k07 = append(k07, c.String())
				}
			}
			if w := []string{"key-07=107", "key-07=207", "key-07=307", "key-07=<deleted>", "key-07=7777"}; !slices.Equal(k07, w) {
				t.Errorf("changes of key-07 = %v, want %v", k07, w)
			}
		})
	}
}

// A table over an empty topic is Ready without any record ever arriving.
func TestReadyOnEmptyTopic(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tbl := f.run()
	f.waitReady(tbl)
	if tbl.Len() != 0 {
		t.Errorf("Len() = %d on an empty topic", tbl.Len())
	}
	if _, ok := tbl.Get("anything"); ok {
		t.Error("Get found a row in an empty topic")
	}
}

// A table started before its topic exists (a fresh cluster, where the
// components create the topics as they start) waits for it rather than
// failing, and is Ready once it exists.
func TestWaitsForTopicToExist(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tbl := f.run()
	select {
	case <-f.stopped:
		t.Fatalf("Run returned %v for a topic that does not exist yet", f.runErr)
	case <-tbl.Ready():
		t.Fatal("Ready before the topic exists")
	case <-time.After(time.Second): // a window for Run to fail in, not a timing assertion
	}
	f.create()
	f.produce(set("a", 1))
	f.waitReady(tbl)
	f.eventually("row written after the topic was created applied", func() bool { v, ok := tbl.Get("a"); return ok && v.V == 1 })
}

// A table started while Kafka is unreachable (its component restarted
// during an outage) waits, not Ready, rather than failing, and loads the
// topic once Kafka is back. The client gives up on a request after 1 s, so
// the 5 s cut stands for an outage longer than the client's own retries.
func TestWaitsForKafkaAtStart(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.produce(set("a", 1), set("b", 2))
	gate := testenv.NewKafkaGate(t)
	gate.Cut()
	t.Cleanup(func() { gate.Restore(t) })
	tbl := f.run(gate.Opt(), kgo.RetryTimeout(time.Second))
	f.eventually("a dial refused by the cut", func() bool { return gate.Refused() > 0 })
	select {
	case <-f.stopped:
		t.Fatalf("Run returned %v while Kafka was unreachable at its start", f.runErr)
	case <-tbl.Ready():
		t.Fatal("Ready while Kafka was unreachable")
	case <-time.After(5 * time.Second): // holding the outage, not synchronisation
	}
	gate.Restore(t)
	f.waitReady(tbl)
	expect(t, tbl, map[string]int{"a": 1, "b": 2})
}

// After Ready the table keeps tailing: a new row, an overwrite and a
// tombstone written later are applied, and onChange sees them in order.
func TestTailsChangesAfterReady(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.produce(set("old", 1), set("kept", 2))
	tbl := f.run()
	f.waitReady(tbl)
	expect(t, tbl, map[string]int{"old": 1, "kept": 2})

	f.produce(set("new", 10))
	f.eventually("new row applied", func() bool { v, ok := tbl.Get("new"); return ok && v.V == 10 })
	f.produce(set("new", 11), del("old"))
	f.eventually("overwrite and tombstone applied", func() bool {
		v, ok := tbl.Get("new")
		_, oldThere := tbl.Get("old")
		return ok && v.V == 11 && !oldThere
	})
	f.produce(del("new"), set("new", 12), del("new"))
	f.eventually("new row deleted again", func() bool {
		n := 0
		for _, c := range f.seen() {
			if c.key == "new" {
				n++
			}
		}
		return n == 5
	})
	expect(t, tbl, map[string]int{"kept": 2}, "old", "new")

	var got []string
	for _, c := range f.seen() {
		if c.afterReady {
			got = append(got, c.String())
		}
	}
	// "old" and "new" may sit on different partitions: compare per key.
	byKey := func(key string) []string {
		var out []string
		for _, s := range got {
			if len(s) > len(key) && s[:len(key)+1] == key+"=" {
				out = append(out, s)
			}
		}
		return out
	}
	if w := []string{"new=10", "new=11", "new=<deleted>", "new=12", "new=<deleted>"}; !slices.Equal(byKey("new"), w) {
		t.Errorf("changes of new after Ready = %v, want %v", byKey("new"), w)
	}
	if w := []string{"old=<deleted>"}; !slices.Equal(byKey("old"), w) {
		t.Errorf("changes of old after Ready = %v, want %v", byKey("old"), w)
	}
	if len(got) != 6 {
		t.Errorf("changes after Ready = %v, want 6", got)
	}
}

// A value the decoder refuses is skipped: it neither stops the table (before
// or after Ready) nor replaces the row it overwrites, and later records
// still apply.
func TestUndecodableValueIsSkipped(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// The refused values are the last records of the topic when Run starts:
	// Ready must not wait for them to decode.
	f.produce(set("a", 1), set("b", 2), garbage("b", "{not json"), garbage("c", `{"w":3}`))
	tbl := f.run()
	f.waitReady(tbl)
	expect(t, tbl, map[string]int{"a": 1, "b": 2}, "c")

	f.produce(garbage("a", "\x00\xff"), set("d", 4))
	f.eventually("a record after the refused one applied", func() bool { _, ok := tbl.Get("d"); return ok })
	f.produce(set("a", 5))
	f.eventually("the key of the refused record written again", func() bool { v, _ := tbl.Get("a"); return v.V == 5 })
	expect(t, tbl, map[string]int{"a": 5, "b": 2, "d": 4}, "c")
	for _, c := range f.seen() {
		if c.key == "c" {
			t.Errorf("onChange saw %v for a refused value", c)
		}
	}
}

// A topic written by a transactional producer ends with a commit marker,
// which no consumer ever sees as a record: the table still becomes Ready,
// and a transaction that aborted leaves no row.
func TestReadyAfterTransactionalWrites(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tx, err := kgo.NewClient(append(kafka.ClientOpts(f.brokers, nil),
		kgo.TransactionalID(f.topic+"-tx"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	for _, commit := range []kgo.TransactionEndTry{kgo.TryAbort, kgo.TryCommit} {
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for i := range partitions * 2 {
			k := fmt.Sprintf("k%d", i)
			v, _ := json.Marshal(row{V: i + 1})
			if commit == kgo.TryAbort {
				k = "aborted-" + k
			}
			recs = append(recs, &kgo.Record{Topic: f.topic, Key: []byte(k), Value: v, Partition: partitionOf(k)})
		}
		if err := tx.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := tx.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	// EndTransaction returns once the coordinator has decided; it writes the
	// commit and abort markers to the partitions afterwards. Until a
	// partition has its marker, its last stable offset stays before the
	// transaction and read_committed readers (the table among them) rightly
	// see none of it. Wait for the markers, so the table starts on a topic
	// whose transactions are complete.
	adm := kadm.NewClient(f.prod)
	f.eventually("transaction markers on every partition", func() bool {
		ends, err1 := adm.ListEndOffsets(ctx, f.topic)
		stable, err2 := adm.ListCommittedOffsets(ctx, f.topic)
		if err1 != nil || err2 != nil {
			return false
		}
		settled := true
		ends.Each(func(o kadm.ListedOffset) {
			if s, ok := stable.Lookup(o.Topic, o.Partition); !ok || s.Offset != o.Offset {
				settled = false
			}
		})
		return settled
	})
	tbl := f.run()
	f.waitReady(tbl)
	want := map[string]int{}
	var gone []string
	for i := range partitions * 2 {
		want[fmt.Sprintf("k%d", i)] = i + 1
		gone = append(gone, fmt.Sprintf("aborted-k%d", i))
	}
	expect(t, tbl, want, gone...)
}
