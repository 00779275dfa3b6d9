package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/testenv"
	"github.com/exospherehost/exo-alerts/schemas"
)

// The recorder runs as its own command, and in the controlplane command's
// process by default; either records what the delivery topics carry, in
// the consumer group EXO_RECORDER_GROUP names.
func TestRecorderCommands(t *testing.T) {
	delivery, err := os.ReadFile("../../schemas/examples/delivery.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"recorder", "--metrics-addr", ""}, {"controlplane", "--addr", "127.0.0.1:0"}} {
		t.Run(args[0], func(t *testing.T) {
			dbURL, brokers, topics := testenv.DatabaseURL(t, true), testenv.Brokers(t), testenv.Topics(t)
			group := topics.Prefix + "history"
			t.Setenv("DATABASE_URL", dbURL)
			t.Setenv("KAFKA_BROKERS", strings.Join(brokers, ","))
			t.Setenv("EXO_TOPIC_PREFIX", topics.Prefix)
			t.Setenv("EXO_KEYRING", keyring.Generate("k1"))
			t.Setenv("EXO_RECORDER_GROUP", group)
			cl, err := kgo.NewClient(kafka.ClientOpts(brokers, nil)...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := kafka.EnsureTopics(ctx, kadm.NewClient(cl), topics.Specs(1)); err != nil {
				t.Fatal(err)
			}
			pool, err := pgxpool.New(ctx, dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()

			rctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- run(rctx, args) }()
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topics.Deliveries, Key: schemas.RecordKey("acme", "whk_01JD5A"), Value: delivery}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(30 * time.Second); ; {
				var n int
				if err := pool.QueryRow(ctx, `SELECT count(*) FROM alerts`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				committed, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
				if n == 1 && err == nil && len(committed.Sorted()) > 0 {
					break
				}
				select {
				case err := <-done:
					t.Fatalf("%s stopped: %v", args[0], err)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %d alerts recorded and offsets %v (%v) of group %s after 30s; want the delivery recorded and committed",
						args[0], n, committed, err, group)
				}
				time.Sleep(50 * time.Millisecond)
			}
			stop()
			if err := <-done; err != nil {
				t.Errorf("%s: %v", args[0], err)
			}
		})
	}
}

// EXO_CONTROLPLANE_RECORDER is on or off; anything else stops the start.
func TestControlplaneRecorderSwitch(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://exo@127.0.0.1:1/exo")
	t.Setenv("KAFKA_BROKERS", "127.0.0.1:1")
	t.Setenv("EXO_KEYRING", keyring.Generate("k1"))
	t.Setenv("EXO_CONTROLPLANE_RECORDER", "no")
	_, err := runCmd(t, "controlplane")
	if err == nil || !strings.HasPrefix(err.Error(), "configuration: ") || !strings.Contains(err.Error(), `EXO_CONTROLPLANE_RECORDER: "no" is neither on nor off`) {
		t.Fatalf("controlplane with EXO_CONTROLPLANE_RECORDER=no: err = %v, want a configuration error naming it", err)
	}
}
