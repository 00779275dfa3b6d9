package receivers_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/testenv"
)

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
	dir := testenv.Installed(t, "integration-tests/receiver-python-venv-"+testenv.Hash(t, []string{req}), func(tmp string) error {
		if err := run(tmp, "python3", "-m", "venv", tmp); err != nil {
			return err
		}
		return run(tmp, filepath.Join(tmp, "bin", "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", req)
	})
	return filepath.Join(dir, "bin", "python")
}

// nodeModules returns a node_modules directory installed by `npm ci` from
// ../receiver-node's package.json and committed package-lock.json, kept
// between runs (testenv.Installed).
func nodeModules(t *testing.T) string {
	t.Helper()
	dir := testenv.Installed(t, "integration-tests/receiver-node-"+testenv.Hash(t, []string{"../receiver-node/package-lock.json"}), func(tmp string) error {
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
