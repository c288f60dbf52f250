package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// sbom describes a Go binary in CycloneDX 1.6 JSON from the build information the Go linker
// embeds (what `go version -m` prints): the main module at the release version, every module
// linked in, the Go standard library, and the build settings as properties.
func sbom(w io.Writer, binary, name string, m meta) error {
	bi, err := buildinfo.ReadFile(binary)
	if err != nil {
		return fmt.Errorf("%s: %w", binary, err)
	}
	sum, err := fileSHA256(binary)
	if err != nil {
		return err
	}
	mainRef := purl(bi.Main.Path, "v"+m.Version)
	main := cdx.Component{
		BOMRef: mainRef, Type: cdx.ComponentTypeApplication, Name: name, Version: m.Version,
		PackageURL: mainRef, Hashes: &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: sum}},
		Licenses:           &cdx.Licenses{{Expression: m.Licenses}},
		ExternalReferences: &[]cdx.ExternalReference{{Type: cdx.ERTypeVCS, URL: m.Source}},
		Properties:         buildProperties(bi),
	}
	std := purl("std", bi.GoVersion)
	comps := []cdx.Component{{BOMRef: std, Type: cdx.ComponentTypeLibrary, Name: "std", Version: bi.GoVersion, PackageURL: std}}
	deps := []string{std}
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		ref := purl(d.Path, d.Version)
		c := cdx.Component{BOMRef: ref, Type: cdx.ComponentTypeLibrary, Name: d.Path, Version: d.Version, PackageURL: ref}
		if d.Sum != "" {
			c.Properties = &[]cdx.Property{{Name: "go:module:sum", Value: d.Sum}}
		}
		comps = append(comps, c)
		deps = append(deps, ref)
	}
	bom := cdx.NewBOM()
	bom.SerialNumber = serial(sum, m.Version)
	bom.Metadata = &cdx.Metadata{
		Timestamp: m.Created.Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: "edgetel-release", Description: "tools/release of " + m.Source}}},
		Component: &main,
	}
	bom.Components = &comps
	bom.Dependencies = &[]cdx.Dependency{{Ref: mainRef, Dependencies: &deps}}
	return cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON).SetPretty(true).EncodeVersion(bom, cdx.SpecVersion1_6)
}

func purl(path, version string) string { return "pkg:golang/" + path + "@" + version }

func buildProperties(bi *buildinfo.BuildInfo) *[]cdx.Property {
	props := []cdx.Property{{Name: "go:version", Value: bi.GoVersion}}
	for _, s := range bi.Settings {
		props = append(props, cdx.Property{Name: "go:build:" + s.Key, Value: s.Value})
	}
	return &props
}

// serial is a stable urn:uuid for the BOM (a version-5-shaped UUID from the binary's hash), so
// that building the same release twice gives the same file.
func serial(binarySHA, version string) string {
	h := sha256.Sum256([]byte(binarySHA + " " + version))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
