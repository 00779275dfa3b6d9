package check

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/release"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// valueSets are the values every check renders the chart with.
var valueSets = []struct{ name, file string }{
	{"defaults", ""},
	{"full", fullValues},
}

// TestLint lints the chart as `helm lint --strict` does (warnings fail),
// values schema included, with the defaults and with the full values.
func TestLint(t *testing.T) {
	t.Parallel()
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			l := action.NewLint()
			l.Strict, l.Namespace, l.KubeVersion = true, namespace, kubeVersionOf()
			res := l.Run([]string{chartDir}, loadValues(t, vs.file))
			for _, m := range res.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("lint: %v", m)
				} else {
					t.Logf("lint: %v", m)
				}
			}
			for _, err := range res.Errors {
				t.Errorf("lint: %v", err)
			}
			if res.TotalChartsLinted != 1 {
				t.Errorf("linted %d charts, want 1", res.TotalChartsLinted)
			}
		})
	}
}

// TestValuesAreRefused: a misspelt or invalid value, or a combination that
// cannot work, fails the install with the value to fix, instead of being
// ignored.
func TestValuesAreRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, values, want string }{
		{"misspelt top-level value", "topic:\n  prefix: x.\n", "topic"},
		{"misspelt nested value", "processor:\n  replica: 2\n", "replica"},
		{"unknown SASL mechanism", "kafka:\n  sasl:\n    mechanism: SCRAM-SHA-1\n", "mechanism"},
		{"partitions out of range", "topics:\n  partitions: 0\n", "partitions"},
		{"privileged port", "controlplane:\n  port: 80\n", "port"},
		{"retry tier not a duration", "topics:\n  retryTiers: [5 seconds]\n", "retryTiers"},
		{"SASL without credentials", "kafka:\n  sasl:\n    mechanism: PLAIN\n", "kafka.sasl.username"},
		{"client certificate without key", "kafka:\n  tls:\n    enabled: true\n    existingSecret: s\n    certKey: tls.crt\n", "kafka.tls.keyKey"},
		{"TLS secret without TLS", "kafka:\n  tls:\n    existingSecret: s\n", "kafka.tls.enabled"},
		{"autoscaling bounds reversed", "dispatcher:\n  autoscaling:\n    enabled: true\n    minReplicas: 5\n    maxReplicas: 2\n", "minReplicas"},
		{"negative quota", "quota:\n  tenantPerMinute: -1\n", "tenantPerMinute"},
		{"quota not a number", "quota:\n  globalPerMinute: lots\n", "globalPerMinute"},
		{"quota in one component's env", "processor:\n  env:\n    EXO_TENANT_DELIVERY_QUOTA: 100\n", "quota.tenantPerMinute"},
		{"global quota in the control plane's env", "controlplane:\n  env:\n    EXO_GLOBAL_DELIVERY_QUOTA: 100\n", "quota.globalPerMinute"},
		{"aggregate delay not a duration", "processor:\n  aggregateDelay: 5 seconds\n", "aggregateDelay"},
		{"negative aggregate groups", "processor:\n  aggregateMaxGroups: -5\n", "aggregateMaxGroups"},
		{"unhealthy-after not a duration", "dispatcher:\n  unhealthyAfter: soon\n", "unhealthyAfter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := renderChart(valuesYAML(t, tc.values), releaseName)
			if err == nil {
				t.Fatalf("values %q rendered; want an error naming %q", tc.values, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// TestStrictDecodingCatchesMistakes proves the decoder the other checks rely
// on refuses what the API server would refuse or silently drop.
func TestStrictDecodingCatchesMistakes(t *testing.T) {
	t.Parallel()
	const ok = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replicas: 1\n"
	if _, err := decodeStrict(ok); err != nil {
		t.Fatalf("a valid Deployment: %v", err)
	}
	for name, doc := range map[string]string{
		"unknown field":       strings.Replace(ok, "replicas: 1", "replica: 1", 1),
		"field of wrong case": strings.Replace(ok, "replicas: 1", "Replicas: 1", 1),
		"wrong type":          strings.Replace(ok, "replicas: 1", "replicas: two", 1),
		"duplicate field":     ok + "  replicas: 2\n",
		"unknown kind":        strings.Replace(ok, "kind: Deployment", "kind: Deploymnet", 1),
		"unknown ServiceMonitor field": "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: x\n" +
			"spec:\n  selector: {}\n  endpoints:\n    - port: metrics\n      intervall: 30s\n",
	} {
		if _, err := decodeStrict(doc); err == nil {
			t.Errorf("%s: decoded without error:\n%s", name, doc)
		}
	}
}

// TestRenderedObjects renders the chart with each value set and checks what
// it holds: every manifest decodes strictly into its API type (in render),
// and the kinds and counts are those the values ask for.
func TestRenderedObjects(t *testing.T) {
	t.Parallel()
	want := map[string]map[string]int{
		"defaults": {"Deployment": 3, "StatefulSet": 1, "Service": 4, "PodDisruptionBudget": 4, "Job": 1,
			"Secret": 2, "ServiceAccount": 1},
		// Every Secret exists already: the chart creates none.
		"full": {"Deployment": 3, "StatefulSet": 1, "Service": 4, "PodDisruptionBudget": 4, "Job": 1,
			"ServiceAccount": 1, "HorizontalPodAutoscaler": 2, "ServiceMonitor": 4, "NetworkPolicy": 4},
	}
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			got := map[string]int{}
			for _, m := range render(t, loadValues(t, vs.file)) {
				got[m.kind()]++
				if acc, ok := m.obj.(metav1.Object); ok && acc.GetNamespace() != "" && acc.GetNamespace() != namespace {
					t.Errorf("%s: namespace %q, not the release's", m, acc.GetNamespace())
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want[vs.name]) {
				t.Errorf("rendered %v, want %v", got, want[vs.name])
			}
		})
	}
}

// TestLongReleaseNames: a release name as long as Helm allows (53) still
// gives names Kubernetes accepts: DNS labels for Services and everything
// else, and a StatefulSet name short enough for its pods'
// controller-revision-hash label.
func TestLongReleaseNames(t *testing.T) {
	t.Parallel()
	rel := strings.Repeat("r", 44) + "-alerting" // 53 characters
	dns := regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	for _, m := range renderIn(t, loadValues(t, fullValues), rel, namespace) {
		if n := m.name(); len(n) > 63 || !dns.MatchString(n) {
			t.Errorf("%s: name %q is not a DNS label", m, n)
		}
	}
	for _, m := range renderIn(t, map[string]any{}, rel, namespace) {
		if n := m.name(); len(n) > 63 || !dns.MatchString(n) {
			t.Errorf("%s: name %q is not a DNS label", m, n)
		}
		if s, ok := m.obj.(*appsv1.StatefulSet); ok && len(s.Name) > 52 {
			t.Errorf("StatefulSet %s: %d characters; its pods' controller-revision-hash label would pass 63", s.Name, len(s.Name))
		}
	}
}

// TestPodsAreLockedDown: every container of every workload runs as user
// 65532, non-root, read-only root, no privilege escalation, no capabilities,
// the runtime's seccomp profile, and no service account token.
func TestPodsAreLockedDown(t *testing.T) {
	t.Parallel()
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			ws := workloads(render(t, loadValues(t, vs.file)))
			if len(ws) != 5 {
				t.Fatalf("want 5 workloads (controlplane, processor, dispatcher, recorder, migrate), got %d", len(ws))
			}
			for _, w := range ws {
				spec := w.pod.Spec
				psc := spec.SecurityContext
				if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("%s %s: pod without seccomp RuntimeDefault", w.kind, w.name)
				}
				if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
					t.Errorf("%s %s: mounts a service account token it does not need", w.kind, w.name)
				}
				if len(spec.InitContainers) > 0 {
					t.Errorf("%s %s: init containers are not expected", w.kind, w.name)
				}
				for _, c := range spec.Containers {
					sc := c.SecurityContext
					where := fmt.Sprintf("%s %s container %s", w.kind, w.name, c.Name)
					if sc == nil {
						t.Errorf("%s: no securityContext", where)
						continue
					}
					nonRoot := sc.RunAsNonRoot
					if nonRoot == nil && psc != nil {
						nonRoot = psc.RunAsNonRoot
					}
					user := sc.RunAsUser
					if user == nil && psc != nil {
						user = psc.RunAsUser
					}
					switch {
					case nonRoot == nil || !*nonRoot:
						t.Errorf("%s: runAsNonRoot is not true", where)
					case user == nil || *user != 65532:
						t.Errorf("%s: runAsUser is not 65532", where)
					case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
						t.Errorf("%s: root filesystem is writable", where)
					case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
						t.Errorf("%s: privilege escalation allowed", where)
					case sc.Privileged != nil && *sc.Privileged:
						t.Errorf("%s: privileged", where)
					case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
						t.Errorf("%s: capabilities are not drop ALL", where)
					case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
						t.Errorf("%s: seccomp is not RuntimeDefault", where)
					}
					if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
						t.Errorf("%s: no memory request and limit", where)
					}
				}
			}
		})
	}
}

// listenPort is the port of the address flag (--addr or --metrics-addr) a
// container's binary listens on.
func listenPort(t *testing.T, c corev1.Container) int32 {
	t.Helper()
	for _, a := range c.Args {
		for _, f := range []string{"--addr=", "--metrics-addr="} {
			if v, ok := strings.CutPrefix(a, f); ok {
				_, port, _ := strings.Cut(v, ":")
				n, err := strconv.Atoi(port)
				if err != nil {
					t.Fatalf("container %s: %s has no port", c.Name, a)
				}
				return int32(n)
			}
		}
	}
	t.Fatalf("container %s: no --addr or --metrics-addr in %v: the binary would listen on loopback only", c.Name, c.Args)
	return 0
}

// TestProbes: every long-running container has startup, liveness and
// readiness probes that reach the port its binary listens on (the address
// flag in its arguments), on the paths it serves: /healthz everywhere, and
// /readyz for readiness (the control plane: Postgres and Kafka reachable;
// the others: joined their group and restored their state).
func TestProbes(t *testing.T) {
	t.Parallel()
	readiness := map[string]string{"controlplane": "/readyz", "processor": "/readyz", "dispatcher": "/readyz", "recorder": "/readyz"}
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			ms := render(t, loadValues(t, vs.file))
			for comp, readyPath := range readiness {
				w := component(t, ms, comp)
				if len(w.pod.Spec.Containers) != 1 {
					t.Fatalf("%s: want one container", comp)
				}
				c := w.pod.Spec.Containers[0]
				port := listenPort(t, c)
				for _, p := range []struct {
					kind, path string
					probe      *corev1.Probe
				}{{"startup", "/healthz", c.StartupProbe}, {"liveness", "/healthz", c.LivenessProbe}, {"readiness", readyPath, c.ReadinessProbe}} {
					if p.probe == nil || p.probe.HTTPGet == nil {
						t.Errorf("%s: no %s httpGet probe", comp, p.kind)
						continue
					}
					if p.probe.HTTPGet.Path != p.path {
						t.Errorf("%s: %s probe on %s, want %s", comp, p.kind, p.probe.HTTPGet.Path, p.path)
					}
					if got := containerPort(c, p.probe.HTTPGet.Port.String()); got != port {
						t.Errorf("%s: %s probe on port %v (%d), but the binary listens on %d", comp, p.kind, p.probe.HTTPGet.Port.String(), got, port)
					}
				}
			}
		})
	}
}

// containerPort resolves a port name or number to the container's port.
func containerPort(c corev1.Container, port string) int32 {
	for _, p := range c.Ports {
		if p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port {
			return p.ContainerPort
		}
	}
	return -1
}

// TestArgsAndEnvAreReadByTheBinary: every flag a container passes is one
// its subcommand defines (`exo-alerts <command> -h` of the real binary), and
// every environment variable the chart sets is one the binary reads (a name
// in its sources) or the input of another variable's $(NAME).
func TestArgsAndEnvAreReadByTheBinary(t *testing.T) {
	t.Parallel()
	names, err := sourceEnvNames()
	if err != nil {
		t.Fatal(err)
	}
	readers := varCommands(t)
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			for _, w := range workloads(render(t, loadValues(t, vs.file))) {
				for _, c := range w.pod.Spec.Containers {
					where := fmt.Sprintf("%s %s container %s", w.kind, w.name, c.Name)
					if len(c.Command) > 0 {
						t.Errorf("%s: overrides the image's entrypoint (exo-alerts) with %v", where, c.Command)
					}
					if len(c.Args) == 0 {
						t.Errorf("%s: no subcommand", where)
						continue
					}
					var flags map[string]bool
					for _, a := range c.Args[1:] {
						if !strings.HasPrefix(a, "-") {
							continue
						}
						if flags == nil {
							flags = flagsOf(t, c.Args[0])
						}
						name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
						if !flags[name] {
							t.Errorf("%s: exo-alerts %s has no flag %q", where, c.Args[0], a)
						}
					}
					referenced := map[string]bool{}
					for _, e := range c.Env {
						for _, m := range ref.FindAllStringSubmatch(e.Value, -1) {
							referenced[m[1]] = true
						}
					}
					seen := map[string]bool{}
					for _, e := range c.Env {
						if seen[e.Name] {
							t.Errorf("%s: %s is set twice", where, e.Name)
						}
						seen[e.Name] = true
						if !names[e.Name] && !referenced[e.Name] {
							t.Errorf("%s: sets %s, which the binary does not read", where, e.Name)
						}
						if cmds, ok := readers[e.Name]; ok && !slices.Contains(cmds, c.Args[0]) {
							t.Errorf("%s: sets %s, which only exo-alerts %s reads", where, e.Name, strings.Join(cmds, ", "))
						}
					}
				}
			}
		})
	}
}

// varCommands reads internal/config/vars.go, the binary's table of
// variables, for the commands each variable with a literal command list is
// read by.
func varCommands(t *testing.T) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(repoRoot + "/internal/config/vars.go")
	if err != nil {
		t.Fatal(err)
	}
	entry := regexp.MustCompile(`Name: "([A-Z0-9_]+)",[^\n]*Commands: \[\]string\{([^}]*)\}`)
	out := map[string][]string{}
	for _, m := range entry.FindAllStringSubmatch(string(raw), -1) {
		for c := range strings.SplitSeq(m[2], ",") {
			out[m[1]] = append(out[m[1]], strings.Trim(strings.TrimSpace(c), `"`))
		}
	}
	for _, name := range []string{"EXO_TENANT_DELIVERY_QUOTA", "EXO_PROCESSOR_AGGREGATE_DELAY", "EXO_DISPATCHER_UNHEALTHY_AFTER"} {
		if len(out[name]) == 0 {
			t.Fatalf("internal/config/vars.go: no commands found for %s: has the table's layout changed?", name)
		}
	}
	return out
}

// TestTuningValuesReachTheirComponent: the quota goes, the same, to the
// processor that enforces it and the control plane that reports it, and to
// nothing else; the stage-2 and breaker settings reach the processor and
// the dispatcher; with the defaults none is set (the binary's defaults
// apply). Large numbers are written as integers, not 1e+06.
func TestTuningValuesReachTheirComponent(t *testing.T) {
	t.Parallel()
	set := map[string]string{
		"EXO_TENANT_DELIVERY_QUOTA":          "600",
		"EXO_GLOBAL_DELIVERY_QUOTA":          "1000000",
		"EXO_PROCESSOR_AGGREGATE_DELAY":      "10s",
		"EXO_PROCESSOR_AGGREGATE_MAX_GROUPS": "500000",
		"EXO_DISPATCHER_UNHEALTHY_AFTER":     "30m",
	}
	where := map[string][]string{
		"EXO_TENANT_DELIVERY_QUOTA":          {"controlplane", "processor"},
		"EXO_GLOBAL_DELIVERY_QUOTA":          {"controlplane", "processor"},
		"EXO_PROCESSOR_AGGREGATE_DELAY":      {"processor"},
		"EXO_PROCESSOR_AGGREGATE_MAX_GROUPS": {"processor"},
		"EXO_DISPATCHER_UNHEALTHY_AFTER":     {"dispatcher"},
	}
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			for _, w := range workloads(render(t, loadValues(t, vs.file))) {
				comp := w.pod.Labels["app.kubernetes.io/component"]
				for _, c := range w.pod.Spec.Containers {
					for name, want := range set {
						v, ok := envOf(c, name)
						switch {
						case vs.file == "" && ok:
							t.Errorf("defaults: %s %s sets %s=%q; the binary's default must apply", w.kind, w.name, name, v.Value)
						case vs.file != "" && slices.Contains(where[name], comp) && v.Value != want:
							t.Errorf("%s %s: %s=%q, want %q", w.kind, w.name, name, v.Value, want)
						case vs.file != "" && !slices.Contains(where[name], comp) && ok:
							t.Errorf("%s %s sets %s, which only %v should get", w.kind, w.name, name, where[name])
						}
					}
				}
			}
		})
	}
}

// TestSecretsGoOnlyWhereNeeded: DATABASE_URL reaches only what talks to
// Postgres and the key ring only what encrypts or decrypts endpoint secrets.
func TestSecretsGoOnlyWhereNeeded(t *testing.T) {
	t.Parallel()
	want := map[string][]string{
		"DATABASE_URL": {"controlplane", "migrate", "recorder"},
		"EXO_KEYRING":  {"controlplane", "dispatcher"},
	}
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			got := map[string][]string{}
			for _, w := range workloads(render(t, loadValues(t, vs.file))) {
				for name := range want {
					if _, ok := envOf(w.pod.Spec.Containers[0], name); ok {
						got[name] = append(got[name], w.pod.Labels["app.kubernetes.io/component"])
					}
				}
			}
			for name, comps := range want {
				slices.Sort(got[name])
				if !slices.Equal(got[name], comps) {
					t.Errorf("%s goes to %v, want %v", name, got[name], comps)
				}
			}
		})
	}
}

// expandEnv resolves a container variable as the kubelet does for a pod of
// the given name: $(NAME) of a variable defined before it, a fieldRef to
// the pod's name or namespace. Anything else (another fieldRef such as the
// pod's uid, a Secret, a ConfigMap) is not known before the pod exists and
// is reported as unstable.
func expandEnv(c corev1.Container, name, pod, ns string) (string, error) {
	vals := map[string]string{}
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			vals[e.Name] = ref.ReplaceAllStringFunc(e.Value, func(m string) string {
				if v, ok := vals[m[2:len(m)-1]]; ok {
					return v
				}
				return m
			})
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			vals[e.Name] = pod
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			vals[e.Name] = ns
		default:
			vals[e.Name] = "\x00unstable:" + e.Name
		}
		if e.Name == name {
			if v := vals[name]; strings.Contains(v, "\x00") || ref.MatchString(v) {
				return "", fmt.Errorf("%s does not resolve to a value fixed by the pod's name: %q", name, v)
			}
			return vals[name], nil
		}
	}
	return "", fmt.Errorf("%s is not set", name)
}

// TestProcessorTransactionalIDs: the processor runs as a StatefulSet (a
// pod keeps its name across restarts and reschedules), and every pod's
// EXO_PROCESSOR_TRANSACTIONAL_ID follows from its name alone: distinct
// between the pods of a release and between releases (in one namespace or,
// with the same names, in two), and the same after a restart, so a
// restarted processor fences its previous incarnation instead of running
// beside it.
func TestProcessorTransactionalIDs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, values string
		replicas     int
		prefix       string
	}{
		{"defaults", "", 3, "exo."},
		{"full", fullValues, 6, "prod.exo."},
		{"scaled", "processor:\n  replicas: 12\n", 12, "exo."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vals := map[string]any{}
			switch {
			case strings.HasSuffix(tc.values, ".yaml"):
				vals = loadValues(t, tc.values)
			case tc.values != "":
				vals = valuesYAML(t, tc.values)
			}
			owner := map[string]string{}   // id -> namespace/release/pod
			installed := map[string]bool{} // namespace/StatefulSet
			for _, rel := range [][2]string{{"alerts-a", namespace}, {"alerts-b", namespace}, {"alerts-a", "other"}} {
				ms := renderIn(t, vals, rel[0], rel[1])
				sets := of[*appsv1.StatefulSet](ms)
				if len(sets) != 1 || sets[0].Spec.Template.Labels["app.kubernetes.io/component"] != "processor" {
					t.Fatalf("want the processor as the one StatefulSet, got %d StatefulSets", len(sets))
				}
				sts := sets[0]
				if installed[rel[1]+"/"+sts.Name] {
					// Same names in one namespace (fullnameOverride): the
					// second release cannot be installed beside the first.
					continue
				}
				installed[rel[1]+"/"+sts.Name] = true
				if sts.Spec.Replicas == nil || int(*sts.Spec.Replicas) != tc.replicas {
					t.Fatalf("processor replicas %v, want %d", sts.Spec.Replicas, tc.replicas)
				}
				for i := range tc.replicas {
					pod := fmt.Sprintf("%s-%d", sts.Name, i) // a StatefulSet's pod names
					id, err := expandEnv(sts.Spec.Template.Spec.Containers[0], "EXO_PROCESSOR_TRANSACTIONAL_ID", pod, rel[1])
					if err != nil {
						t.Fatal(err)
					}
					again, _ := expandEnv(sts.Spec.Template.Spec.Containers[0], "EXO_PROCESSOR_TRANSACTIONAL_ID", pod, rel[1])
					if id != again {
						t.Errorf("pod %s: id %q, then %q after a restart", pod, id, again)
					}
					if !strings.HasPrefix(id, tc.prefix) {
						t.Errorf("pod %s: id %q lacks the topic prefix %q (deployments sharing a Kafka cluster would collide)", pod, id, tc.prefix)
					}
					where := rel[1] + "/" + rel[0] + "/" + pod
					if prev, dup := owner[id]; dup {
						t.Errorf("pods %s and %s share the transactional id %q: they would fence each other", prev, where, id)
					}
					owner[id] = where
				}
			}
		})
	}
}

// TestMigrationJobIsAHook: `exo-alerts migrate up` runs as a Job hooked to
// pre-install and pre-upgrade, so the schema is current before any new pod
// starts; the Secret its DATABASE_URL comes from exists before it runs
// (an existing Secret, or a hook Secret of a lower weight).
func TestMigrationJobIsAHook(t *testing.T) {
	t.Parallel()
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			vals := loadValues(t, vs.file)
			ms := render(t, vals)
			var job *manifest
			for i, m := range ms {
				if m.kind() == "Job" {
					job = &ms[i]
				}
				if m.hook != nil && m.kind() != "Job" && m.kind() != "Secret" {
					t.Errorf("%s is a hook; only the migration Job and its Secret should be", m)
				}
			}
			if job == nil || job.hook == nil {
				t.Fatal("the migration Job is missing or not a hook")
			}
			events := job.hook.Events
			if !slices.Contains(events, release.HookPreInstall) || !slices.Contains(events, release.HookPreUpgrade) || len(events) != 2 {
				t.Errorf("the migration Job runs on %v, want pre-install and pre-upgrade", events)
			}
			j := job.obj.(*batchv1.Job)
			c := j.Spec.Template.Spec.Containers[0]
			if !slices.Equal(c.Args, []string{"migrate", "up"}) {
				t.Errorf("the migration Job runs %v, want [migrate up]", c.Args)
			}
			if j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("restartPolicy %s, want Never (the Job's backoffLimit retries)", j.Spec.Template.Spec.RestartPolicy)
			}
			if j.Spec.ActiveDeadlineSeconds == nil {
				t.Error("no activeDeadlineSeconds: a migration stuck on a lock would hold the release forever")
			}
			if sa := j.Spec.Template.Spec.ServiceAccountName; sa != "" {
				for _, m := range ms {
					if m.kind() == "ServiceAccount" && m.name() == sa && m.hook == nil {
						t.Errorf("the Job runs as ServiceAccount %s, which the release creates only after the pre-install hook", sa)
					}
				}
			}
			db, ok := envOf(c, "DATABASE_URL")
			if !ok || db.ValueFrom == nil || db.ValueFrom.SecretKeyRef == nil {
				t.Fatal("the migration Job's DATABASE_URL is not from a Secret")
			}
			secret := db.ValueFrom.SecretKeyRef.Name
			var existing string
			if d, ok := vals["database"].(map[string]any); ok {
				existing, _ = d["existingSecret"].(string)
			}
			if existing != "" {
				if secret != existing {
					t.Errorf("the Job reads DATABASE_URL from %s, want the existing Secret %s", secret, existing)
				}
				return
			}
			for _, m := range ms {
				if m.kind() != "Secret" || m.name() != secret {
					continue
				}
				if m.hook == nil || m.hook.Weight >= job.hook.Weight || !slices.Equal(m.hook.Events, events) {
					t.Errorf("Secret %s is not created before the Job (hook %+v)", secret, m.hook)
				}
				if _, ok := m.obj.(*corev1.Secret).StringData[db.ValueFrom.SecretKeyRef.Key]; !ok {
					t.Errorf("Secret %s has no key %s", secret, db.ValueFrom.SecretKeyRef.Key)
				}
				return
			}
			t.Errorf("the Job reads DATABASE_URL from Secret %s, which the chart does not create", secret)
		})
	}
}

// TestExistingSecretsAreReferenced: with every Secret named as existing
// (the full values), the chart creates no Secret and every secret variable
// is a secretKeyRef to the named Secret and key; the Kafka TLS files are
// mounted from their Secret at the paths the variables name.
func TestExistingSecretsAreReferenced(t *testing.T) {
	t.Parallel()
	ms := render(t, loadValues(t, fullValues))
	if s := of[*corev1.Secret](ms); len(s) > 0 {
		t.Errorf("the chart creates Secret %s although every secret is in an existing one", s[0].Name)
	}
	want := map[string][2]string{
		"DATABASE_URL":            {"alerts-postgres", "uri"},
		"EXO_KEYRING":             {"alerts-keyring", "keyring"},
		"EXO_KAFKA_SASL_USERNAME": {"alerts-kafka-sasl", "user"},
		"EXO_KAFKA_SASL_PASSWORD": {"alerts-kafka-sasl", "pass"},
	}
	files := map[string]string{
		"EXO_KAFKA_TLS_CA_FILE": "ca.crt", "EXO_KAFKA_TLS_CERT_FILE": "tls.crt", "EXO_KAFKA_TLS_KEY_FILE": "tls.key",
	}
	for _, w := range workloads(ms) {
		c := w.pod.Spec.Containers[0]
		for _, e := range c.Env {
			if ref, ok := want[e.Name]; ok {
				if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
					e.ValueFrom.SecretKeyRef.Name != ref[0] || e.ValueFrom.SecretKeyRef.Key != ref[1] {
					t.Errorf("%s %s: %s is not secretKeyRef %s/%s: %+v", w.kind, w.name, e.Name, ref[0], ref[1], e)
				}
			}
		}
		if w.kind == "Job" {
			continue
		}
		if v, _ := envOf(c, "EXO_KAFKA_SASL_MECHANISM"); v.Value != "SCRAM-SHA-512" {
			t.Errorf("%s %s: EXO_KAFKA_SASL_MECHANISM %q", w.kind, w.name, v.Value)
		}
		if v, _ := envOf(c, "EXO_KAFKA_TLS"); v.Value != "on" {
			t.Errorf("%s %s: EXO_KAFKA_TLS %q, want on", w.kind, w.name, v.Value)
		}
		if v, _ := envOf(c, "EXO_KAFKA_TLS_SERVER_NAME"); v.Value != "kafka.example.internal" {
			t.Errorf("%s %s: EXO_KAFKA_TLS_SERVER_NAME %q", w.kind, w.name, v.Value)
		}
		var mount *corev1.VolumeMount
		for i, m := range c.VolumeMounts {
			if m.Name == "kafka-tls" {
				mount = &c.VolumeMounts[i]
			}
		}
		var vol *corev1.Volume
		for i, v := range w.pod.Spec.Volumes {
			if v.Name == "kafka-tls" {
				vol = &w.pod.Spec.Volumes[i]
			}
		}
		if mount == nil || vol == nil || vol.Secret == nil || vol.Secret.SecretName != "alerts-kafka-tls" || !mount.ReadOnly {
			t.Errorf("%s %s: the Kafka TLS Secret alerts-kafka-tls is not mounted read-only", w.kind, w.name)
			continue
		}
		for name, key := range files {
			if v, _ := envOf(c, name); v.Value != mount.MountPath+"/"+key {
				t.Errorf("%s %s: %s=%q, want the mounted %s/%s", w.kind, w.name, name, v.Value, mount.MountPath, key)
			}
		}
	}
}

// TestInlineSecretsStayInSecrets: secret values given inline go into the
// chart's Secret, and no workload carries them in plain text.
func TestInlineSecretsStayInSecrets(t *testing.T) {
	t.Parallel()
	secrets := []string{"p4ssw0rd-db", "k1:c2VjcmV0LWtleS1yaW5n", "s4sl-pass"}
	ms := render(t, valuesYAML(t, fmt.Sprintf(`
database: {url: "postgres://exo:%s@db:5432/exo"}
keyring: {value: %q}
kafka: {brokers: [k:9092], sasl: {mechanism: SCRAM-SHA-256, username: exo, password: %q}}
`, secrets[0], secrets[1], secrets[2])))
	found := map[string]bool{}
	for _, m := range ms {
		for _, s := range secrets {
			if !strings.Contains(m.raw, s) {
				continue
			}
			if m.kind() != "Secret" {
				t.Errorf("%s holds the secret value %q in plain text", m, s)
			}
			found[s] = true
		}
	}
	if len(found) != len(secrets) {
		t.Errorf("only %v of %v reached a Secret", found, secrets)
	}
}

// TestRecorderPlacement: the recorder runs on its own by default (and the
// control plane then runs none); with recorder.enabled=false the control
// plane runs it, with its settings.
func TestRecorderPlacement(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		values       string
		recorder     bool
		controlplane string
	}{
		{"", true, "off"},
		{"recorder: {enabled: false, historyRetention: 240h}", false, "on"},
	} {
		t.Run(tc.controlplane, func(t *testing.T) {
			t.Parallel()
			vals := map[string]any{}
			if tc.values != "" {
				vals = valuesYAML(t, tc.values)
			}
			ms := render(t, vals)
			has := false
			for _, w := range workloads(ms) {
				has = has || w.pod.Labels["app.kubernetes.io/component"] == "recorder"
			}
			if has != tc.recorder {
				t.Errorf("recorder workload rendered: %v, want %v", has, tc.recorder)
			}
			c := component(t, ms, "controlplane").pod.Spec.Containers[0]
			if v, _ := envOf(c, "EXO_CONTROLPLANE_RECORDER"); v.Value != tc.controlplane {
				t.Errorf("EXO_CONTROLPLANE_RECORDER=%q, want %q", v.Value, tc.controlplane)
			}
			if v, _ := envOf(c, "EXO_HISTORY_RETENTION"); !tc.recorder && v.Value != "240h" {
				t.Errorf("the control plane runs the recorder without its EXO_HISTORY_RETENTION (%q)", v.Value)
			}
		})
	}
}

// TestObjectsFitTogether checks the references between the rendered
// objects that break the deployment: a mount of a volume the pod lacks, a
// volume nobody mounts, a selector that does not select its own pods, a Service, PDB or
// NetworkPolicy selecting no workload or a port no container has, an HPA
// on a Deployment that also fixes its replicas, a StatefulSet without its
// headless Service.
func TestObjectsFitTogether(t *testing.T) {
	t.Parallel()
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			ms := render(t, loadValues(t, vs.file))
			ws := workloads(ms)
			selects := func(sel labels.Selector) []workload {
				var out []workload
				for _, w := range ws {
					if w.kind != "Job" && sel.Matches(labels.Set(w.pod.Labels)) {
						out = append(out, w)
					}
				}
				return out
			}
			selector := func(where string, ls *metav1.LabelSelector) labels.Selector {
				s, err := metav1.LabelSelectorAsSelector(ls)
				if err != nil || s.Empty() {
					t.Fatalf("%s: selector %v: %v (empty selects everything)", where, ls, err)
				}
				return s
			}
			for _, w := range ws {
				vols := map[string]bool{}
				for _, v := range w.pod.Spec.Volumes {
					vols[v.Name] = false
				}
				for _, c := range w.pod.Spec.Containers {
					for _, m := range c.VolumeMounts {
						if _, ok := vols[m.Name]; !ok {
							t.Errorf("%s %s: container %s mounts volume %s, which the pod lacks", w.kind, w.name, c.Name, m.Name)
						}
						vols[m.Name] = true
					}
				}
				for v, used := range vols {
					if !used {
						t.Errorf("%s %s: volume %s is mounted by no container", w.kind, w.name, v)
					}
				}
				if w.kind == "Job" {
					continue
				}
				if got := selects(selector(w.name, w.selector)); len(got) != 1 || got[0].name != w.name {
					t.Errorf("%s %s: its selector selects %d workloads", w.kind, w.name, len(got))
				}
			}
			hasPort := func(w workload, port string) bool {
				return containerPort(w.pod.Spec.Containers[0], port) > 0
			}
			services := map[string]*corev1.Service{}
			for _, s := range of[*corev1.Service](ms) {
				services[s.Name] = s
				got := selects(selector(s.Name, &metav1.LabelSelector{MatchLabels: s.Spec.Selector}))
				if len(got) != 1 {
					t.Errorf("Service %s selects %d workloads, want 1", s.Name, len(got))
					continue
				}
				for _, p := range s.Spec.Ports {
					if !hasPort(got[0], p.TargetPort.String()) {
						t.Errorf("Service %s: target port %s is no port of %s", s.Name, p.TargetPort.String(), got[0].name)
					}
				}
			}
			for _, s := range of[*appsv1.StatefulSet](ms) {
				if svc := services[s.Spec.ServiceName]; svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone {
					t.Errorf("StatefulSet %s: serviceName %s is not a headless Service of the chart", s.Name, s.Spec.ServiceName)
				}
			}
			for _, p := range of[*policyv1.PodDisruptionBudget](ms) {
				if got := selects(selector(p.Name, p.Spec.Selector)); len(got) != 1 {
					t.Errorf("PodDisruptionBudget %s selects %d workloads, want 1", p.Name, len(got))
				}
				if p.Spec.MinAvailable == nil && p.Spec.MaxUnavailable == nil {
					t.Errorf("PodDisruptionBudget %s allows nothing and forbids nothing", p.Name)
				}
			}
			for _, h := range of[*autoscalingv2.HorizontalPodAutoscaler](ms) {
				var target *appsv1.Deployment
				for _, d := range of[*appsv1.Deployment](ms) {
					if h.Spec.ScaleTargetRef.Kind == "Deployment" && d.Name == h.Spec.ScaleTargetRef.Name {
						target = d
					}
				}
				switch {
				case target == nil:
					t.Errorf("HPA %s scales %s %s, which the chart does not render", h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
				case target.Spec.Replicas != nil:
					t.Errorf("HPA %s: Deployment %s also sets replicas, so every upgrade resets the HPA's count", h.Name, target.Name)
				case !slices.Contains([]string{"controlplane", "dispatcher"}, target.Spec.Template.Labels["app.kubernetes.io/component"]):
					t.Errorf("HPA %s scales %s, which is not stateless", h.Name, target.Name)
				}
				if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
					t.Errorf("HPA %s: bounds %v..%d", h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
				}
			}
			for _, np := range of[*networkingv1.NetworkPolicy](ms) {
				got := selects(selector(np.Name, &np.Spec.PodSelector))
				if len(got) != 1 {
					t.Errorf("NetworkPolicy %s selects %d workloads, want 1", np.Name, len(got))
					continue
				}
				c := got[0].pod.Spec.Containers[0]
				for _, rule := range np.Spec.Ingress {
					for _, p := range rule.Ports {
						if p.Port == nil || !hasPort(got[0], p.Port.String()) {
							t.Errorf("NetworkPolicy %s opens port %v, no port of %s", np.Name, p.Port, got[0].name)
						}
					}
				}
				// The port the probes and Prometheus use must be open.
				port := strconv.Itoa(int(listenPort(t, c)))
				open := false
				for _, rule := range np.Spec.Ingress {
					for _, p := range rule.Ports {
						open = open || (p.Port != nil && p.Port.String() == port)
					}
				}
				if !open {
					t.Errorf("NetworkPolicy %s closes port %s the component serves", np.Name, port)
				}
			}
		})
	}
}

// TestServiceMonitorsScrapeTheJobsTheRulesUse: with ServiceMonitors on,
// each selects one Service on a port it has, and together they produce
// every job of deploy/prometheus/prometheus.yml, which the alert rules and
// the dashboard select.
func TestServiceMonitorsScrapeTheJobsTheRulesUse(t *testing.T) {
	t.Parallel()
	ms := render(t, loadValues(t, fullValues))
	raw, err := os.ReadFile(repoRoot + "/deploy/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &prom); err != nil {
		t.Fatal(err)
	}
	jobs := map[string]bool{}
	for _, s := range of[*monitoringv1.ServiceMonitor](ms) {
		var svcs []*corev1.Service
		for _, svc := range of[*corev1.Service](ms) {
			sel, err := metav1.LabelSelectorAsSelector(&s.Spec.Selector)
			if err != nil {
				t.Fatal(err)
			}
			if sel.Matches(labels.Set(svc.Labels)) {
				svcs = append(svcs, svc)
			}
		}
		if len(svcs) != 1 {
			t.Errorf("ServiceMonitor %s selects %d Services, want 1", s.Name, len(svcs))
			continue
		}
		if !slices.Equal(s.Spec.NamespaceSelector.MatchNames, []string{namespace}) {
			t.Errorf("ServiceMonitor %s looks in namespaces %v, not the release's", s.Name, s.Spec.NamespaceSelector.MatchNames)
		}
		for _, ep := range s.Spec.Endpoints {
			if !slices.ContainsFunc(svcs[0].Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
				t.Errorf("ServiceMonitor %s scrapes port %q, which Service %s lacks", s.Name, ep.Port, svcs[0].Name)
			}
			if ep.Path != "/metrics" {
				t.Errorf("ServiceMonitor %s scrapes %s, not /metrics", s.Name, ep.Path)
			}
			for _, r := range ep.RelabelConfigs {
				if r.TargetLabel == "job" && r.Replacement != nil {
					jobs[*r.Replacement] = true
				}
			}
		}
	}
	if len(prom.ScrapeConfigs) == 0 {
		t.Fatal("prometheus.yml has no scrape job")
	}
	for _, sc := range prom.ScrapeConfigs {
		if !jobs[sc.JobName] {
			t.Errorf("no ServiceMonitor produces job %s of prometheus.yml (got %v)", sc.JobName, jobs)
		}
	}
}
