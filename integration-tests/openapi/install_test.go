package openapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// nodeModules returns a node_modules directory installed by `npm ci` from
// package.json and the committed package-lock.json, kept in the user's
// cache directory (the system's temp directory without one) between runs.
// The finished directory is renamed into place, so a run that is killed
// half-way leaves nothing that looks installed, and two runs at once both
// end with a whole one.
func nodeModules(t *testing.T) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	lock, err := os.ReadFile("package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	dir := filepath.Join(base, "exo-alerts", "npm", "openapi-"+hex.EncodeToString(sum[:8]))
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return filepath.Join(dir, "node_modules")
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	for _, f := range []string{"package.json", "package-lock.json"} {
		copyFile(t, f, filepath.Join(tmp, f))
	}
	if out, err := command(tmp, installTimeout, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"); err != nil {
		t.Fatalf("installing the npm tools: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, fs.ErrExist) {
		if _, statErr := os.Stat(filepath.Join(dir, ".complete")); statErr != nil { // not another run's
			t.Fatalf("installing the npm tools: %v", err)
		}
	}
	return filepath.Join(dir, "node_modules")
}

// installTimeout bounds `npm ci` (a download from npm).
const installTimeout = 5 * time.Minute

// command runs name in dir and returns its combined output.
func command(dir string, timeout time.Duration, name string, args ...string) ([]byte, error) {
	return commandEnv(dir, timeout, nil, name, args...)
}

// commandEnv is command with env added to the environment.
func commandEnv(dir string, timeout time.Duration, env []string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, errors.New(cmd.String() + ": " + err.Error())
	}
	return out, nil
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
