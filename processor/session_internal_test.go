package processor

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Only errors no retry can cure end the processor; whatever an outage
// gives (timeouts, dial errors, coordinators moving, transactions that
// cannot end) ends the transaction session, which is started again.
func TestFatalKafkaErr(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return fmt.Errorf("processor: end transaction: %w", err) }
	for _, c := range []struct {
		err   error
		fatal bool
	}{
		{wrap(context.DeadlineExceeded), false},
		{wrap(errors.New("unable to dial: dial tcp 127.0.0.1:9092: connect: connection refused")), false},
		{wrap(kerr.NotCoordinator), false},
		{wrap(kerr.CoordinatorNotAvailable), false},
		{wrap(kerr.ConcurrentTransactions), false},
		{wrap(kerr.RequestTimedOut), false},
		{wrap(kerr.OperationNotAttempted), false},
		{wrap(kerr.ProducerFenced), true},
		{wrap(kerr.InvalidProducerEpoch), true},
		{wrap(kerr.TransactionalIDAuthorizationFailed), true},
		{wrap(kerr.GroupAuthorizationFailed), true},
		{fmt.Errorf("processor: transact session: %w: %w", errFatal, errors.New("invalid option")), true},
	} {
		if got := fatalKafkaErr(c.err); got != c.fatal {
			t.Errorf("fatalKafkaErr(%v) = %v, want %v", c.err, got, c.fatal)
		}
	}
}
