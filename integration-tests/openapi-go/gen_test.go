package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The committed client.gen.go is what the pinned oapi-codegen (go.mod's
// tool) makes of the committed docs/openapi.json: a change of the API
// that breaks the generated client, or a document it cannot read, fails
// here. Regenerate with `go generate` in this directory.
func TestClientIsGenerated(t *testing.T) {
	// The same configuration, writing elsewhere (its output wins over -o).
	dir := t.TempDir()
	out, cfg := filepath.Join(dir, "client.gen.go"), filepath.Join(dir, "oapi-codegen.yaml")
	conf, err := os.ReadFile("oapi-codegen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(conf, []byte("\noutput: client.gen.go\n")) {
		t.Fatal("oapi-codegen.yaml does not write client.gen.go")
	}
	conf = bytes.Replace(conf, []byte("\noutput: client.gen.go\n"), []byte("\noutput: "+out+"\n"), 1)
	if err := os.WriteFile(cfg, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	doc, err := filepath.Abs("../../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "tool", "oapi-codegen", "-config", cfg, doc)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("client.gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, committed) {
		t.Fatal("client.gen.go is not what oapi-codegen makes of docs/openapi.json: run `go generate` in integration-tests/openapi-go and commit it")
	}
}
