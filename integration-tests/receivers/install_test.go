package receivers_test

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

// cacheDir is where installed dependencies are kept between runs: the
// user's cache directory (the system's temp directory without one).
func cacheDir(t *testing.T) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "exo-alerts", "integration-tests")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// hashOf is a short hash of a file's content: the key of what it pins.
func hashOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// cached returns dir, first filling it with fill (given a fresh temporary
// directory beside it) unless an earlier run did: the finished directory is
// renamed into place, so a run that is killed half-way leaves nothing that
// looks installed, and two runs at once both end with a whole one.
func cached(t *testing.T, dir string, fill func(tmp string) error) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	if err := fill(tmp); err != nil {
		t.Fatalf("installing %s: %v", filepath.Base(dir), err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, fs.ErrExist) {
		if _, statErr := os.Stat(filepath.Join(dir, ".complete")); statErr != nil { // not another run's
			t.Fatalf("installing %s: %v", filepath.Base(dir), err)
		}
	}
	return dir
}

// installTimeout bounds one install step (a download from PyPI or npm).
const installTimeout = 5 * time.Minute

// run runs a command, returning its output in the error if it fails.
func run(dir, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return errors.New(cmd.String() + ": " + err.Error() + "\n" + string(out))
	}
	return nil
}

// pythonVenv returns the python of a virtualenv with
// ../receiver-python/requirements.txt installed from PyPI.
func pythonVenv(t *testing.T) string {
	t.Helper()
	req, err := filepath.Abs("../receiver-python/requirements.txt")
	if err != nil {
		t.Fatal(err)
	}
	dir := cached(t, filepath.Join(cacheDir(t), "receiver-python-venv-"+hashOf(t, req)), func(tmp string) error {
		if err := run(tmp, "python3", "-m", "venv", tmp); err != nil {
			return err
		}
		return run(tmp, filepath.Join(tmp, "bin", "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", req)
	})
	return filepath.Join(dir, "bin", "python")
}

// nodeModules returns a node_modules directory installed by `npm ci` from
// ../receiver-node's package.json and committed package-lock.json.
func nodeModules(t *testing.T) string {
	t.Helper()
	dir := cached(t, filepath.Join(cacheDir(t), "receiver-node-"+hashOf(t, "../receiver-node/package-lock.json")), func(tmp string) error {
		for _, f := range []string{"package.json", "package-lock.json"} {
			b, err := os.ReadFile(filepath.Join("../receiver-node", f))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
				return err
			}
		}
		return run(tmp, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	})
	return filepath.Join(dir, "node_modules")
}

// goReceiver builds ../receiver.
func goReceiver(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "receiver")
	if err := run(".", "go", "build", "-o", bin, "../receiver"); err != nil {
		t.Fatal(err)
	}
	return bin
}
