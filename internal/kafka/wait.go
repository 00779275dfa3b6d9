package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
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
// was marked Permanent, it is a broker answer in permanentKafkaErrs (a
// refused SASL authentication among them), or a TLS handshake that failed
// for good (BadTLS).
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
	return BadTLS(err)
}

// BadTLS reports a TLS handshake that no wait can cure: the broker's
// certificate does not verify (signed by a CA not trusted, issued for
// another name, expired), the broker refused the handshake or the client's
// certificate (a TLS alert), or the port does not speak TLS.
func BadTLS(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		header   tls.RecordHeaderError
		alert    tls.AlertError
		op       *net.OpError
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &hostname),
		errors.As(err, &invalid), errors.As(err, &header), errors.As(err, &alert):
		return true
	case errors.As(err, &op):
		// An alert the broker sent ("remote error: tls: unknown certificate
		// authority", "... certificate required").
		return op.Op == "remote error"
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

// CheckConnection connects to the brokers with opts (kgo's Ping: a
// connection, its TLS handshake and SASL authentication, an ApiVersions
// request) until that succeeds, waiting through an outage like Wait, and
// returns at once an error Fatal says no retry cures: a TLS handshake that
// fails, an authentication refused. Components that ride out Kafka
// outages without exiting (the control plane serves its API, the recorder
// retries its fetches) run it beside themselves, so that a wrong password
// or CA ends the process with that error instead of a retry that never
// succeeds. It returns nil when the connection works or ctx ends.
func CheckConnection(ctx context.Context, log *slog.Logger, opts []kgo.Opt) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka: client: %w", err)
	}
	defer cl.Close()
	err = Wait(ctx, log, "kafka: connect", func(ctx context.Context) error { return cl.Ping(ctx) })
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("kafka: the brokers refuse the connection (EXO_KAFKA_TLS*, EXO_KAFKA_SASL_*): %w", err)
	}
	return nil
}

// Handshake connects cl once (its TLS handshake, SASL authentication and an
// ApiVersions request) and returns the error only when Fatal says no retry
// cures it: one-shot commands (emit, quarantine replay) say at once that
// the brokers refuse them, instead of retrying until their produce times
// out. An unreachable broker (nil here) is left to that timeout.
func Handshake(ctx context.Context, cl *kgo.Client) error {
	if err := cl.Ping(ctx); err != nil && Fatal(err) {
		return fmt.Errorf("kafka: the brokers refuse the connection (EXO_KAFKA_TLS*, EXO_KAFKA_SASL_*): %w", err)
	}
	return nil
}
