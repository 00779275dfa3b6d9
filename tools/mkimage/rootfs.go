package main

import (
	"archive/tar"
	"bytes"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The image's user, entrypoint and files. The Dockerfile states the same
// (TestDockerfileMatches).
const (
	user       = "65532:65532"
	binaryPath = "/usr/local/bin/exo-alerts"
	caPath     = "/etc/ssl/certs/ca-certificates.crt"
	passwd     = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n"
	group      = "root:x:0:\nnonroot:x:65532:\n"
)

// exposedPorts are the default ports of the components: the control plane's
// API (--addr) and the processor's, dispatcher's and recorder's /metrics
// (--metrics-addr). In a container they must listen on 0.0.0.0 (the
// defaults are 127.0.0.1): --addr=:8080, --metrics-addr=:9101.
var exposedPorts = []string{"8080/tcp", "9101/tcp", "9102/tcp", "9103/tcp"}

// entry is one file or directory of the image's only layer, owned by root.
type entry struct {
	path string      // absolute, without a trailing slash
	mode fs.FileMode // permission bits, fs.ModeDir, fs.ModeSticky
	data []byte
}

// entries are the image's files, parents before children: the binary, the
// users, the CA bundle (the dispatcher calls HTTPS webhooks; a managed Kafka
// or Postgres presents a public CA's certificate) and a world-writable /tmp.
func entries(binary []byte) []entry {
	dir := fs.ModeDir | 0o755
	return []entry{
		{path: "/etc", mode: dir},
		{path: "/etc/group", mode: 0o644, data: []byte(group)},
		{path: "/etc/passwd", mode: 0o644, data: []byte(passwd)},
		{path: "/etc/ssl", mode: dir},
		{path: "/etc/ssl/certs", mode: dir},
		{path: caPath, mode: 0o644, data: caBundle()},
		{path: "/tmp", mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{path: "/usr", mode: dir},
		{path: "/usr/local", mode: dir},
		{path: "/usr/local/bin", mode: dir},
		{path: binaryPath, mode: 0o755, data: binary},
	}
}

// caBundle is the PEM bundle of the Mozilla roots that the Go project ships
// in golang.org/x/crypto/x509roots/fallback, pinned by this module's go.mod
// (so the image does not depend on the build host's certificates). Roots
// the bundle trusts only with constraints (distrusted after a date) are
// left out: a PEM file cannot carry the constraint.
func caBundle() []byte {
	var b bytes.Buffer
	b.WriteString("# Mozilla's roots from golang.org/x/crypto/x509roots/fallback (tools/mkimage/go.mod)\n")
	for c := range bundle.Roots() {
		if c.Constraint != nil {
			continue
		}
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate})
	}
	return b.Bytes()
}

// layerTar is the layer's uncompressed tar: every entry owned by root, every
// time the epoch.
func layerTar(es []entry, epoch time.Time) ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		h := &tar.Header{
			Name:    e.path[1:],
			Mode:    int64(e.mode.Perm()),
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		if e.mode&fs.ModeSticky != 0 {
			h.Mode |= 0o1000 // c_ISVTX
		}
		if e.mode.IsDir() {
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer: %s: %w", e.path, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("layer: %s: %w", e.path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return b.Bytes(), nil
}

// writeRootfs writes the entries under dir (replacing it), with their modes
// and the epoch as their times.
func writeRootfs(dir string, es []entry, epoch time.Time) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, e := range es {
		p := filepath.Join(dir, filepath.FromSlash(e.path))
		var err error
		if e.mode.IsDir() {
			err = os.Mkdir(p, e.mode.Perm())
		} else {
			err = os.WriteFile(p, e.data, e.mode.Perm())
		}
		if err == nil {
			err = os.Chmod(p, e.mode&(fs.ModePerm|fs.ModeSticky)) // past the umask
		}
		if err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	// Times last: writing a child changes its directory's mtime.
	for i := len(es) - 1; i >= 0; i-- {
		if err := os.Chtimes(filepath.Join(dir, filepath.FromSlash(es[i].path)), epoch, epoch); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	return nil
}
