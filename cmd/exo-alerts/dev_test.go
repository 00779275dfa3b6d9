package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/keyring"
	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The quickstart dev mode prints works verbatim: pasted into bash it creates
// an endpoint and a rule, emits a failed run, and the demo receiver gets one
// delivery whose signatures verify.
func TestQuickstartWorksVerbatim(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed to run the quickstart as a user would")
	}
	exe := filepath.Join(t.TempDir(), "exo-alerts")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out := &syncBuffer{}
	dbURL, brokers, prefix := testenv.DatabaseURL(t, false), testenv.Brokers(t), testenv.Topics(t).Prefix
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runDev(ctx, devConfig{
			Addr: "127.0.0.1:0", DatabaseURL: dbURL, Brokers: brokers,
			TopicPrefix: prefix, Keyring: keyring.Generate("t1"), Exe: exe, Log: testenv.Log(t), Out: out,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dev mode: %v", err)
		}
	})

	var script, base string
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := out.String()
		if _, rest, ok := strings.Cut(s, "Quickstart — paste into another shell:\n"); ok {
			if qs, _, ok := strings.Cut(rest, "\nThen open "); ok {
				script = qs
				_, after, _ := strings.Cut(s, "export EXO_API=")
				base, _, _ = strings.Cut(after, "\n")
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no quickstart printed within 60s; got:\n%s", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("quickstart failed: %v\n%s\n--- script ---\n%s", err, b, script)
	} else if !strings.Contains(string(b), "webhook: whk_") || !strings.Contains(string(b), "emitted workflow.run.failed") {
		t.Fatalf("quickstart output unexpected:\n%s", b)
	}

	type got struct {
		WebhookID string `json:"webhook_id"`
		Verified  bool   `json:"verified"`
		Why       string `json:"verification"`
	}
	var list []got
	for deadline = time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(base + "/demo/receiver.json")
		if err != nil {
			t.Fatal(err)
		}
		list = nil
		_ = json.NewDecoder(resp.Body).Decode(&list)
		_ = resp.Body.Close()
		if len(list) > 0 {
			break
		}
	}
	if len(list) != 1 || !list[0].Verified || !strings.HasPrefix(list[0].WebhookID, "alrt_") {
		t.Fatalf("demo receiver got %+v, want one verified delivery", list)
	}
}
