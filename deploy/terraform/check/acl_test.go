package check

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/exospherehost/exo-alerts/dispatcher"
	"github.com/exospherehost/exo-alerts/internal/kafka"
)

// need is one thing a component does on Kafka, as the ACL check of the
// broker sees it: an operation on a resource.
type need struct {
	resourceType, name, op string
	why                    string
}

// needs lists what each component does (read from its code: which topics
// it creates, consumes and produces, in which group, with which
// transactional id). A change there that this list misses makes the
// component fail on a cluster with ACLs; a change here that the module
// misses fails this test.
func needs(prefix string, tiers []time.Duration) map[string][]need {
	t := kafka.NewTopics(prefix)
	var base []string
	for _, s := range t.Specs(3) {
		base = append(base, s.Name)
	}
	var tierTopics []string
	for _, d := range tiers {
		tierTopics = append(tierTopics, dispatcher.TierTopic(t, d))
	}
	topics := func(op, why string, names ...string) []need {
		var out []need
		for _, n := range names {
			out = append(out, need{"Topic", n, op, why})
		}
		return out
	}
	creates := func(names ...string) []need {
		// kafka.EnsureTopics at start: CreateTopics (answered
		// TOPIC_AUTHORIZATION_FAILED, not "exists", without Create), and
		// reading the settings of existing topics.
		return append(topics("Create", "EnsureTopics", names...), topics("DescribeConfigs", "EnsureTopics: settings of existing topics", names...)...)
	}
	idempotent := need{"Cluster", "kafka-cluster", "IdempotentWrite", "idempotent producer (brokers before 3.0)"}
	out := map[string][]need{}
	out["controlplane"] = slices.Concat(
		creates(base...),
		topics("Write", "outbox relay", t.Rules, t.Endpoints, t.Tenants, t.TenantLimits, t.Deliveries),
		[]need{idempotent},
	)
	out["processor"] = slices.Concat(
		creates(base...),
		topics("Read", "consumes events and aggregate inputs; tables of rules, endpoints, the rollout and tenant limits; restores run and aggregate state",
			t.Events, t.AggregateInput, t.Rules, t.Endpoints, t.Tenants, t.TenantLimits, t.RunState, t.AggregateState),
		topics("Write", "transactions", t.Deliveries, t.RunState, t.RuleErrors, t.EventsInvalid,
			t.AggregateInput, t.AggregateState, t.AggregateGroups, t.QuotaUsage),
		[]need{
			{"Group", prefix + "processor", "Read", "consumer group (EXO_PROCESSOR_GROUP default), offsets in transactions"},
			// The default <prefix>processor-<hostname>, and the chart's pod names.
			{"TransactionalID", prefix + "processor-exo-alerts-processor-0", "Write", "transactional id (EXO_PROCESSOR_TRANSACTIONAL_ID)"},
			{"TransactionalID", prefix + "processor-ip-10-0-3-7", "Write", "transactional id (EXO_PROCESSOR_TRANSACTIONAL_ID)"},
			idempotent,
		},
	)
	dispGroups := []need{{"Group", prefix + "dispatcher", "Read", "consumer group of deliveries (EXO_DISPATCHER_GROUP default)"}}
	for _, d := range tiers {
		dispGroups = append(dispGroups, need{"Group", prefix + "dispatcher.retry." + dispatcher.TierName(d), "Read", "consumer group of a retry tier"})
	}
	out["dispatcher"] = slices.Concat(
		creates(append(slices.Clone(base), tierTopics...)...),
		topics("Read", "deliveries, endpoints and rollout tables, retry tiers", append([]string{t.Deliveries, t.Endpoints, t.Tenants}, tierTopics...)...),
		topics("Write", "retries, results, dead letters, endpoint health", append([]string{t.DeliveryResults, t.DeliveriesDLQ, t.EndpointHealth}, tierTopics...)...),
		// warnUnconfiguredTiers lists the tier topics, configured or not.
		topics("Describe", "lists retry tier topics no longer configured", t.Deliveries+".retry.45s"),
		dispGroups,
		[]need{idempotent},
	)
	out["recorder"] = slices.Concat(
		topics("Read", "delivery history, groups, quota usage, endpoint health", t.Deliveries, t.DeliveryResults, t.DeliveriesDLQ, t.RuleErrors,
			t.AggregateGroups, t.QuotaUsage, t.EndpointHealth),
		[]need{{"Group", prefix + "recorder", "Read", "consumer group (EXO_RECORDER_GROUP default)"}},
	)
	return out
}

type acl struct{ principal, resourceType, pattern, name, op string }

func (a acl) String() string {
	return fmt.Sprintf("%s %s %s(%s) %s", a.principal, a.op, a.resourceType, a.pattern, a.name)
}

// implied: the operations an ACL for op also allows (Kafka's AclEntry).
func implied(op string) []string {
	switch op {
	case "Read", "Write", "Delete", "Alter":
		return []string{op, "Describe"}
	case "AlterConfigs":
		return []string{op, "DescribeConfigs"}
	}
	return []string{op}
}

func (a acl) allows(principal string, n need) bool {
	if a.principal != principal || a.resourceType != n.resourceType || !slices.Contains(implied(a.op), n.op) {
		return false
	}
	switch a.pattern {
	case "Literal":
		return a.name == n.name
	case "Prefixed":
		return strings.HasPrefix(n.name, a.name)
	}
	return false
}

func moduleACLs(t *testing.T, e *Evaluated) []acl {
	t.Helper()
	var out []acl
	for key, attrs := range e.Resources["kafka_acl.this"] {
		a := acl{
			principal: attrs["acl_principal"].AsString(), resourceType: attrs["resource_type"].AsString(),
			pattern: attrs["resource_pattern_type_filter"].AsString(), name: attrs["resource_name"].AsString(),
			op: attrs["acl_operation"].AsString(),
		}
		if attrs["acl_permission_type"].AsString() != "Allow" || attrs["acl_host"].AsString() != "*" {
			t.Errorf("kafka_acl.this[%q]: want Allow from host *", key)
		}
		out = append(out, a)
	}
	return out
}

// TestACLsCoverEachComponent: each component's principal is allowed
// everything the component does on Kafka, and no ACL allows what no
// component assigned to its principal does: with a principal per
// component, with one shared by all, with the recorder in the control
// plane's process, for another prefix and retry tiers; and none without
// principals.
func TestACLsCoverEachComponent(t *testing.T) {
	m := load(t)
	cases := []struct {
		name       string
		inputs     map[string]cty.Value
		prefix     string
		tiers      []time.Duration
		principals map[string][]string // principal => components
	}{
		{
			name:   "a principal per component",
			inputs: with(required(), "principals", principals("User:exo-cp", "User:exo-proc", "User:exo-disp", "User:exo-rec")),
			prefix: kafka.DefaultPrefix, tiers: dispatcher.DefaultTiers,
			principals: map[string][]string{"User:exo-cp": {"controlplane"}, "User:exo-proc": {"processor"}, "User:exo-disp": {"dispatcher"}, "User:exo-rec": {"recorder"}},
		},
		{
			name:   "one principal for all",
			inputs: with(required(), "principals", principals("User:exo", "User:exo", "User:exo", "User:exo")),
			prefix: kafka.DefaultPrefix, tiers: dispatcher.DefaultTiers,
			principals: map[string][]string{"User:exo": {"controlplane", "processor", "dispatcher", "recorder"}},
		},
		{
			name: "the control planes run the recorder",
			inputs: with(required(), "principals", principals("User:CN=cp", "User:CN=proc", "User:CN=disp", "User:CN=rec"),
				"controlplane_runs_recorder", cty.True),
			prefix: kafka.DefaultPrefix, tiers: dispatcher.DefaultTiers,
			principals: map[string][]string{"User:CN=cp": {"controlplane", "recorder"}, "User:CN=proc": {"processor"}, "User:CN=disp": {"dispatcher"}, "User:CN=rec": {"recorder"}},
		},
		{
			name: "another prefix and tiers",
			inputs: with(required(), "principals", principals("User:cp", "User:proc", "User:disp", "User:rec"),
				"topic_prefix", cty.StringVal("staging-"), "retry_tiers", strs("1s", "1m", "12h")),
			prefix: "staging-", tiers: []time.Duration{time.Second, time.Minute, 12 * time.Hour},
			principals: map[string][]string{"User:cp": {"controlplane"}, "User:proc": {"processor"}, "User:disp": {"dispatcher"}, "User:rec": {"recorder"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			acls := moduleACLs(t, evaluate(t, m, tc.inputs))
			all := needs(tc.prefix, tc.tiers)
			for principal, components := range tc.principals {
				var mine []need
				for _, c := range components {
					mine = append(mine, all[c]...)
				}
				for _, n := range mine {
					if !slices.ContainsFunc(acls, func(a acl) bool { return a.allows(principal, n) }) {
						t.Errorf("%s may not %s %s %s (%s)", principal, n.op, n.resourceType, n.name, n.why)
					}
				}
				for _, a := range acls {
					if a.principal == principal && !slices.ContainsFunc(mine, func(n need) bool { return a.allows(principal, n) }) {
						t.Errorf("ACL %s allows nothing %v do", a, components)
					}
				}
			}
			seen := map[acl]bool{}
			for _, a := range acls {
				if _, known := tc.principals[a.principal]; !known {
					t.Errorf("ACL %s for a principal not given", a)
				}
				if seen[a] {
					t.Errorf("ACL %s twice (two resources would manage one ACL)", a)
				}
				seen[a] = true
			}
		})
	}
	t.Run("no principals", func(t *testing.T) {
		t.Parallel()
		e := evaluate(t, m, required())
		if n := len(e.Resources["kafka_acl.this"]); n != 0 {
			t.Errorf("%d ACLs without principals, want none", n)
		}
	})
}
