package kafka

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Backoff between the tries of a start-up step while Kafka is unreachable.
const (
	MinStartBackoff = 250 * time.Millisecond
	MaxStartBackoff = 5 * time.Second
)

// ErrPermanent marks an error that no retry can cure (see Permanent).
var ErrPermanent = errors.New("permanent")

// permanentError is an error marked permanent by Permanent.
type permanentError struct{ err error }

func (e permanentError) Error() string        { return e.err.Error() }
func (e permanentError) Unwrap() error        { return e.err }
func (e permanentError) Is(target error) bool { return target == ErrPermanent }

// Permanent marks err as one that retrying cannot cure (a refused
// configuration, topics laid out in a way the component cannot work with):
// Wait returns it at once. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// permanentKafkaErrs are the broker's answers that stay the same however
// long one waits: a missing authorisation, or a request the broker refuses
// as invalid. InvalidReplicationFactor is not among them: a cluster coming
// back broker by broker refuses the default replication factor until enough
// brokers are up.
var permanentKafkaErrs = []error{
	kerr.TopicAuthorizationFailed, kerr.GroupAuthorizationFailed,
	kerr.ClusterAuthorizationFailed, kerr.TransactionalIDAuthorizationFailed,
	kerr.SaslAuthenticationFailed, kerr.UnsupportedSaslMechanism,
	kerr.InvalidConfig, kerr.InvalidPartitions, kerr.InvalidTopicException,
	kerr.InvalidReplicaAssignment, kerr.PolicyViolation,
}

// Fatal reports whether err ends a start-up rather than being retried: it
// was marked Permanent, or it is a broker answer in permanentKafkaErrs.
// Everything else — a broker that cannot be dialed, a request timing out,
// a topic or partition leader not known yet — is what an outage looks like,
// and waiting it out costs less than exiting (an orchestrator restarting
// the component during the outage would only find it unreachable again).
func Fatal(err error) bool {
	if errors.Is(err, ErrPermanent) {
		return true
	}
	for _, p := range permanentKafkaErrs {
		if errors.Is(err, p) {
			return true
		}
	}
	return false
}

// Wait runs step until it succeeds, fails with a Fatal error (returned),
// or ctx ends (ctx.Err() is returned). Between tries it backs off from
// MinStartBackoff, doubling up to MaxStartBackoff. A wait is logged once at
// WARN when the first try fails and once when a try succeeds again, not at
// every try. what names the step in the logs.
func Wait(ctx context.Context, log *slog.Logger, what string, step func(context.Context) error) error {
	return wait(ctx, log, what, step, time.After)
}

// wait is Wait with the timer injected, so tests control time.
func wait(ctx context.Context, log *slog.Logger, what string, step func(context.Context) error, after func(time.Duration) <-chan time.Time) error {
	var (
		since   time.Time
		tries   int
		backoff time.Duration
	)
	for {
		err := step(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			if tries > 0 {
				log.Warn("kafka reachable again; start-up resumed", "step", what, "waited_s", time.Since(since).Round(time.Millisecond).Seconds(), "tries", tries+1)
			}
			return nil
		}
		if Fatal(err) {
			return err
		}
		tries++
		if tries == 1 {
			since = time.Now()
			backoff = MinStartBackoff
			log.Warn("kafka unreachable at start; waiting", "step", what, "err", err)
		} else {
			backoff = min(2*backoff, MaxStartBackoff)
			log.Debug("start-up step failed again; retrying", "step", what, "err", err, "tries", tries, "backoff", backoff)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-after(backoff):
		}
	}
}
