package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestFatal: only what no wait can cure ends a start-up; what an outage
// looks like is waited out.
func TestFatal(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &net.OpError{Err: syscall.ECONNREFUSED}}
	for _, tc := range []struct {
		name  string
		err   error
		fatal bool
	}{
		{"dial refused", fmt.Errorf("kafka: create topic x: %w", refused), false},
		{"request timed out", kerr.RequestTimedOut, false},
		{"deadline of one request", fmt.Errorf("list offsets: %w", context.DeadlineExceeded), false},
		{"topic not known yet", fmt.Errorf("ktable x: list end offsets: %w", kerr.UnknownTopicOrPartition), false},
		{"no leader yet", kerr.LeaderNotAvailable, false},
		{"controller moving", kerr.NotController, false},
		{"too few brokers up for the replication factor", kerr.InvalidReplicationFactor, false},
		{"marked permanent", Permanent(errors.New("run-state has 2 partitions, events 3")), true},
		{"permanent wrapped again", fmt.Errorf("processor: %w", Permanent(errors.New("bad"))), true},
		{"topic authorisation", fmt.Errorf("kafka: create topic x: %w", kerr.TopicAuthorizationFailed), true},
		{"cluster authorisation", kerr.ClusterAuthorizationFailed, true},
		{"group authorisation", kerr.GroupAuthorizationFailed, true},
		{"sasl", kerr.SaslAuthenticationFailed, true},
		{"invalid topic config", fmt.Errorf("kafka: create topic x: %w", kerr.InvalidConfig), true},
		{"invalid partitions", kerr.InvalidPartitions, true},
		{"invalid topic name", kerr.InvalidTopicException, true},
		{"policy", kerr.PolicyViolation, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Fatal(tc.err); got != tc.fatal {
				t.Errorf("Fatal(%v) = %v, want %v", tc.err, got, tc.fatal)
			}
		})
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
	inner := kerr.InvalidConfig
	if !errors.Is(Permanent(inner), inner) {
		t.Error("Permanent hides the error it marks from errors.Is")
	}
}

// TestWait: a step failing transiently is retried with a capped doubling
// backoff until it succeeds, the wait logged once and its end once; a fatal
// error ends the wait at once; an ended context ends it too.
func TestWait(t *testing.T) {
	t.Parallel()
	transient := fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
	now := make(chan time.Time)
	close(now)
	instant := func(d time.Duration) <-chan time.Time { return now }

	t.Run("retried until it succeeds", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
		var waits []time.Duration
		after := func(d time.Duration) <-chan time.Time { waits = append(waits, d); return now }
		tries := 0
		err := wait(context.Background(), log, "create topics", func(context.Context) error {
			if tries++; tries < 8 {
				return transient
			}
			return nil
		}, after)
		if err != nil {
			t.Fatalf("wait = %v, want nil", err)
		}
		want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
		if fmt.Sprint(waits) != fmt.Sprint(want) {
			t.Errorf("backoffs %v, want %v", waits, want)
		}
		out := buf.String()
		if n := strings.Count(out, "kafka unreachable at start; waiting"); n != 1 {
			t.Errorf("the wait logged %d times, want once:\n%s", n, out)
		}
		if n := strings.Count(out, "kafka reachable again"); n != 1 {
			t.Errorf("its end logged %d times, want once:\n%s", n, out)
		}
	})
	t.Run("no log when the first try succeeds", func(t *testing.T) {
		t.Parallel()
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		if err := wait(context.Background(), log, "s", func(context.Context) error { return nil }, instant); err != nil {
			t.Fatal(err)
		}
		if buf.Len() != 0 {
			t.Errorf("logged %q", buf.String())
		}
	})
	t.Run("fatal ends it at once", func(t *testing.T) {
		t.Parallel()
		tries := 0
		refusal := Permanent(errors.New("partition counts differ"))
		err := wait(context.Background(), slog.New(slog.DiscardHandler), "s", func(context.Context) error {
			if tries++; tries < 3 {
				return transient
			}
			return refusal
		}, instant)
		if !errors.Is(err, refusal) || tries != 3 {
			t.Errorf("wait = %v after %d tries, want the refusal after 3", err, tries)
		}
	})
	t.Run("ended context", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		tries := 0
		err := wait(ctx, slog.New(slog.DiscardHandler), "s", func(context.Context) error {
			if tries++; tries == 5 {
				cancel()
			}
			return transient
		}, instant)
		if !errors.Is(err, context.Canceled) || tries != 5 {
			t.Errorf("wait = %v after %d tries, want context.Canceled after 5", err, tries)
		}
	})
}
