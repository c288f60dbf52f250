package main

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The images' user: a numeric UID/GID so that the kubelet can check runAsNonRoot, the same the
// chart's securityContexts set.
const (
	imageUser = "10001:10001"
	caFile    = "/etc/ssl/certs/ca-certificates.crt"
)

// baseFile is one entry of the base layer.
type baseFile struct {
	name string
	mode int64
	uid  int
	dir  bool
	body []byte
}

// baseFiles is what the binaries need from an operating system image, like distroless/static:
// a passwd and group naming the non-root user, the Mozilla roots (from Go's x509roots bundle,
// pinned in go.mod), a resolver order and a writable /tmp. Time zones are embedded in the
// binaries (-tags timetzdata).
func baseFiles() ([]baseFile, error) {
	roots, err := caBundle()
	if err != nil {
		return nil, err
	}
	return []baseFile{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, body: []byte("root:x:0:\nnobody:x:65534:\nedgetel:x:10001:\n")},
		{name: "etc/nsswitch.conf", mode: 0o644, body: []byte("hosts: files dns\n")},
		{name: "etc/passwd", mode: 0o644, body: []byte("root:x:0:0:root:/root:/sbin/nologin\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
			"edgetel:x:10001:10001:edgetel:/home/edgetel:/sbin/nologin\n")},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: caFile[1:], mode: 0o644, body: roots},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/edgetel/", mode: 0o700, uid: 10001, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
	}, nil
}

// caBundle renders the bundle's unconstrained roots as PEM. A root with a distrust-after date
// cannot be expressed in a PEM file, so it is left out rather than trusted for everything.
func caBundle() ([]byte, error) {
	var out bytes.Buffer
	n := 0
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		if _, err := x509.ParseCertificate(r.Certificate); err != nil {
			return nil, fmt.Errorf("x509roots bundle: %w", err)
		}
		if err := pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate}); err != nil {
			return nil, err
		}
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("x509roots bundle: no unconstrained roots")
	}
	return out.Bytes(), nil
}

// epoch is the modification time of the base layer's files: fixed, so that its digest depends
// on its contents only.
var epoch = time.Unix(0, 0).UTC()

// writeTar writes files as a tar stream with fixed owners and times.
func writeTar(w io.Writer, files []baseFile, mtime time.Time) error {
	tw := tar.NewWriter(w)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.uid, ModTime: mtime, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(f.body); err != nil {
			return err
		}
	}
	return tw.Close()
}

// layerOf turns files into a gzip-compressed OCI layer.
func layerOf(files []baseFile, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	if err := writeTar(&buf, files, mtime); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// baseLayer builds the base layer and checks its uncompressed digest (the diff ID, independent of
// the compressor) against the pinned one, when one is given.
func baseLayer(pinned string) (v1.Layer, error) {
	files, err := baseFiles()
	if err != nil {
		return nil, err
	}
	layer, err := layerOf(files, epoch)
	if err != nil {
		return nil, err
	}
	diffID, err := layer.DiffID()
	if err != nil {
		return nil, err
	}
	if pinned != "" && diffID.String() != pinned {
		return nil, fmt.Errorf("base layer is %s, pinned %s: its files changed (x509roots bundle in tools/release/go.mod, or base.go); check the change and update BASE_DIFFID in the Makefile", diffID, pinned)
	}
	return layer, nil
}
