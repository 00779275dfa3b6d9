package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// A binary built with -ldflags "-X main.version=…" (as make build and make
// image do) prints that version for `version` and `--version`. This builds
// the real binary: -X silently does nothing when the variable is renamed,
// moved or made a constant, and only the linked binary shows it.
func TestVersionBakedInWithLdflags(t *testing.T) {
	t.Parallel()
	const want = "v1.2.3-test.4-gabcdef0-dirty"
	bin := filepath.Join(t.TempDir(), "exo-alerts")
	args := []string{"build", "-o", bin, "-ldflags", "-X main.version=" + want}
	if raceBuild() {
		args = append(args, "-race") // the packages the test was built from are in the build cache
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	wantLine := "exo-alerts " + want + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).CombinedOutput()
		if err != nil || string(out) != wantLine {
			t.Errorf("exo-alerts %s: %v, printed %q, want %q", arg, err, out, wantLine)
		}
	}
	if out, err := exec.Command(bin, "version", "extra").CombinedOutput(); err == nil {
		t.Errorf("exo-alerts version extra succeeded: %s", out)
	}
	if out, _ := exec.Command(bin, "help").CombinedOutput(); !strings.Contains(string(out), "\n  version ") {
		t.Errorf("the usage does not list the version command:\n%s", out)
	}
}

// raceBuild tells whether this test binary was built with -race.
func raceBuild() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// Without -ldflags the version comes from what the Go toolchain recorded in
// the binary.
func TestVersionFromBuildInfo(t *testing.T) {
	t.Parallel()
	rev := "0123456789abcdef0123456789abcdef01234567"
	cases := []struct {
		name string
		bi   debug.BuildInfo
		want string
	}{
		{"module version (go install …@v1.4.0)", debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "v1.4.0"},
		{"version the toolchain derived from the VCS", debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20260101120000-0123456789ab+dirty"}}, "v0.0.0-20260101120000-0123456789ab+dirty"},
		{"clean checkout", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "false"}}}, "0123456789ab"},
		{"changed checkout", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: "true"}}}, "0123456789ab-dirty"},
		{"nothing recorded (-buildvcs=false)", debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
		{"no main module", debug.BuildInfo{}, "dev"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := versionFrom(&c.bi); got != c.want {
				t.Errorf("versionFrom = %q, want %q", got, c.want)
			}
		})
	}
}
