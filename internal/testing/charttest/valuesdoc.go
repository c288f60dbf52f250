package charttest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	sigsyaml "sigs.k8s.io/yaml"
)

// ValuesReference renders the chart's values reference (charts/edgetel/VALUES.md): every key the
// schema declares down to its leaves (a key without declared properties), with the schema's type,
// the default from values.yaml and a description (the schema's, else the values.yaml comment
// that starts with "# --" above the key, helm-docs' convention). An object the schema describes
// as a whole (a Kubernetes probe) is one entry.
func ValuesReference(schemaJSON, valuesYAML []byte) (string, error) {
	var schema map[string]any
	if err := json.Unmarshal(schemaJSON, &schema); err != nil {
		return "", fmt.Errorf("schema: %w", err)
	}
	var values map[string]any
	if err := sigsyaml.Unmarshal(valuesYAML, &values); err != nil {
		return "", fmt.Errorf("values: %w", err)
	}
	comments := valuesComments(valuesYAML)
	var b strings.Builder
	b.WriteString("# edgetel chart values\n\n")
	b.WriteString("Generated from `values.schema.json` (types) and `values.yaml` (defaults, `# --` comments) by\n")
	b.WriteString("`internal/testing/charttest` (`TestValuesReferenceInSync`; `EDGETEL_UPDATE_VALUES_DOC=1` rewrites it). Do not edit.\n\n")
	b.WriteString("| Key | Type | Default | Description |\n| --- | --- | --- | --- |\n")
	var walk func(path string, s map[string]any, v any)
	walk = func(path string, s map[string]any, v any) {
		props, _ := s["properties"].(map[string]any)
		desc, _ := s["description"].(string)
		// A key with properties is one entry when the schema describes it as a whole (a probe).
		if (len(props) == 0 || desc != "") && path != "" {
			if desc == "" {
				desc = comments[path]
			}
			def := ""
			if v != nil {
				raw, _ := json.Marshal(v)
				def = "`" + strings.ReplaceAll(string(raw), "|", `\|`) + "`"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", path, schemaType(s), def, strings.ReplaceAll(desc, "|", `\|`))
			return
		}
		keys := make([]string, 0, len(props))
		for k := range props {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		m, _ := v.(map[string]any)
		for _, k := range keys {
			sub, _ := props[k].(map[string]any)
			p := k
			if path != "" {
				p = path + "." + k
			}
			walk(p, sub, m[k])
		}
	}
	walk("", schema, values)
	return b.String(), nil
}

func schemaType(s map[string]any) string {
	switch t := s["type"].(type) {
	case string:
		return t
	case []any:
		var out []string
		for _, x := range t {
			out = append(out, fmt.Sprint(x))
		}
		return strings.Join(out, " or ")
	}
	if _, ok := s["anyOf"]; ok {
		return "any of several"
	}
	return "any"
}

var keyLine = regexp.MustCompile(`^( *)([A-Za-z0-9_./-]+):`)

// valuesComments maps key paths of values.yaml to the "# --" comment above them (continued by
// the comment lines that follow it).
func valuesComments(valuesYAML []byte) map[string]string {
	out := map[string]string{}
	var stack []string // keys by indentation level (two spaces)
	var pending []string
	inComment := false
	sc := bufio.NewScanner(bytes.NewReader(valuesYAML))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "# --"):
			pending, inComment = []string{strings.TrimSpace(strings.TrimPrefix(trimmed, "# --"))}, true
			continue
		case strings.HasPrefix(trimmed, "#"):
			if inComment {
				pending = append(pending, strings.TrimSpace(strings.TrimPrefix(trimmed, "#")))
			}
			continue
		}
		inComment = false
		m := keyLine.FindStringSubmatch(line)
		if m == nil {
			pending = nil
			continue
		}
		level := len(m[1]) / 2
		if level > len(stack) {
			pending = nil
			continue // inside a list item or a literal block
		}
		stack = append(stack[:level], m[2])
		if pending != nil {
			out[strings.Join(stack, ".")] = strings.Join(pending, " ")
			pending = nil
		}
	}
	return out
}
