package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// result is what build made.
type result struct {
	Image  v1.Image
	Digest v1.Hash // of the image manifest
	Tag    string  // the version as an image tag
}

// build builds the binary and writes what o asks for.
func build(ctx context.Context, o options) (result, error) {
	plat, err := v1.ParsePlatform(o.Platform)
	if err != nil || plat.OS != "linux" || plat.Architecture == "" {
		return result{}, fmt.Errorf("-platform %q: want linux/<arch>[/<variant>]", o.Platform)
	}
	if strings.ContainsAny(o.Version, " \t\n'\"\\") || o.Version == "" {
		return result{}, fmt.Errorf("-version %q: want a version without spaces or quotes", o.Version)
	}
	binary, err := buildBinary(ctx, o.Src, *plat, o.Version)
	if err != nil {
		return result{}, err
	}
	es := entries(binary)
	if o.RootfsDir != "" {
		if err := writeRootfs(o.RootfsDir, es, o.Epoch); err != nil {
			return result{}, err
		}
	}
	img, err := assemble(es, *plat, o)
	if err != nil {
		return result{}, err
	}
	res := result{Image: img, Tag: imageTag(o.Version)}
	if res.Digest, err = img.Digest(); err != nil {
		return result{}, fmt.Errorf("image digest: %w", err)
	}
	if o.OCIDir != "" {
		if err := os.RemoveAll(o.OCIDir); err != nil {
			return result{}, err
		}
		p, err := layout.Write(o.OCIDir, empty.Index)
		if err != nil {
			return result{}, fmt.Errorf("OCI layout: %w", err)
		}
		err = p.AppendImage(img, layout.WithPlatform(*plat),
			layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": res.Tag}))
		if err != nil {
			return result{}, fmt.Errorf("OCI layout: %w", err)
		}
	}
	if o.TarPath != "" {
		ref, err := name.NewTag("exo-alerts:" + res.Tag)
		if err != nil {
			return result{}, err
		}
		if err := os.MkdirAll(filepath.Dir(o.TarPath), 0o755); err != nil {
			return result{}, err
		}
		if err := tarball.WriteToFile(o.TarPath, ref, img); err != nil {
			return result{}, fmt.Errorf("docker archive: %w", err)
		}
	}
	return res, nil
}

// buildBinary builds ./cmd/exo-alerts in src for plat: static (no cgo),
// without build paths, VCS stamp or build id (the same source gives the same
// bytes wherever it is checked out), stripped, with the version baked in.
func buildBinary(ctx context.Context, src string, plat v1.Platform, version string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "mkimage-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "exo-alerts")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -buildid= -X main.version="+version, "-o", out, "./cmd/exo-alerts")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+plat.OS, "GOARCH="+plat.Architecture)
	if plat.Architecture == "arm" && plat.Variant != "" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(plat.Variant, "v"))
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/exo-alerts in %s: %w\n%s", src, err, stderr.Bytes())
	}
	return os.ReadFile(out)
}

// assemble is the image: an empty base, one layer with the entries, and a
// config naming the non-root user, the entrypoint, the ports and labels.
func assemble(es []entry, plat v1.Platform, o options) (v1.Image, error) {
	raw, err := layerTar(es, o.Epoch)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: o.Epoch},
			CreatedBy: "tools/mkimage: " + binaryPath + " (static), /etc/passwd, /etc/group, " + caPath + ", /tmp",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: o.Epoch}
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	cf.Config = imageConfig(o.Version, o.Revision)
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return img, nil
}

// imageConfig is the runtime configuration; the Dockerfile's final stage
// states the same.
func imageConfig(version, revision string) v1.Config {
	ports := map[string]struct{}{}
	for _, p := range exposedPorts {
		ports[p] = struct{}{}
	}
	return v1.Config{
		User:         user,
		Entrypoint:   []string{binaryPath},
		ExposedPorts: ports,
		Labels:       labels(version, revision),
	}
}

// labels are the OCI annotations of the image
// (https://github.com/opencontainers/image-spec/blob/main/annotations.md).
func labels(version, revision string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "exo-alerts",
		"org.opencontainers.image.description": "Outgoing webhooks and alert rules for workflow runs",
		"org.opencontainers.image.source":      "https://github.com/exospherehost/exo-alerts",
		"org.opencontainers.image.version":     version,
		"org.opencontainers.image.revision":    revision,
	}
}

var notTagChar = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// imageTag is the version as a valid image tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
// (a module version's "+dirty" becomes "-dirty").
func imageTag(version string) string {
	t := notTagChar.ReplaceAllString(version, "-")
	if t == "" || t[0] == '.' || t[0] == '-' {
		t = "v" + t
	}
	if len(t) > 128 {
		t = t[:128]
	}
	return t
}
