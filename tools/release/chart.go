package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// chartImages maps each image the release builds to the chart value that selects it.
var chartImages = map[string][]string{
	"edgetelcol":      {"image", "collector"},
	"edgetel-query":   {"image", "query"},
	"edgetel-onboard": {"image", "onboard"},
}

// pinChartImages rewrites the chart's values file so that each released image is
// <prefix>/<name> pinned by its index digest: the published chart then installs exactly the
// images built with it, whatever a tag comes to point at later.
func pinChartImages(valuesFile, prefix string, recs []imageRecord) error {
	b, err := os.ReadFile(valuesFile)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%s: %w", valuesFile, err)
	}
	for _, r := range recs {
		path, ok := chartImages[r.Name]
		if !ok {
			return fmt.Errorf("image %s: no chart value selects it", r.Name)
		}
		img, err := mapping(&doc, path)
		if err != nil {
			return fmt.Errorf("%s: %w", valuesFile, err)
		}
		if err := setScalar(img, "repository", strings.TrimSuffix(prefix, "/")+"/"+r.Name); err != nil {
			return fmt.Errorf("%s: %s: %w", valuesFile, strings.Join(path, "."), err)
		}
		if err := setScalar(img, "digest", r.Digest); err != nil {
			return fmt.Errorf("%s: %s: %w", valuesFile, strings.Join(path, "."), err)
		}
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	return os.WriteFile(valuesFile, out.Bytes(), 0o644)
}

// mapping follows keys from the document's root to a mapping node.
func mapping(doc *yaml.Node, keys []string) (*yaml.Node, error) {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for i, k := range keys {
		v := value(n, k)
		if v == nil || v.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("no mapping at %s", strings.Join(keys[:i+1], "."))
		}
		n = v
	}
	return n, nil
}

func value(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func setScalar(m *yaml.Node, key, v string) error {
	n := value(m, key)
	if n == nil || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("no scalar %q", key)
	}
	n.Value, n.Tag, n.Style = v, "!!str", 0
	return nil
}
