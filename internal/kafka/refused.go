package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
)

// RefusedForGood reports a produce error that retrying cannot cure: the
// record is too large, or the broker refuses the record or its topic. A
// consumer loop sets the record (or what made it) aside instead of
// retrying it.
func RefusedForGood(err error) bool {
	for _, e := range []error{kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidRecord,
		kerr.CorruptMessage, kerr.InvalidTopicException, kerr.PolicyViolation, kerr.InvalidRequiredAcks} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
