package processor

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/internal/kafka"
	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// Before it produces, a batch waits for the previous transaction to be
// complete on its coordinator (awaitSettled): the state it asks for must
// be readable with the processor's client, and a committed transaction
// must end up no longer preparing, or every batch would wait settleMax.
func TestAwaitSettledAfterCommit(t *testing.T) {
	t.Parallel()
	brokers := testenv.Brokers(t)
	topics := testenv.Topics(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := topics.Prefix + "processor-settle"
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(id), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(ctx, kadm.NewClient(cl), topics.Specs(1)); err != nil {
		t.Fatalf("create topics: %v", err)
	}
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topics.Deliveries, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit: %v", err)
	}
	p := &Processor{cfg: Config{TransactionalID: id}, adm: kadm.NewClient(cl), log: slog.New(slog.DiscardHandler), endedAt: time.Now()}

	p.awaitSettled(ctx)(true)
	testenv.Eventually(t, "the committed transaction complete", func() (bool, string) {
		state, err := p.txnState(ctx, p.adm)
		return err == nil && state == "CompleteCommit", fmt.Sprintf("state %q, err %v", state, err)
	})
	if p.preparing(ctx, p.adm) {
		t.Fatal("a complete transaction is reported preparing")
	}
	// Stopped rather than waited for (the batch is carried): no wait
	// outlives the call's context.
	p.endedAt = time.Now()
	p.awaitSettled(ctx)(false)
}

// Without a transaction ended lately there is nothing to wait for, and
// nothing is asked (no admin client is needed).
func TestAwaitSettledNothingEnded(t *testing.T) {
	t.Parallel()
	p := &Processor{}
	p.awaitSettled(context.Background())(true)
	p.endedAt = time.Now().Add(-2 * settleWindow)
	p.awaitSettled(context.Background())(true)
}
