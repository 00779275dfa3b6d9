package processor

import (
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
)

// keepLastStates keeps the last run-state write of each run (partition and
// key), a tombstone as any other, drops none of the other records and
// keeps every record with the event that made it, in order.
func TestKeepLastStates(t *testing.T) {
	t.Parallel()
	p := &Processor{cfg: Config{Topics: kafka.NewTopics("t.")}}
	state := func(part int32, key, value string) *kgo.Record {
		r := &kgo.Record{Topic: p.cfg.Topics.RunState, Partition: part, Key: []byte(key)}
		if value != "" {
			r.Value = []byte(value)
		}
		return r
	}
	delivery := func(v string) *kgo.Record { return &kgo.Record{Topic: p.cfg.Topics.Deliveries, Value: []byte(v)} }
	show := func(out []*kgo.Record, from []eventAt) []string {
		var s []string
		for i, r := range out {
			s = append(s, fmt.Sprintf("%s/%d/%s=%s@%d", r.Topic[2:], r.Partition, r.Key, r.Value, from[i].off))
		}
		return s
	}
	for _, c := range []struct {
		name string
		in   []*kgo.Record
		want []string
	}{
		{"no state", []*kgo.Record{delivery("a"), delivery("b")},
			[]string{"deliveries/0/=a@0", "deliveries/0/=b@1"}},
		{"one write each", []*kgo.Record{state(0, "r1", "s"), delivery("a"), state(1, "r1", "s"), state(0, "r2", "s")},
			[]string{"processor.run-state/0/r1=s@0", "deliveries/0/=a@1", "processor.run-state/1/r1=s@2", "processor.run-state/0/r2=s@3"}},
		{"started and failed", []*kgo.Record{state(0, "r1", "started"), delivery("a"), state(0, "r2", "x"), state(0, "r1", "failed")},
			[]string{"deliveries/0/=a@1", "processor.run-state/0/r2=x@2", "processor.run-state/0/r1=failed@3"}},
		{"written then removed", []*kgo.Record{state(2, "r1", "done"), state(2, "r1", "")},
			[]string{"processor.run-state/2/r1=@1"}},
		{"removed then written", []*kgo.Record{state(2, "r1", ""), state(2, "r1", "again"), delivery("a")},
			[]string{"processor.run-state/2/r1=again@1", "deliveries/0/=a@2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			from := make([]eventAt, len(c.in))
			for i := range from {
				from[i] = eventAt{off: int64(i)}
			}
			out, from := p.keepLastStates(slices.Clone(c.in), from)
			if got := show(out, from); !slices.Equal(got, c.want) {
				t.Fatalf("kept %q, want %q", got, c.want)
			}
		})
	}
}
