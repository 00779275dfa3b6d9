package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	testVersion  = "v9.8.7-4-gabcdef0-dirty"
	testRevision = "0123456789abcdef0123456789abcdef01234567"
	testEpoch    = 1700000000
)

// built is one run of make image's build, in a temporary directory.
type built struct {
	opts   options
	res    result
	stdout string
}

var (
	sharedOnce  sync.Once
	shared      built
	sharedError error
)

// sharedBuild builds the image once for the tests that only read it.
func sharedBuild(t *testing.T) built {
	t.Helper()
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mkimage-test-")
		if err != nil {
			sharedError = err
			return
		}
		shared, sharedError = buildInto(dir, srcDir(t))
	})
	if sharedError != nil {
		t.Fatal(sharedError)
	}
	return shared
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.opts.OCIDir != "" {
		_ = os.RemoveAll(filepath.Dir(shared.opts.OCIDir))
	}
	os.Exit(code)
}

// buildInto runs mkimage as make image does, from the module in src, with
// every output under dir.
func buildInto(dir, src string) (built, error) {
	o := options{
		Src: src, Version: testVersion, Revision: testRevision, Platform: "linux/" + runtime.GOARCH,
		Epoch:  time.Unix(testEpoch, 0).UTC(),
		OCIDir: filepath.Join(dir, "oci"), TarPath: filepath.Join(dir, "exo-alerts-image.tar"), RootfsDir: filepath.Join(dir, "rootfs"),
	}
	res, err := build(context.Background(), o)
	return built{opts: o, res: res}, err
}

func srcDir(t *testing.T) string {
	t.Helper()
	src, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// layoutImage is the image as a registry client reads it from the OCI
// layout (crane push, skopeo copy oci:…).
func layoutImage(t *testing.T, dir string) (v1.Image, v1.Descriptor) {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("the OCI layout holds %d manifests, want 1", len(im.Manifests))
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img, im.Manifests[0]
}

// layerFile is one entry of a layer, as a container runtime unpacks it.
type layerFile struct {
	hdr  tar.Header
	data []byte
}

func layerFiles(t *testing.T, img v1.Image) map[string]layerFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]layerFile{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files["/"+strings.TrimSuffix(h.Name, "/")] = layerFile{hdr: *h, data: data}
		}
		_ = rc.Close()
	}
	return files
}

// The image make image writes: what a platform team checks before running
// it — a non-root numeric user, the binary as entrypoint, nothing to run but
// the binary (no shell), a static binary that runs on an empty base, and
// the version it was built as.
func TestImage(t *testing.T) {
	t.Parallel()
	b := sharedBuild(t)
	img, desc := layoutImage(t, b.opts.OCIDir)
	if desc.Digest != b.res.Digest {
		t.Errorf("the OCI layout's image is %s, mkimage reported %s", desc.Digest, b.res.Digest)
	}
	if desc.Platform == nil || desc.Platform.OS != "linux" || desc.Platform.Architecture != runtime.GOARCH {
		t.Errorf("the OCI layout's platform is %v, want linux/%s", desc.Platform, runtime.GOARCH)
	}
	if got := desc.Annotations["org.opencontainers.image.ref.name"]; got != imageTag(testVersion) {
		t.Errorf("the OCI layout's ref.name is %q, want %q", got, imageTag(testVersion))
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	files := layerFiles(t, img)

	t.Run("config", func(t *testing.T) {
		uid, gid, ok := strings.Cut(cf.Config.User, ":")
		u, err1 := strconv.Atoi(uid)
		g, err2 := strconv.Atoi(gid)
		if !ok || err1 != nil || err2 != nil || u == 0 || g == 0 {
			t.Errorf("user %q: want a numeric non-root uid:gid (Kubernetes runAsNonRoot can only check a numeric user)", cf.Config.User)
		}
		if !slices.Equal(cf.Config.Entrypoint, []string{"/usr/local/bin/exo-alerts"}) || len(cf.Config.Cmd) != 0 {
			t.Errorf("entrypoint %q cmd %q, want the binary with no default arguments", cf.Config.Entrypoint, cf.Config.Cmd)
		}
		if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
			t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
		}
		if !cf.Created.Time.Equal(time.Unix(testEpoch, 0)) {
			t.Errorf("created %v, want SOURCE_DATE_EPOCH %d", cf.Created.Time, testEpoch)
		}
		for k, want := range map[string]string{
			"org.opencontainers.image.version":  testVersion,
			"org.opencontainers.image.revision": testRevision,
			"org.opencontainers.image.title":    "exo-alerts",
			"org.opencontainers.image.source":   "https://github.com/exospherehost/exo-alerts",
		} {
			if got := cf.Config.Labels[k]; got != want {
				t.Errorf("label %s = %q, want %q", k, got, want)
			}
		}
		for _, p := range []string{"8080/tcp", "9101/tcp", "9102/tcp", "9103/tcp"} {
			if _, ok := cf.Config.ExposedPorts[p]; !ok {
				t.Errorf("port %s is not exposed: %v", p, cf.Config.ExposedPorts)
			}
		}
		if len(cf.History) != 1 || len(cf.RootFS.DiffIDs) != 1 {
			t.Errorf("%d history entries and %d layers, want one layer on an empty base", len(cf.History), len(cf.RootFS.DiffIDs))
		}
		// The user exists in /etc/passwd: tools that look the user up by
		// id (ps, id, libraries reading $HOME) find it.
		if !strings.Contains(string(files["/etc/passwd"].data), ":x:"+uid+":"+gid+":") {
			t.Errorf("/etc/passwd has no user %s:\n%s", cf.Config.User, files["/etc/passwd"].data)
		}
	})

	t.Run("files", func(t *testing.T) {
		want := []string{"/etc", "/etc/group", "/etc/passwd", "/etc/ssl", "/etc/ssl/certs", "/etc/ssl/certs/ca-certificates.crt",
			"/tmp", "/usr", "/usr/local", "/usr/local/bin", "/usr/local/bin/exo-alerts"}
		got := slices.Sorted(func(yield func(string) bool) {
			for p := range files {
				if !yield(p) {
					return
				}
			}
		})
		if !slices.Equal(got, want) {
			t.Errorf("the layer holds %q, want %q", got, want)
		}
		for p, f := range files {
			base := filepath.Base(p)
			if p == "/bin/sh" || base == "sh" || base == "bash" || base == "busybox" {
				t.Errorf("the image has a shell: %s", p)
			}
			if f.hdr.Typeflag == tar.TypeReg && f.hdr.Mode&0o111 != 0 && p != "/usr/local/bin/exo-alerts" {
				t.Errorf("%s is executable: nothing but the binary may run in the image", p)
			}
			if f.hdr.Typeflag != tar.TypeReg && f.hdr.Typeflag != tar.TypeDir {
				t.Errorf("%s is of tar type %c: want only files and directories", p, f.hdr.Typeflag)
			}
			if f.hdr.Uid != 0 || f.hdr.Gid != 0 || f.hdr.Mode&0o022 != 0 && p != "/tmp" {
				t.Errorf("%s: owner %d:%d mode %o: the user 65532 must not be able to change the image's files", p, f.hdr.Uid, f.hdr.Gid, f.hdr.Mode)
			}
			if !f.hdr.ModTime.Equal(time.Unix(testEpoch, 0)) {
				t.Errorf("%s: mtime %v, want SOURCE_DATE_EPOCH", p, f.hdr.ModTime)
			}
		}
		if m := files["/tmp"].hdr.Mode; m != 0o1777 {
			t.Errorf("/tmp has mode %o, want 1777", m)
		}
	})

	t.Run("static binary", func(t *testing.T) {
		f, err := elf.NewFile(bytes.NewReader(files["/usr/local/bin/exo-alerts"].data))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("the binary has a %v program header: it needs a dynamic loader the empty base lacks", p.Type)
			}
		}
		if libs, err := f.ImportedLibraries(); err != nil || len(libs) != 0 {
			t.Errorf("the binary needs shared libraries %q (%v)", libs, err)
		}
		if want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]; want != 0 && f.Machine != want {
			t.Errorf("the binary is for %v, want %v", f.Machine, want)
		}
	})

	t.Run("version", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), "exo-alerts")
		if err := os.WriteFile(bin, files["/usr/local/bin/exo-alerts"].data, 0o755); err != nil {
			t.Fatal(err)
		}
		want := "exo-alerts " + testVersion + " " + runtime.Version() + " linux/" + runtime.GOARCH + "\n"
		for _, arg := range []string{"version", "--version"} {
			out, err := exec.Command(bin, arg).CombinedOutput()
			if err != nil || string(out) != want {
				t.Errorf("exo-alerts %s from the image: %v, printed %q, want %q", arg, err, out, want)
			}
		}
	})

	t.Run("CA bundle", func(t *testing.T) {
		rest := files["/etc/ssl/certs/ca-certificates.crt"].data
		var names []string
		for {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if !c.IsCA {
				t.Errorf("%s is not a CA", c.Subject)
			}
			names = append(names, c.Subject.CommonName)
		}
		// Let's Encrypt's root signs most webhook receivers' certificates.
		if len(names) < 100 || !slices.Contains(names, "ISRG Root X1") {
			t.Errorf("the bundle holds %d roots (%q), want Mozilla's (ISRG Root X1 among them)", len(names), names)
		}
	})

	t.Run("docker archive", func(t *testing.T) {
		dimg, err := tarball.ImageFromPath(b.opts.TarPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		// A docker archive has no manifest of its own: docker load knows an
		// image by its config digest (the image id) and its layers.
		for what, get := range map[string]func(v1.Image) (v1.Hash, error){
			"config": func(i v1.Image) (v1.Hash, error) { return i.ConfigName() },
			"layer": func(i v1.Image) (v1.Hash, error) {
				ls, err := i.Layers()
				if err != nil || len(ls) != 1 {
					return v1.Hash{}, fmt.Errorf("%d layers (%v)", len(ls), err)
				}
				return ls[0].Digest()
			},
		} {
			d, err1 := get(dimg)
			o, err2 := get(img)
			if err1 != nil || err2 != nil || d != o {
				t.Errorf("the docker archive's %s is %s (%v), the OCI layout's %s (%v)", what, d, err1, o, err2)
			}
		}
		m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(b.opts.TarPath) })
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{"exo-alerts:" + imageTag(testVersion)}) {
			t.Errorf("docker load would tag it %v, want exo-alerts:%s", m, imageTag(testVersion))
		}
	})

	// Pushed as crane push does (to a registry on loopback), the image
	// keeps the digest make image printed: the one to pin in a deployment.
	t.Run("push", func(t *testing.T) {
		srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
		t.Cleanup(srv.Close)
		ref := strings.TrimPrefix(srv.URL, "http://") + "/exo-alerts:" + imageTag(testVersion)
		if err := crane.Push(img, ref); err != nil {
			t.Fatal(err)
		}
		d, err := crane.Digest(ref)
		if err != nil || d != b.res.Digest.String() {
			t.Errorf("the registry has %s (%v), make image printed %s", d, err, b.res.Digest)
		}
		pulled, err := crane.Pull(ref)
		if err != nil {
			t.Fatal(err)
		}
		if pcf, err := pulled.ConfigFile(); err != nil || pcf.Config.User != cf.Config.User {
			t.Errorf("the pulled image's config: %v, %v", pcf, err)
		}
	})

	// The Dockerfile copies the -rootfs directory into its image: it must
	// be the layer, file for file.
	t.Run("rootfs", func(t *testing.T) {
		seen := 0
		err := filepath.WalkDir(b.opts.RootfsDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == b.opts.RootfsDir {
				return err
			}
			rel := "/" + filepath.ToSlash(strings.TrimPrefix(p, b.opts.RootfsDir+string(filepath.Separator)))
			lf, ok := files[rel]
			if !ok {
				t.Errorf("-rootfs has %s, the layer has not", rel)
				return nil
			}
			seen++
			info, err := d.Info()
			if err != nil {
				return err
			}
			mode := int64(info.Mode().Perm())
			if info.Mode()&fs.ModeSticky != 0 {
				mode |= 0o1000
			}
			if mode != lf.hdr.Mode || info.IsDir() != (lf.hdr.Typeflag == tar.TypeDir) || !info.ModTime().Equal(lf.hdr.ModTime) {
				t.Errorf("%s: -rootfs has mode %o dir=%v mtime %v, the layer %o %c %v", rel, mode, info.IsDir(), info.ModTime(), lf.hdr.Mode, lf.hdr.Typeflag, lf.hdr.ModTime)
			}
			if !info.IsDir() {
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				if !bytes.Equal(data, lf.data) {
					t.Errorf("%s differs between -rootfs and the layer", rel)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if seen != len(files) {
			t.Errorf("-rootfs has %d of the layer's %d entries", seen, len(files))
		}
	})
}

// Two builds of the same source, version and SOURCE_DATE_EPOCH, the second
// from a copy of the checkout at another path, give the same image digest
// and byte-identical outputs.
func TestReproducible(t *testing.T) {
	t.Parallel()
	first := sharedBuild(t)
	src := copySource(t, srcDir(t))
	second, err := buildInto(t.TempDir(), src)
	if err != nil {
		t.Fatal(err)
	}
	if first.res.Digest != second.res.Digest {
		t.Errorf("the second build's image is %s, the first's %s", second.res.Digest, first.res.Digest)
	}
	for _, pair := range [][2]string{{first.opts.OCIDir, second.opts.OCIDir}, {first.opts.TarPath, second.opts.TarPath}, {first.opts.RootfsDir, second.opts.RootfsDir}} {
		a, b := treeContents(t, pair[0]), treeContents(t, pair[1])
		if len(a) == 0 || len(a) != len(b) {
			t.Errorf("%s has %d files, %s %d", pair[0], len(a), pair[1], len(b))
		}
		for name, data := range a {
			if !bytes.Equal(data, b[name]) {
				t.Errorf("%s differs between the two builds", name)
			}
		}
	}
}

// copySource copies the files of the checkout that git would see (tracked
// and untracked, not ignored) to a new directory.
func copySource(t *testing.T, src string) string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = src
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "elsewhere", "exo-alerts")
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		data, err := os.ReadFile(filepath.Join(src, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dst, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// treeContents is every regular file under root (or root itself) by its
// path relative to root.
func treeContents(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[rel] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestImageTag(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"v1.2.3":                       "v1.2.3",
		"a6e1c04-dirty":                "a6e1c04-dirty",
		"v0.0.0-20260101-abcdef+dirty": "v0.0.0-20260101-abcdef-dirty",
		"-x":                           "v-x",
		strings.Repeat("a", 200):       strings.Repeat("a", 128),
	} {
		if got := imageTag(in); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSourceDateEpoch(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"": 0, "1700000000": 1700000000} {
		if got, err := sourceDateEpoch(in); err != nil || got.Unix() != want {
			t.Errorf("SOURCE_DATE_EPOCH=%q: %v, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"-1", "yesterday", "1.5"} {
		if _, err := sourceDateEpoch(in); err == nil {
			t.Errorf("SOURCE_DATE_EPOCH=%q accepted", in)
		}
	}
}

// mkimage refuses what it cannot build, before building anything.
func TestRunRefuses(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{},                         // no output
		{"-tar", "x.tar", "extra"}, // stray argument
		{"-tar", "x.tar", "-platform", "windows/amd64"},
		{"-tar", "x.tar", "-version", "v1 2"}, // would split -ldflags
	} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out); err == nil {
			t.Errorf("mkimage %q succeeded: %s", args, out.String())
		}
	}
}
