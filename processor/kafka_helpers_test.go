package processor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/internal/workload"
	"github.com/exospherehost/exo-alerts/processor"
	"github.com/exospherehost/exo-alerts/schemas"
)

// kenv is what a processor test needs: the broker, topics unique to the
// test, a producer and an admin client.
type kenv struct {
	t       *testing.T
	brokers []string
	topics  kafka.Topics
	cl      *kgo.Client // default (key hash) partitioner
	manual  *kgo.Client // manual partitioner: the record's Partition is used
	adm     *kadm.Client
}

const partitions = 3

func setup(t *testing.T) *kenv {
	t.Helper()
	brokers := testenv.Brokers(t)
	e := &kenv{t: t, brokers: brokers, topics: testenv.Topics(t)}
	var err error
	if e.cl, err = kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0), kgo.UnknownTopicRetries(60)); err != nil {
		t.Fatalf("producer: %v", err)
	}
	t.Cleanup(e.cl.Close)
	if e.manual, err = kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0), kgo.UnknownTopicRetries(60), kgo.RecordPartitioner(kgo.ManualPartitioner())); err != nil {
		t.Fatalf("producer: %v", err)
	}
	t.Cleanup(e.manual.Close)
	e.adm = kadm.NewClient(e.cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, e.adm, e.topics.Specs(partitions)); err != nil {
		t.Fatalf("create topics: %v", err)
	}
	return e
}

// group is the processor's default consumer group for the test's topics.
func (e *kenv) group() string { return e.topics.Prefix + "processor" }

func (e *kenv) produce(recs ...*kgo.Record) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := workload.Produce(ctx, e.cl, recs...); err != nil {
		e.t.Fatalf("produce: %v", err)
	}
}

// produceOn produces records to the partitions set in them.
func (e *kenv) produceOn(recs ...*kgo.Record) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := workload.Produce(ctx, e.manual, recs...); err != nil {
		e.t.Fatalf("produce: %v", err)
	}
}

// record is the structured-mode record of ev on the events topic.
func (e *kenv) record(ev schemas.WorkflowEvent) *kgo.Record {
	e.t.Helper()
	r, err := workload.Record(e.topics.Events, ev)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *kenv) putEndpoint(tenant, id string, active bool) {
	e.t.Helper()
	ep := schemas.EndpointRecord{
		TenantID: tenant, ID: id, Name: id, Kind: "webhook", TargetURL: "https://hooks.example.com/" + id,
		Secret: schemas.Sealed{KeyID: "k", Ciphertext: "c2VhbGVk"}, IsActive: active, Version: 1, UpdatedAt: time.Now().UTC(),
	}
	v, _ := json.Marshal(ep)
	e.produce(&kgo.Record{Topic: e.topics.Endpoints, Key: schemas.RecordKey(tenant, id), Value: v})
}

// putRule publishes a rule snapshot. Name, version and time are filled in.
func (e *kenv) putRule(r schemas.RuleRecord) {
	e.t.Helper()
	if r.Name == "" {
		r.Name = r.ID
	}
	if r.Version == 0 {
		r.Version = 1
	}
	r.UpdatedAt = time.Now().UTC()
	v, _ := json.Marshal(r)
	e.produce(&kgo.Record{Topic: e.topics.Rules, Key: schemas.RecordKey(r.TenantID, r.ID), Value: v})
}

func (e *kenv) deleteRule(tenant, id string) {
	e.t.Helper()
	e.produce(&kgo.Record{Topic: e.topics.Rules, Key: schemas.RecordKey(tenant, id)})
}

// proc is an in-process processor.
type proc struct {
	name   string
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	err    error
	exited bool
}

// startProcessor runs processor.Run in the test process and waits until its
// rule and endpoint tables are loaded. mod adjusts the config.
func (e *kenv) startProcessor(name string, mod func(*processor.Config)) *proc {
	e.t.Helper()
	return e.startProcessorCtx(context.Background(), name, mod)
}

// startProcessorCtx is startProcessor with a parent context: ending it stops
// the processor too.
func (e *kenv) startProcessorCtx(parent context.Context, name string, mod func(*processor.Config)) *proc {
	e.t.Helper()
	p := &proc{name: name, reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	ready := make(chan struct{})
	cfg := processor.Config{
		Brokers: e.brokers, Topics: e.topics, Partitions: partitions,
		TransactionalID: e.topics.Prefix + "processor-" + name,
		Log:             testenv.Log(e.t).With("instance", name),
		Registerer:      p.reg,
		Ready:           ready,
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(parent)
	p.cancel = cancel
	go func() { p.done <- processor.Run(ctx, cfg) }()
	e.t.Cleanup(func() { p.stop(e.t) })
	select {
	case <-ready:
	case err := <-p.done:
		p.exited, p.err = true, err
		e.t.Fatalf("processor %s exited before it was ready: %v", name, err)
	case <-time.After(60 * time.Second):
		e.t.Fatalf("processor %s: rule tables not loaded within 60s", name)
	}
	return p
}

// stop cancels the processor and waits for Run to return; it fails the test
// if Run returned an error or does not return.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if !p.exited {
		p.cancel()
	}
	p.wait(t)
}

// wait waits for Run to return (its parent context ended); it fails the
// test if Run returned an error or does not return.
func (p *proc) wait(t *testing.T) {
	t.Helper()
	if p.exited {
		return
	}
	select {
	case p.err = <-p.done:
		p.exited = true
	case <-time.After(60 * time.Second):
		t.Fatalf("processor %s did not stop within 60s of its context ending", p.name)
	}
	if p.err != nil {
		t.Errorf("processor %s: Run returned %v", p.name, p.err)
	}
}

// eventually polls cond every 20ms until it holds or timeout passes, then
// fails with what describes the state.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool, state func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; %s", timeout, what, state())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// caughtUp reports whether group has committed every record of the events
// topic (so every delivery of those records is committed too: they share
// the transaction).
func (e *kenv) caughtUp(group string) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := e.adm.ListEndOffsets(ctx, e.topics.Events)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return false, err.Error()
	}
	committed, err := e.adm.FetchOffsets(ctx, group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return false, err.Error()
	}
	ok := true
	var b strings.Builder
	ends.Each(func(o kadm.ListedOffset) {
		c := int64(0)
		if r, found := committed.Lookup(o.Topic, o.Partition); found {
			c = r.At
		}
		fmt.Fprintf(&b, " p%d committed=%d end=%d", o.Partition, c, o.Offset)
		if c < o.Offset {
			ok = false
		}
	})
	return ok, b.String()
}

// waitCaughtUp waits until the processor group has committed every event.
func (e *kenv) waitCaughtUp(timeout time.Duration) {
	e.t.Helper()
	var last string
	eventually(e.t, timeout, "the processor group to commit every event", func() bool {
		var ok bool
		ok, last = e.caughtUp(e.group())
		return ok
	}, func() string { return "offsets:" + last })
}

// collector reads a topic from the start with read_committed isolation:
// it sees only what the processor's transactions committed.
type collector struct {
	t     *testing.T
	e     *kenv
	topic string
	cl    *kgo.Client
	recs  []*kgo.Record
	at    []time.Time     // when each record was read
	next  map[int32]int64 // next offset per partition, control records included

	decoded []schemas.DeliveryRecord // recs decoded so far, by deliveries
	count   map[string]int           // alert id -> records, of decoded
}

func (e *kenv) collect(topic string) *collector {
	e.t.Helper()
	return e.collectWith(topic, kgo.ReadCommitted())
}

// collectWith reads topic with the given isolation level: read_uncommitted
// also shows what aborted transactions wrote.
func (e *kenv) collectWith(topic string, isolation kgo.IsolationLevel) *collector {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.UnknownTopicRetries(60),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(isolation),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		e.t.Fatalf("consumer: %v", err)
	}
	e.t.Cleanup(cl.Close)
	return &collector{t: e.t, e: e, topic: topic, cl: cl, next: map[int32]int64{}, count: map[string]int{}}
}

// poll reads what arrives within d.
func (c *collector) poll(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	fetches := c.cl.PollFetches(ctx)
	fetches.EachError(func(_ string, p int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			c.t.Logf("collector %s: fetch error on partition %d: %v", c.topic, p, err)
		}
	})
	now := time.Now()
	fetches.EachRecord(func(r *kgo.Record) {
		c.next[r.Partition] = r.Offset + 1
		if r.Attrs.IsControl() {
			return
		}
		c.recs = append(c.recs, r)
		c.at = append(c.at, now)
	})
}

// waitFor polls until cond holds, failing after timeout with state.
func (c *collector) waitFor(timeout time.Duration, what string, cond func() bool, state func() string) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		left := time.Until(deadline)
		if left <= 0 {
			c.t.Fatalf("timed out after %s waiting for %s on %s (%d records read); %s", timeout, what, c.topic, len(c.recs), state())
		}
		c.poll(min(left, 250*time.Millisecond))
	}
}

// drain reads up to the topic's current high watermark: everything committed
// so far. Not the last stable offset: a transaction that has just committed
// may not have its marker on every partition yet, and the last stable offset
// there would stop before its records.
func (c *collector) drain() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := c.e.adm.ListEndOffsets(ctx, c.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		c.t.Fatalf("end offsets of %s: %v", c.topic, err)
	}
	behind := func() bool {
		b := false
		ends.Each(func(o kadm.ListedOffset) {
			if c.next[o.Partition] < o.Offset {
				b = true
			}
		})
		return b
	}
	c.waitFor(30*time.Second, "the end of the topic", func() bool { return !behind() }, func() string {
		return fmt.Sprintf("read to %v, ends %v", c.next, ends.Offsets())
	})
}

// deliveries decodes every delivery record read so far (each once).
func (c *collector) deliveries() []schemas.DeliveryRecord {
	c.t.Helper()
	for _, r := range c.recs[len(c.decoded):] {
		var d schemas.DeliveryRecord
		if err := json.Unmarshal(r.Value, &d); err != nil {
			c.t.Fatalf("delivery record at %d/%d is not JSON: %v", r.Partition, r.Offset, err)
		}
		c.decoded = append(c.decoded, d)
		c.count[d.AlertID]++
	}
	return c.decoded
}

// counts is how many delivery records carry each alert id. The map is the
// collector's own: read it, do not keep it across polls.
func (c *collector) counts() map[string]int {
	c.t.Helper()
	c.deliveries()
	return c.count
}

// has reports whether every id of want was read at least once.
func (c *collector) has(want map[string]bool) func() bool {
	return func() bool {
		got := c.counts()
		for id := range want {
			if got[id] == 0 {
				return false
			}
		}
		return true
	}
}

// missing describes which ids of want have not been read.
func (c *collector) missing(want map[string]bool) func() string {
	return func() string {
		got := c.counts()
		var miss []string
		for id := range want {
			if got[id] == 0 {
				miss = append(miss, id)
			}
		}
		sort.Strings(miss)
		if len(miss) > 5 {
			miss = append(miss[:5], "...")
		}
		return fmt.Sprintf("%d of %d expected alerts missing, e.g. %v", countMissing(got, want), len(want), miss)
	}
}

func countMissing(got map[string]int, want map[string]bool) int {
	n := 0
	for id := range want {
		if got[id] == 0 {
			n++
		}
	}
	return n
}

// assertExactlyOnce checks that the alerts read are exactly want, each once.
func assertExactlyOnce(t *testing.T, got map[string]int, want map[string]bool) {
	t.Helper()
	var dup, extra, miss []string
	for id, n := range got {
		switch {
		case !want[id]:
			extra = append(extra, id)
		case n > 1:
			dup = append(dup, fmt.Sprintf("%s×%d", id, n))
		}
	}
	for id := range want {
		if got[id] == 0 {
			miss = append(miss, id)
		}
	}
	if len(dup)+len(extra)+len(miss) > 0 {
		sort.Strings(dup)
		sort.Strings(extra)
		sort.Strings(miss)
		t.Fatalf("deliveries are not exactly the expected alerts, once each: %d duplicated %v, %d unexpected %v, %d missing %v",
			len(dup), head(dup), len(extra), head(extra), len(miss), head(miss))
	}
}

func head(s []string) []string {
	if len(s) > 8 {
		return append(s[:8:8], "...")
	}
	return s
}
