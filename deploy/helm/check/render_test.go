package check

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

const (
	chartDir    = "../exo-alerts"
	fullValues  = "../exo-alerts/ci/full-values.yaml"
	repoRoot    = "../../.."
	releaseName = "exo-alerts"
	namespace   = "alerts"
	// kubeVersion is the oldest Kubernetes the chart claims (Chart.yaml's
	// kubeVersion); every API version it renders exists there.
	kubeVersion = "v1.25.0"
)

func kubeVersionOf() *chartutil.KubeVersion {
	v, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		panic(err)
	}
	return v
}

// manifest is one rendered Kubernetes object.
type manifest struct {
	source string        // the template it came from
	hook   *release.Hook // the hook it is; nil for the release's own resources
	obj    runtime.Object
	raw    string
}

func (m manifest) kind() string { return m.obj.GetObjectKind().GroupVersionKind().Kind }

func (m manifest) name() string {
	acc, ok := m.obj.(metav1.Object)
	if !ok {
		return "?"
	}
	return acc.GetName()
}

func (m manifest) String() string { return fmt.Sprintf("%s %s (%s)", m.kind(), m.name(), m.source) }

// strictDecoder decodes YAML into the typed object of its apiVersion and
// kind, and fails on unknown and duplicate fields (as kubectl's
// --validate=strict does on the server side).
var strictDecoder = sync.OnceValue(func() runtime.Decoder {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := monitoringv1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
		kjson.SerializerOptions{Yaml: true, Strict: true})
})

// decodeStrict decodes one manifest; an unknown kind, an unknown field or a
// field of the wrong type is an error.
func decodeStrict(doc string) (runtime.Object, error) {
	obj, _, err := strictDecoder().Decode([]byte(doc), nil, nil)
	if err != nil {
		return nil, err
	}
	return obj, nil
}

// loadValues reads a values file; "" is the chart's defaults alone.
func loadValues(t *testing.T, file string) map[string]any {
	t.Helper()
	if file == "" {
		return map[string]any{}
	}
	v, err := chartutil.ReadValuesFile(file)
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	return v.AsMap()
}

// valuesYAML parses values written inline in a test.
func valuesYAML(t *testing.T, y string) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValues([]byte(y))
	if err != nil {
		t.Fatalf("values %q: %v", y, err)
	}
	return v.AsMap()
}

// renderChart renders the chart as `helm template --namespace alerts
// exo-alerts deploy/helm/exo-alerts` does (an install, client only, dry
// run), values schema checked, hooks included.
func renderChart(vals map[string]any, name string) (*release.Release, error) {
	return renderChartIn(vals, name, namespace)
}

func renderChartIn(vals map[string]any, name, ns string) (*release.Release, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, fmt.Errorf("load chart: %w", err)
	}
	inst := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	inst.ClientOnly, inst.DryRun, inst.Replace = true, true, true
	inst.ReleaseName, inst.Namespace, inst.KubeVersion = name, ns, kubeVersionOf()
	return inst.Run(ch, vals)
}

// render renders the chart and decodes every manifest strictly, failing the
// test on any error.
func render(t *testing.T, vals map[string]any) []manifest {
	t.Helper()
	return renderIn(t, vals, releaseName, namespace)
}

// renderIn renders the chart as release name in namespace ns.
func renderIn(t *testing.T, vals map[string]any, name, ns string) []manifest {
	t.Helper()
	rel, err := renderChartIn(vals, name, ns)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var out []manifest
	add := func(doc string, hook *release.Hook) {
		source := "?"
		for line := range strings.SplitSeq(doc, "\n") {
			if s, ok := strings.CutPrefix(line, "# Source: "); ok {
				source = s
				break
			}
		}
		obj, err := decodeStrict(doc)
		if err != nil {
			t.Errorf("%s: not a valid Kubernetes object: %v\n%s", source, err, doc)
			return
		}
		out = append(out, manifest{source: source, hook: hook, obj: obj, raw: doc})
	}
	docs := releaseutil.SplitManifests(rel.Manifest)
	keys := make([]string, 0, len(docs))
	for k := range docs {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	for _, k := range keys {
		add(docs[k], nil)
	}
	for _, h := range rel.Hooks {
		add(h.Manifest, h)
	}
	if len(out) == 0 {
		t.Fatal("the chart rendered no object")
	}
	return out
}

// of returns the objects of type T.
func of[T runtime.Object](ms []manifest) []T {
	var out []T
	for _, m := range ms {
		if o, ok := m.obj.(T); ok {
			out = append(out, o)
		}
	}
	return out
}

// workload is a pod template with the name and kind of what runs it.
type workload struct {
	kind, name string
	selector   *metav1.LabelSelector // nil for a Job
	replicas   *int32
	pod        *corev1.PodTemplateSpec
}

func workloads(ms []manifest) []workload {
	var out []workload
	for _, d := range of[*appsv1.Deployment](ms) {
		out = append(out, workload{"Deployment", d.Name, d.Spec.Selector, d.Spec.Replicas, &d.Spec.Template})
	}
	for _, s := range of[*appsv1.StatefulSet](ms) {
		out = append(out, workload{"StatefulSet", s.Name, s.Spec.Selector, s.Spec.Replicas, &s.Spec.Template})
	}
	for _, j := range of[*batchv1.Job](ms) {
		out = append(out, workload{"Job", j.Name, nil, nil, &j.Spec.Template})
	}
	return out
}

// component returns the workload of a component (its
// app.kubernetes.io/component label), failing the test if there is not
// exactly one.
func component(t *testing.T, ms []manifest, name string) workload {
	t.Helper()
	var found []workload
	for _, w := range workloads(ms) {
		if w.pod.Labels["app.kubernetes.io/component"] == name {
			found = append(found, w)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one workload of component %s, got %d", name, len(found))
	}
	return found[0]
}

func envOf(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

func chartPath(p string) string { return filepath.Join(chartDir, p) }
