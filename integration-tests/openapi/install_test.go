package openapi_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/testenv"
)

// nodeModules returns a node_modules directory installed by `npm ci` from
// package.json and the committed package-lock.json, kept between runs
// (testenv.Installed).
func nodeModules(t *testing.T) string {
	t.Helper()
	files := []string{"package.json", "package-lock.json"}
	dir := testenv.Installed(t, "npm/openapi-"+testenv.Hash(t, files), func(tmp string) error {
		for _, f := range files {
			copyFile(t, f, filepath.Join(tmp, f))
		}
		if out, err := command(tmp, installTimeout, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"); err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
		return nil
	})
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
