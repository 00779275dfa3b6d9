// Command mkimage builds the exo-alerts container image without a Docker
// daemon (make image). It builds the static binary (CGO_ENABLED=0,
// -trimpath, the version baked in with -ldflags) and assembles an image on
// an empty base: one layer holding the binary, /etc/passwd and /etc/group
// naming the non-root user 65532, a CA bundle and /tmp — no shell, no
// package manager. Every timestamp is SOURCE_DATE_EPOCH, so the same source,
// version and Go toolchain give the same image, byte for byte.
//
// It writes an OCI image layout (-oci: for crane push, skopeo, podman) and a
// docker-archive tarball (-tar: for docker load), and prints the image's
// digest. With -rootfs it writes the layer's files into a directory instead:
// the Dockerfile's build stage does that, so both builds ship the same files
// built the same way.
//
//	go run ./tools/mkimage -src ../.. -version v1.2.3 -oci ../../bin/exo-alerts-oci -tar ../../bin/exo-alerts-image.tar
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

// options is what one build needs; newFlags fills it from the command line.
type options struct {
	Src      string    // the exo-alerts module's root
	Version  string    // baked into the binary and the version label
	Revision string    // the source revision label
	Platform string    // os/arch[/variant] of the image
	Epoch    time.Time // every timestamp in the image

	OCIDir    string // OCI image layout written here (replaced)
	TarPath   string // docker-archive tarball written here
	RootfsDir string // the layer's files written here (replaced)
}

func newFlags(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.StringVar(&o.Src, "src", ".", "root of the exo-alerts module")
	fs.StringVar(&o.Version, "version", "", "version baked into the binary and the labels (default: git describe --always --dirty in -src, else dev)")
	fs.StringVar(&o.Revision, "revision", "", "source revision label (default: git rev-parse HEAD in -src)")
	fs.StringVar(&o.Platform, "platform", "linux/"+runtime.GOARCH, "platform of the image: linux/amd64, linux/arm64, linux/arm/v7, …")
	fs.StringVar(&o.OCIDir, "oci", "", "write an OCI image layout to this directory")
	fs.StringVar(&o.TarPath, "tar", "", "write a docker-archive tarball (docker load -i) to this file")
	fs.StringVar(&o.RootfsDir, "rootfs", "", "write the image's files to this directory (the Dockerfile's build stage)")
	return fs
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var o options
	fs := newFlags(&o)
	fs.SetOutput(out)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.OCIDir == "" && o.TarPath == "" && o.RootfsDir == "" {
		return errors.New("nothing to write: give -oci, -tar or -rootfs")
	}
	if o.Version == "" {
		o.Version = gitOr(ctx, o.Src, "dev", "describe", "--always", "--dirty")
	}
	if o.Revision == "" {
		o.Revision = gitOr(ctx, o.Src, "", "rev-parse", "HEAD")
	}
	epoch, err := sourceDateEpoch(os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	o.Epoch = epoch
	res, err := build(ctx, o)
	if err != nil {
		return err
	}
	if o.RootfsDir != "" {
		fmt.Fprintf(out, "%s: the image's files\n", o.RootfsDir)
	}
	if o.OCIDir != "" || o.TarPath != "" {
		fmt.Fprintf(out, "exo-alerts:%s %s %s\n", res.Tag, o.Platform, res.Digest)
		for _, p := range []string{o.OCIDir, o.TarPath} {
			if p != "" {
				fmt.Fprintf(out, "  %s\n", p)
			}
		}
	}
	return nil
}

// sourceDateEpoch is the time SOURCE_DATE_EPOCH names (seconds since 1970,
// https://reproducible-builds.org/specs/source-date-epoch/); unset is 0.
func sourceDateEpoch(s string) (time.Time, error) {
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

// gitOr is the output of git args in dir, or def when git fails (no git, not
// a checkout: the Dockerfile's build context has no .git).
func gitOr(ctx context.Context, dir, def string, args ...string) string {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	b, err := cmd.Output()
	if s := strings.TrimSpace(string(b)); err == nil && s != "" {
		return s
	}
	return def
}
