package openapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/controlplane"
	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// controlPlane runs a control plane on real PostgreSQL and Kafka, as the
// integration tests run the system, and returns its base URL and an admin
// key of tenant acme.
func controlPlane(t *testing.T) (api, key string) {
	t.Helper()
	pool := testenv.Pool(t)
	ring, err := keyring.Parse(keyring.Generate("k1"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	exited := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		exited <- controlplane.Run(ctx, controlplane.Config{Listener: ln, Pool: pool, Brokers: testenv.Brokers(t), Topics: testenv.Topics(t),
			Keyring: ring, Log: testenv.Log(t), Ready: ready})
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	select {
	case addr := <-ready:
		api = "http://" + addr.String()
	case err := <-exited:
		t.Fatalf("control plane: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("control plane not ready within a minute")
	}
	key = controlplane.NewAPIKey()
	if _, err := controlplane.CreateAPIKey(ctx, pool, "acme", "openapi clients", controlplane.RoleAdmin, key); err != nil {
		t.Fatal(err)
	}
	return api, key
}

// roundTrip is what a client's program reports it made.
type roundTrip struct {
	EndpointID string   `json:"endpoint_id"`
	RuleIDs    []string `json:"rule_ids"`
	Patched    string   `json:"patched"`
	Version    int64    `json:"version"`
}

// Each generated client (Go by oapi-codegen, TypeScript by
// openapi-typescript) creates an endpoint and two rules, lists the rules
// page by page, updates one with If-Match and clears two of its members
// with null, checking every answer against the types the document gave it;
// the control plane then holds what the client said it made.
func TestGeneratedClients(t *testing.T) {
	t.Parallel()
	api, key := controlPlane(t)
	clients := map[string]func(t *testing.T, env []string) []byte{
		"go":         goClient,
		"typescript": typeScriptClient,
	}
	for name, run := range clients {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			target := "https://hooks.example.com/" + name
			out := run(t, []string{"EXO_API=" + api, "EXO_API_KEY=" + key, "EXO_TARGET_URL=" + target})
			var made roundTrip
			if err := json.Unmarshal(lastLine(out), &made); err != nil || made.Patched == "" || len(made.RuleIDs) != 2 {
				t.Fatalf("%s client's report: %v\n%s", name, err, out)
			}
			// What the server holds, read without the client.
			rule := get(t, api, key, "/v1/alert-rules/"+made.Patched)
			if rule["condition"] != "" || rule["description"] != "" || rule["severity"] != "critical" || rule["endpoint_id"] != made.EndpointID ||
				rule["webhook_endpoint_id"] != made.EndpointID || rule["version"] != float64(made.Version) {
				t.Errorf("%s client's patched rule on the server: %v", name, rule)
			}
			list := get(t, api, key, "/v1/alert-rules?endpoint_id="+made.EndpointID)
			var ids []string
			for _, it := range list["items"].([]any) {
				ids = append(ids, it.(map[string]any)["id"].(string))
			}
			if !slices.Equal(ids, made.RuleIDs) {
				t.Errorf("%s client's endpoint has rules %v, want %v", name, ids, made.RuleIDs)
			}
			if ep := get(t, api, key, "/v1/webhooks/"+made.EndpointID); ep["target_url"] != target {
				t.Errorf("%s client's endpoint: %v", name, ep)
			}
		})
	}
}

// goClient runs ../openapi-go (the oapi-codegen client, its own module).
func goClient(t *testing.T, env []string) []byte {
	out, err := commandEnv("../openapi-go", 5*time.Minute, env, "go", "run", ".")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// typeScriptClient types client.ts with openapi-typescript's output for the
// committed document, compiles it with tsc --strict and runs it on node
// with openapi-fetch.
func typeScriptClient(t *testing.T, env []string) []byte {
	modules := nodeModules(t)
	dir := t.TempDir()
	for _, f := range []string{"client.ts", "tsconfig.json", "package.json"} {
		copyFile(t, f, filepath.Join(dir, f))
	}
	if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	doc, _ := filepath.Abs(document)
	bin := func(name string) string { return filepath.Join(modules, ".bin", name) }
	// Members with a default are optional to send: the server fills them in.
	if out, err := commandEnv(dir, time.Minute, quiet, bin("openapi-typescript"), doc, "--default-non-nullable=false", "-o", "api.d.ts"); err != nil {
		t.Fatalf("openapi-typescript: %v\n%s", err, out)
	}
	if out, err := command(dir, time.Minute, bin("tsc"), "-p", "."); err != nil {
		t.Fatalf("tsc --strict on client.ts with the generated types: %v\n%s", err, out)
	}
	out, err := commandEnv(dir, time.Minute, env, "node", filepath.Join("dist", "client.js"))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// get is a GET of the API with key, which must answer 200 with an object.
func get(t *testing.T, api, key, path string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, api+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return v
}

// lastLine is the last line of out (a program's report; go run may print
// before it).
func lastLine(out []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	return lines[len(lines)-1]
}
