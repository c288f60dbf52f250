package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// platform is one target of the release: GOOS/GOARCH/GOARM and the OCI platform it becomes.
type platform struct {
	OS, Arch, Variant string
}

// Dir is the directory under dist/bin holding the platform's binaries (linux_armv7, ...).
func (p platform) Dir() string { return p.OS + "_" + p.Arch + p.Variant }

func (p platform) String() string {
	s := p.OS + "/" + p.Arch
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

func parsePlatform(s string) (platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return platform{}, fmt.Errorf("platform %q: want os/arch[/variant]", s)
	}
	p := platform{OS: parts[0], Arch: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

func parsePlatforms(s string) ([]platform, error) {
	var ps []platform
	for _, f := range strings.Split(s, ",") {
		p, err := parsePlatform(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// meta is what the OCI labels say about a release.
type meta struct {
	Version, Revision, Source, Licenses string
	Created                             time.Time
}

func (m meta) labels(name string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":    name,
		"org.opencontainers.image.source":   m.Source,
		"org.opencontainers.image.revision": m.Revision,
		"org.opencontainers.image.version":  m.Version,
		"org.opencontainers.image.licenses": m.Licenses,
		"org.opencontainers.image.created":  m.Created.Format(time.RFC3339),
	}
}

// imageRecord is what images.json says about one built image: its index digest and each
// platform's manifest digest and size (compressed layers and config, as a registry stores it).
type imageRecord struct {
	Name      string           `json:"name"`
	Tag       string           `json:"tag"`
	Digest    string           `json:"digest"`
	Platforms []platformRecord `json:"platforms"`
}

type platformRecord struct {
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
	Bytes    int64  `json:"bytes"`
}

// buildImage makes the multi-platform index of one command: per platform the base layer and a
// layer with the binary at /<name>, run as the non-root user.
func buildImage(name, binDir string, plats []platform, base v1.Layer, m meta) (v1.ImageIndex, imageRecord, error) {
	rec := imageRecord{Name: name, Tag: m.Version}
	var adds []mutate.IndexAddendum
	for _, p := range plats {
		img, err := platformImage(name, filepath.Join(binDir, p.Dir(), name), p, base, m)
		if err != nil {
			return nil, rec, fmt.Errorf("%s %s: %w", name, p, err)
		}
		d, err := img.Digest()
		if err != nil {
			return nil, rec, err
		}
		size, err := imageBytes(img)
		if err != nil {
			return nil, rec, err
		}
		rec.Platforms = append(rec.Platforms, platformRecord{Platform: p.String(), Digest: d.String(), Bytes: size})
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant}}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	idx = mutate.Annotations(idx, m.labels(name)).(v1.ImageIndex)
	d, err := idx.Digest()
	if err != nil {
		return nil, rec, err
	}
	rec.Digest = d.String()
	return idx, rec, nil
}

func platformImage(name, binary string, p platform, base v1.Layer, m meta) (v1.Image, error) {
	body, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	bin, err := layerOf([]baseFile{{name: name, mode: 0o755, body: body}}, m.Created)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, base, bin)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Arch, p.Variant
	cf.Created = v1.Time{Time: m.Created}
	cf.Config.User = imageUser
	cf.Config.Entrypoint = []string{"/" + name}
	cf.Config.WorkingDir = "/home/edgetel"
	cf.Config.Env = []string{"PATH=/", "SSL_CERT_FILE=" + caFile}
	cf.Config.Labels = m.labels(name)
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, m.labels(name)).(v1.Image), nil
}

// imageBytes is what pulling the image transfers: config plus compressed layers.
func imageBytes(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

// writeLayout writes the index as an OCI image layout at dir, tagged with the version.
func writeLayout(dir string, idx v1.ImageIndex, tag string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag}))
}

// readLayout returns the one index of the layout at dir.
func readLayout(dir string) (v1.ImageIndex, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	outer, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := outer.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(im.Manifests) != 1 {
		return nil, fmt.Errorf("%s: %d manifests, want one index", dir, len(im.Manifests))
	}
	return outer.ImageIndex(im.Manifests[0].Digest)
}

// buildImages builds every command's index into <out>/oci/<name> and records them in
// <out>/images.json.
func buildImages(names []string, binDir, out string, plats []platform, pinnedBase string, m meta) ([]imageRecord, error) {
	base, err := baseLayer(pinnedBase)
	if err != nil {
		return nil, err
	}
	var recs []imageRecord
	for _, name := range names {
		idx, rec, err := buildImage(name, binDir, plats, base, m)
		if err != nil {
			return nil, err
		}
		if err := writeLayout(filepath.Join(out, "oci", name), idx, m.Version); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		recs = append(recs, rec)
	}
	b, err := json.MarshalIndent(recs, "", "  ")
	if err != nil {
		return nil, err
	}
	return recs, os.WriteFile(filepath.Join(out, "images.json"), append(b, '\n'), 0o644)
}

func readImageRecords(path string) ([]imageRecord, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var recs []imageRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return recs, nil
}
