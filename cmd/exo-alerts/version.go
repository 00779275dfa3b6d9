package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is baked in at build time:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/exo-alerts
//
// make build and make image pass `git describe --always --dirty`. It must
// stay a package-level string variable: -X silently ignores anything else.
var version string

// buildVersion is the version baked in with -ldflags, else what the Go
// toolchain recorded in the binary (versionFrom).
func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	return versionFrom(bi)
}

// versionFrom is the module version of a binary built from a module
// version (go install …@v1.2.3, or a version the toolchain derived from the
// VCS), else its VCS revision (+ "-dirty" when the tree had changes), else
// "dev".
func versionFrom(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

func cmdVersion(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: exo-alerts version\n\nPrints the version baked in at build time, the Go version and the platform.")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, "usage: exo-alerts version"); err != nil {
		return err
	}
	fmt.Printf("exo-alerts %s %s %s/%s\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
