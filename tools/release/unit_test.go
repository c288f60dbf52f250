package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testMeta = meta{Version: "1.2.3-snapshot.gabc", Revision: strings.Repeat("a", 40),
	Source: "https://example.com/edgetel", Licenses: "Apache-2.0", Created: time.Unix(1700000000, 0).UTC()}

// The base layer is the same bytes every time (its digest is the pin), and a pin that does not
// match is an error that says what to do.
func TestBaseLayerIsReproducibleAndPinned(t *testing.T) {
	a, err := baseLayer("")
	require.NoError(t, err)
	b, err := baseLayer("")
	require.NoError(t, err)
	da, err := a.Digest()
	require.NoError(t, err)
	db, err := b.Digest()
	require.NoError(t, err)
	assert.Equal(t, da, db)
	id, err := a.DiffID()
	require.NoError(t, err)
	_, err = baseLayer(id.String())
	require.NoError(t, err)
	_, err = baseLayer("sha256:" + strings.Repeat("0", 64))
	require.ErrorContains(t, err, "BASE_DIFFID")
}

// Images built from binaries of every platform push to a registry and come back as one index
// with each platform's image, non-root and labelled; building twice gives the same digest.
func TestImagesBuildPushAndPull(t *testing.T) {
	dist := t.TempDir()
	bin := filepath.Join(dist, "bin")
	self, err := os.ReadFile(os.Args[0]) // any file: this checks the packaging, not the binary
	require.NoError(t, err)
	plats, err := parsePlatforms("linux/amd64,linux/arm64,linux/arm/v7")
	require.NoError(t, err)
	for _, p := range plats {
		require.NoError(t, os.MkdirAll(filepath.Join(bin, p.Dir()), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(bin, p.Dir(), "tool"), append(self[:1000:1000], p.Dir()...), 0o755))
	}
	recs, err := buildImages([]string{"tool"}, bin, dist, plats, "", testMeta)
	require.NoError(t, err)
	again, err := buildImages([]string{"tool"}, bin, t.TempDir(), plats, "", testMeta)
	require.NoError(t, err)
	assert.Equal(t, recs, again, "reproducible")

	host := registryHost(t)
	_, err = push(context.Background(), dist, host+"/x", true)
	require.NoError(t, err)
	ref, err := name.ParseReference(host+"/x/tool:"+testMeta.Version, name.Insecure)
	require.NoError(t, err)
	idx, err := remote.Index(ref)
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Len(t, im.Manifests, 3)
	for i, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		require.NoError(t, err)
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		assert.Equal(t, imageUser, cf.Config.User)
		assert.Equal(t, testMeta.Revision, cf.Config.Labels["org.opencontainers.image.revision"])
		assert.Equal(t, plats[i].String(), desc.Platform.String())
		files := imageFiles(t, img, "/tool")
		assert.True(t, bytes.HasSuffix(files["/tool"], []byte(plats[i].Dir())), "each platform's own binary")
	}
}

// A platform without a binary is an error naming it.
func TestImagesNeedEveryPlatformsBinary(t *testing.T) {
	plats, err := parsePlatforms("linux/amd64,linux/arm64")
	require.NoError(t, err)
	bin := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(bin, "linux_amd64"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(bin, "linux_amd64", "tool"), []byte("x"), 0o755))
	_, err = buildImages([]string{"tool"}, bin, t.TempDir(), plats, "", testMeta)
	require.ErrorContains(t, err, "linux/arm64")
	_, err = parsePlatforms("linux")
	require.Error(t, err)
}

// The SBOM lists the binary's modules from its build information, and the archives' checksums
// are in sha256sum's format.
func TestArchivesSBOMsAndChecksums(t *testing.T) {
	bin := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(bin, "linux_amd64"), 0o755))
	self, err := os.ReadFile(os.Args[0]) // a Go binary with build information: this test's
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(bin, "linux_amd64", "tool"), self, 0o755))
	readme := filepath.Join(t.TempDir(), "README.md")
	require.NoError(t, os.WriteFile(readme, []byte("# tool\n"), 0o644))
	license := filepath.Join(t.TempDir(), "LICENSE")
	require.NoError(t, os.WriteFile(license, []byte("Apache License\n"), 0o644))
	out := t.TempDir()
	files, err := archives(bin, out, []string{readme, license}, testMeta)
	require.NoError(t, err)
	archive := "tool_" + testMeta.Version + "_linux_amd64.tar.gz"
	assert.Equal(t, []string{archive, archive + ".cdx.json", "checksums.txt"}, files)

	f, err := os.Open(filepath.Join(out, archive+".cdx.json"))
	require.NoError(t, err)
	defer f.Close()
	var bom cdx.BOM
	require.NoError(t, cdx.NewBOMDecoder(f, cdx.BOMFileFormatJSON).Decode(&bom))
	assert.Equal(t, cdx.SpecVersion1_6, bom.SpecVersion)
	require.NotNil(t, bom.Metadata.Component)
	assert.Equal(t, testMeta.Version, bom.Metadata.Component.Version)
	var names []string
	for _, c := range *bom.Components {
		names = append(names, c.Name)
	}
	assert.Contains(t, names, "github.com/google/go-containerregistry")
	assert.Contains(t, names, "std")

	sums, err := os.ReadFile(filepath.Join(out, "checksums.txt"))
	require.NoError(t, err)
	want, err := fileSHA256(filepath.Join(out, archive))
	require.NoError(t, err)
	assert.Contains(t, string(sums), want+"  "+archive+"\n")

	tgz, err := os.Open(filepath.Join(out, archive))
	require.NoError(t, err)
	defer tgz.Close()
	zr, err := gzip.NewReader(tgz)
	require.NoError(t, err)
	tr := tar.NewReader(zr)
	var entries []string
	for h, err := tr.Next(); err == nil; h, err = tr.Next() {
		entries = append(entries, h.Name)
	}
	base := strings.TrimSuffix(archive, ".tar.gz")
	assert.Equal(t, []string{base + "/", base + "/tool", base + "/README.md", base + "/LICENSE"}, entries)
}

// The chart's values get each image's repository and digest; other values and comments stay.
func TestPinChartImages(t *testing.T) {
	values := filepath.Join(t.TempDir(), "values.yaml")
	require.NoError(t, os.WriteFile(values, []byte(`# top
image:
  # -- the collector
  collector:
    repository: ghcr.io/edgetel/edgetelcol
    tag: ""
    digest: ""
  pullPolicy: IfNotPresent
other: {a: 1}
`), 0o644))
	d := "sha256:" + strings.Repeat("1", 64)
	require.NoError(t, pinChartImages(values, "registry.example/edge/", []imageRecord{{Name: "edgetelcol", Digest: d}}))
	b, err := os.ReadFile(values)
	require.NoError(t, err)
	assert.Contains(t, string(b), "repository: registry.example/edge/edgetelcol\n")
	assert.Contains(t, string(b), "digest: "+d+"\n")
	assert.Contains(t, string(b), "# -- the collector")
	assert.Contains(t, string(b), "pullPolicy: IfNotPresent")

	err = pinChartImages(values, "r", []imageRecord{{Name: "edgetel-query", Digest: d}})
	require.ErrorContains(t, err, "image.query")
	err = pinChartImages(values, "r", []imageRecord{{Name: "unknown", Digest: d}})
	require.ErrorContains(t, err, "no chart value")
}
