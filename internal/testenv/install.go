package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Installed returns the directory <user cache>/exo-alerts/<name> (the
// system's temp directory without a user cache), first filling it with
// fill unless an earlier run did: the example producers' and receivers'
// virtualenvs and node_modules, downloaded once from PyPI or npm. fill gets
// a fresh directory beside it; the finished one is marked complete and
// renamed into place, so a run killed half-way leaves nothing that looks
// installed, and two runs at once both end with a whole one. name should
// carry Hash of what the content is made from, so a changed lock file
// installs afresh.
func Installed(t testing.TB, name string, fill func(tmp string) error) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "exo-alerts", name)
	complete := filepath.Join(dir, ".complete")
	if _, err := os.Stat(complete); err == nil {
		return dir
	}
	// A directory in place without the mark was never renamed there by
	// this function (it marks before renaming): an older layout's or a
	// hand-made one. It would refuse the rename below.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o750); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	if err := fill(tmp); err != nil {
		t.Fatalf("installing %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, fs.ErrExist) && !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("installing %s: %v", name, err)
	}
	if _, err := os.Stat(complete); err != nil { // neither ours nor another run's
		t.Fatalf("installing %s: %v", name, err)
	}
	return dir
}

// Hash is a short hash of the files' contents and of extra: the key of
// what an Installed directory pins.
func Hash(t testing.TB, files []string, extra ...[]byte) string {
	t.Helper()
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f) //nolint:gosec // a test's own files (lock files, requirements)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	for _, e := range extra {
		h.Write(e)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
