package kafka_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// A topic that exists with a cleanup policy that loses what the project
// keeps in it — a compacted topic that is not compacted (its state is
// deleted after the retention), or a log that is compacted (all but the
// last record of each key go) — stops the start with an error that names
// the topic, its policy and the fix; a right one passes.
func TestEnsureTopicsChecksCleanupPolicy(t *testing.T) {
	t.Parallel()
	s := func(v string) *string { return &v }
	for _, tc := range []struct {
		name     string
		topic    func(kafka.Topics) string
		existing map[string]*string // the topic as an operator created it
		want     string             // in the error; "" for none
	}{
		{name: "compacted topic with delete", topic: func(t kafka.Topics) string { return t.Rules },
			existing: map[string]*string{"cleanup.policy": s("delete")},
			want:     "has cleanup.policy=delete but must be compacted, or the state it holds is deleted after retention.ms (fix: kafka-configs.sh --bootstrap-server <broker> --alter --entity-type topics --entity-name %s --add-config cleanup.policy=compact)"},
		{name: "run state with compact,delete and a retention", topic: func(t kafka.Topics) string { return t.RunState },
			existing: map[string]*string{"cleanup.policy": s("compact,delete"), "retention.ms": s("86400000")},
			want:     "has cleanup.policy=compact,delete with retention.ms=86400000 and retention.bytes=-1: its state is deleted when that retention ends"},
		{name: "compacted topic with compact,delete and no retention", topic: func(t kafka.Topics) string { return t.Endpoints },
			existing: map[string]*string{"cleanup.policy": s("compact,delete"), "retention.ms": s("-1")}},
		{name: "compacted topic compacted", topic: func(t kafka.Topics) string { return t.Rules },
			existing: map[string]*string{"cleanup.policy": s("compact")}},
		{name: "log compacted", topic: func(t kafka.Topics) string { return t.Deliveries },
			existing: map[string]*string{"cleanup.policy": s("compact")},
			want:     "has cleanup.policy=compact but must not be compacted: compaction keeps only the last record of each key"},
		{name: "log with the broker's default policy", topic: func(t kafka.Topics) string { return t.Events }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			brokers, topics := testenv.Brokers(t), testenv.Topics(t)
			cl, err := kgo.NewClient(kafka.ClientOpts(brokers, nil)...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			adm := kadm.NewClient(cl)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			name := tc.topic(topics)
			if _, err := adm.CreateTopic(ctx, 1, -1, tc.existing, name); err != nil {
				t.Fatal(err)
			}
			err = kafka.EnsureTopics(ctx, adm, topics.Specs(1))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("EnsureTopics with %s existing as %v: %v, want no error", name, tc.existing, err)
				}
				return
			}
			want := tc.want
			if strings.Contains(want, "%s") {
				want = strings.ReplaceAll(want, "%s", name)
			}
			if err == nil || !strings.Contains(err.Error(), "topic "+name+" "+want) {
				t.Fatalf("EnsureTopics with %s existing as %v: %v, want an error saying %q", name, tc.existing, err, "topic "+name+" "+want)
			}
			if !errors.Is(err, kafka.ErrCleanupPolicy) || !kafka.Fatal(err) {
				t.Errorf("error %v: want ErrCleanupPolicy and Fatal (no start-up retries it)", err)
			}
			// The other topics were created all the same (the broker's
			// metadata may lag a moment behind the creation).
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				listed, lerr := adm.ListTopics(ctx)
				var absent []string
				for _, spec := range topics.Specs(1) {
					if !listed.Has(spec.Name) {
						absent = append(absent, spec.Name)
					}
				}
				if lerr == nil && len(absent) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("topics not created after 30s: %v (%v)", absent, lerr)
				}
			}
		})
	}
}
