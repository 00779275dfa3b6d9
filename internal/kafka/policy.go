package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ErrCleanupPolicy is the error of a topic whose cleanup policy differs from
// the one the project needs (it is also Permanent).
var ErrCleanupPolicy = errors.New("wrong cleanup policy")

// checkPolicies checks the cleanup policy of topics that existed before
// EnsureTopics (created by an operator, Terraform, or an earlier version):
//
//   - a topic that must be compacted (alert-rules, webhook-endpoints,
//     processor.run-state, tenants, processor.aggregate-state,
//     aggregate-groups, tenant-limits) holds state by key: without "compact" its rows
//     are deleted after retention.ms, and "compact,delete" deletes them too
//     unless retention.ms and retention.bytes are -1;
//   - a topic that must not be compacted (events, deliveries, results,
//     processor.aggregate-input, quota-usage, endpoint-health) keeps
//     every record: compacted, all but the last record of each key go.
//
// Either is refused with a Permanent error wrapping ErrCleanupPolicy that
// names every such topic and the kafka-configs command that fixes it.
// Without the DescribeConfigs permission on a topic (an ACL) it cannot be
// checked and is let through.
func checkPolicies(ctx context.Context, adm *kadm.Client, specs []Spec) error {
	if len(specs) == 0 {
		return nil
	}
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	rcs, err := describeConfigs(ctx, adm, names)
	if err != nil {
		if unauthorised(err) {
			return nil
		}
		return fmt.Errorf("kafka: describe the configuration of topics %s: %w", strings.Join(names, ", "), err)
	}
	var problems []string
	for _, s := range specs {
		rc, err := rcs.On(s.Name, nil)
		if err == nil {
			err = rc.Err
		}
		if unauthorised(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("kafka: describe the configuration of topic %s: %w", s.Name, err)
		}
		if p := policyProblem(s, rc.Configs); p != "" {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		return Permanent(fmt.Errorf("kafka: %w: %s", ErrCleanupPolicy, strings.Join(problems, "; ")))
	}
	return nil
}

// describeConfigs describes the topics' configurations. A topic another
// component created a moment ago (its CreateTopics answered "already
// exists" here) may still be unknown to the broker that answers: that is
// retried for a few seconds instead of failing the start-up of the caller.
func describeConfigs(ctx context.Context, adm *kadm.Client, names []string) (kadm.ResourceConfigs, error) {
	wait := 50 * time.Millisecond
	for deadline := time.Now().Add(5 * time.Second); ; wait = min(2*wait, time.Second) {
		rcs, err := adm.DescribeTopicConfigs(ctx, names...)
		unknown := errors.Is(err, kerr.UnknownTopicOrPartition)
		for _, rc := range rcs {
			unknown = unknown || errors.Is(rc.Err, kerr.UnknownTopicOrPartition)
		}
		if !unknown || time.Now().After(deadline) {
			return rcs, err
		}
		select {
		case <-ctx.Done():
			return rcs, err
		case <-time.After(wait):
		}
	}
}

func unauthorised(err error) bool {
	return errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed)
}

// policyProblem describes what is wrong with the cleanup policy of the
// topic s described by cfgs, or returns "".
func policyProblem(s Spec, cfgs []kadm.Config) string {
	value := func(key, def string) string {
		for _, c := range cfgs {
			if c.Key == key && c.Value != nil {
				return *c.Value
			}
		}
		return def
	}
	var have []string
	for _, p := range strings.Split(strings.Trim(value("cleanup.policy", "delete"), "[]"), ",") {
		if p = strings.ToLower(strings.TrimSpace(p)); p != "" {
			have = append(have, p)
		}
	}
	policy := strings.Join(have, ",")
	compacted := slices.Contains(have, "compact")
	wantCompact := s.Configs["cleanup.policy"] != nil && *s.Configs["cleanup.policy"] == "compact"
	fix := func(v string) string {
		return fmt.Sprintf("kafka-configs.sh --bootstrap-server <broker> --alter --entity-type topics --entity-name %s --add-config %s", s.Name, v)
	}
	switch {
	case wantCompact && !compacted:
		return fmt.Sprintf("topic %s has cleanup.policy=%s but must be compacted, or the state it holds is deleted after retention.ms (fix: %s)",
			s.Name, policy, fix("cleanup.policy=compact"))
	case wantCompact && slices.Contains(have, "delete"):
		ms, bytes := value("retention.ms", "604800000"), value("retention.bytes", "-1")
		if ms != "-1" || bytes != "-1" {
			return fmt.Sprintf("topic %s has cleanup.policy=%s with retention.ms=%s and retention.bytes=%s: its state is deleted when that retention ends (fix: %s)",
				s.Name, policy, ms, bytes, fix("cleanup.policy=compact"))
		}
	case !wantCompact && compacted:
		return fmt.Sprintf("topic %s has cleanup.policy=%s but must not be compacted: compaction keeps only the last record of each key and drops the others (fix: %s)",
			s.Name, policy, fix("cleanup.policy=delete"))
	}
	return ""
}
