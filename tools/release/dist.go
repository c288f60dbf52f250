package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// archives packs every binary under binDir/<os>_<arch> into <out>/<name>_<version>_<os>_<arch>.tar.gz
// (the binary and the repository's README), writes an SBOM next to each archive
// (<archive>.cdx.json) and the sha256 sums of all of them in <out>/checksums.txt, in the format
// `sha256sum -c` reads. It returns the files written.
func archives(binDir, out string, docs []string, m meta) ([]string, error) {
	var docFiles []baseFile
	for _, doc := range docs {
		body, err := os.ReadFile(doc)
		if err != nil {
			return nil, err
		}
		docFiles = append(docFiles, baseFile{name: filepath.Base(doc), mode: 0o644, body: body})
	}
	dirs, err := os.ReadDir(binDir)
	if err != nil {
		return nil, err
	}
	var written []string
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		bins, err := os.ReadDir(filepath.Join(binDir, d.Name()))
		if err != nil {
			return nil, err
		}
		for _, b := range bins {
			files, err := archiveOne(filepath.Join(binDir, d.Name(), b.Name()), b.Name(), d.Name(), out, docFiles, m)
			if err != nil {
				return nil, err
			}
			written = append(written, files...)
		}
	}
	if len(written) == 0 {
		return nil, fmt.Errorf("no binaries under %s/<os>_<arch>/", binDir)
	}
	slices.Sort(written)
	var sums bytes.Buffer
	for _, f := range written {
		sum, err := fileSHA256(filepath.Join(out, f))
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&sums, "%s  %s\n", sum, f)
	}
	if err := os.WriteFile(filepath.Join(out, "checksums.txt"), sums.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return append(written, "checksums.txt"), nil
}

func archiveOne(binary, name, plat, out string, docs []baseFile, m meta) ([]string, error) {
	body, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	base := fmt.Sprintf("%s_%s_%s", name, m.Version, plat)
	var tgz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&tgz, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	files := []baseFile{{name: base + "/", mode: 0o755, dir: true},
		{name: base + "/" + name, mode: 0o755, body: body}}
	for _, d := range docs {
		d.name = base + "/" + d.name
		files = append(files, d)
	}
	if err := writeTar(zw, files, m.Created); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	archive := base + ".tar.gz"
	if err := os.WriteFile(filepath.Join(out, archive), tgz.Bytes(), 0o644); err != nil {
		return nil, err
	}
	var bom bytes.Buffer
	if err := sbom(&bom, binary, name, m); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(out, archive+".cdx.json"), bom.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return []string{archive, archive + ".cdx.json"}, nil
}
