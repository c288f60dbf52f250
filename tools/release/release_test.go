package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// distDir is the output of `make release-snapshot` (EDGETEL_DIST, set by `make test-release`).
func distDir(t *testing.T) string {
	t.Helper()
	d := os.Getenv("EDGETEL_DIST")
	if d == "" {
		t.Skip("EDGETEL_DIST is not set: run `make test-release` (it builds ./dist with `make release-snapshot`)")
	}
	return d
}

// program is a program the Makefile passes by path in env; set but missing is a failure.
func program(t *testing.T, env string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		t.Skipf("%s is not set: run `make test-release`", env)
	}
	_, err := os.Stat(p)
	require.NoError(t, err, env)
	return p
}

var wantPlatforms = []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}

var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM}

// registryHost starts go-containerregistry's in-process registry and returns its host:port.
func registryHost(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// The released images and chart go to a registry and come back whole: every image an index of
// the three Linux platforms, each run as a non-root user, labelled, with the binary of its
// platform and the base files; the chart renders from its OCI reference with the images pinned
// to the digests pushed.
func TestReleasePushPullAndRender(t *testing.T) {
	dist := distDir(t)
	helm := program(t, "EDGETEL_HELM")
	recs, err := readImageRecords(filepath.Join(dist, "images.json"))
	require.NoError(t, err)
	require.Len(t, recs, 3)
	host := registryHost(t)

	refs, err := push(context.Background(), dist, host+"/edgetel", true)
	require.NoError(t, err)
	require.Len(t, refs, len(recs))

	for _, r := range recs {
		t.Run(r.Name, func(t *testing.T) {
			ref, err := name.ParseReference(host+"/edgetel/"+r.Name+":"+r.Tag, name.Insecure)
			require.NoError(t, err)
			idx, err := remote.Index(ref)
			require.NoError(t, err)
			d, err := idx.Digest()
			require.NoError(t, err)
			assert.Equal(t, r.Digest, d.String(), "the tag points at the index of images.json")
			checkIndex(t, idx, r)
		})
	}

	version := recs[0].Tag
	chart := filepath.Join(dist, "edgetel-"+version+".tgz")
	_, err = runHelm(t, helm, "push", chart, "oci://"+host+"/charts", "--plain-http")
	require.NoError(t, err)
	out, err := runHelm(t, helm, "template", "edgetel", "oci://"+host+"/charts/edgetel", "--version", version,
		"--plain-http", "--namespace", "edgetel", "--kube-version", "1.37.0",
		"--set", "edgeAgent.enabled=true", "--set", "edgeAgent.endpoint=http://receive:19291/api/v1/receive")
	require.NoError(t, err)
	checkRendered(t, out, recs)
}

func checkIndex(t *testing.T, idx v1.ImageIndex, r imageRecord) {
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	assert.Equal(t, r.Name, im.Annotations["org.opencontainers.image.title"])
	var plats []string
	for _, desc := range im.Manifests {
		require.NotNil(t, desc.Platform)
		plats = append(plats, desc.Platform.String())
		img, err := idx.Image(desc.Digest)
		require.NoError(t, err)
		t.Run(desc.Platform.String(), func(t *testing.T) { checkImage(t, img, *desc.Platform, r) })
	}
	assert.ElementsMatch(t, wantPlatforms, plats)
}

func checkImage(t *testing.T, img v1.Image, p v1.Platform, r imageRecord) {
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, p.Architecture, cf.Architecture)
	assert.Equal(t, p.Variant, cf.Variant)
	uid, _, _ := strings.Cut(cf.Config.User, ":")
	n, err := strconv.Atoi(uid)
	require.NoError(t, err, "user %q: numeric, so that the kubelet can check runAsNonRoot", cf.Config.User)
	assert.NotZero(t, n, "runs as root")
	assert.Equal(t, []string{"/" + r.Name}, cf.Config.Entrypoint)
	l := cf.Config.Labels
	assert.Equal(t, r.Tag, l["org.opencontainers.image.version"])
	assert.Equal(t, r.Name, l["org.opencontainers.image.title"])
	for _, k := range []string{"source", "revision", "licenses", "created"} {
		assert.NotEmpty(t, l["org.opencontainers.image."+k], k)
	}
	assert.Regexp(t, `^[0-9a-f]{40}$`, l["org.opencontainers.image.revision"])

	files := imageFiles(t, img, "/"+r.Name, "/etc/passwd", caFile)
	bin, err := elf.NewFile(bytes.NewReader(files["/"+r.Name]))
	require.NoError(t, err, "the image's binary")
	assert.Equal(t, elfMachine[p.Architecture], bin.Machine, "the binary is built for %s", p.Architecture)
	assert.Contains(t, string(files["/etc/passwd"]), ":"+uid+":", "the user is named in /etc/passwd")
	roots := 0
	for rest := files[caFile]; ; roots++ {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		_, err := x509.ParseCertificate(b.Bytes)
		require.NoError(t, err)
	}
	assert.Greater(t, roots, 100, "CA roots in %s", caFile)
}

// imageFiles reads the named files from the image's flattened filesystem.
func imageFiles(t *testing.T, img v1.Image, names ...string) map[string][]byte {
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	got := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		n := "/" + strings.TrimPrefix(h.Name, "/")
		if slices.Contains(names, n) {
			got[n], err = io.ReadAll(tr)
			require.NoError(t, err)
		}
	}
	for _, n := range names {
		require.Contains(t, got, n)
	}
	return got
}

// checkRendered finds every container of the rendered chart: edgetel's run the pushed digests,
// and the chart's labels carry the release version.
func checkRendered(t *testing.T, out []byte, recs []imageRecord) {
	want := map[string]string{}
	for _, r := range recs {
		want[r.Name] = r.Digest
	}
	seen := map[string]bool{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		for _, image := range containerImages(doc) {
			repo, digest, pinned := strings.Cut(image, "@")
			n := repo[strings.LastIndex(repo, "/")+1:]
			if d, ours := want[n]; ours {
				assert.True(t, pinned, "%s is not pinned by digest", image)
				assert.Equal(t, d, digest, "%s", image)
				seen[n] = true
			}
		}
		if labels, ok := dig(doc, "metadata", "labels").(map[string]any); ok && labels["app.kubernetes.io/version"] != nil {
			assert.Equal(t, recs[0].Tag, labels["app.kubernetes.io/version"])
		}
	}
	assert.Contains(t, seen, "edgetelcol")
	assert.Contains(t, seen, "edgetel-query")
}

// containerImages returns the images of every container in a rendered object.
func containerImages(v any) []string {
	var images []string
	switch x := v.(type) {
	case map[string]any:
		for k, sub := range x {
			if k == "containers" || k == "initContainers" {
				if list, ok := sub.([]any); ok {
					for _, c := range list {
						if m, ok := c.(map[string]any); ok {
							if s, ok := m["image"].(string); ok {
								images = append(images, s)
							}
						}
					}
				}
				continue
			}
			images = append(images, containerImages(sub)...)
		}
	case []any:
		for _, sub := range x {
			images = append(images, containerImages(sub)...)
		}
	}
	return images
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// runHelm runs helm with its caches and registry config in the test's directory.
func runHelm(t *testing.T, helm string, args ...string) ([]byte, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helm, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config",
		"HELM_DATA_HOME="+home+"/data", "HELM_REGISTRY_CONFIG="+home+"/registry.json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}
