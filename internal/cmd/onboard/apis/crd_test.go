package apis

import (
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

const crdPath = "../../../../charts/edgetel/files/onboard.edgetel.io_iptablesrules.yaml"

type jsonSchema struct {
	Type                 string                `json:"type"`
	Properties           map[string]jsonSchema `json:"properties"`
	Items                *jsonSchema           `json:"items"`
	Required             []string              `json:"required"`
	Enum                 []any                 `json:"enum"`
	PreserveUnknown      bool                  `json:"x-kubernetes-preserve-unknown-fields"`
	AdditionalProperties any                   `json:"additionalProperties"`
	Description          string                `json:"description"`
	Format               string                `json:"format"`
	Pattern              string                `json:"pattern"`
	MaxLength            *int                  `json:"maxLength"`
	MinLength            *int                  `json:"minLength"`
	Minimum              *int                  `json:"minimum"`
	ListType             string                `json:"x-kubernetes-list-type"`
	ListMapKeys          []string              `json:"x-kubernetes-list-map-keys"`
}

type crd struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Group string `json:"group"`
		Scope string `json:"scope"`
		Names struct {
			Kind   string `json:"kind"`
			Plural string `json:"plural"`
		} `json:"names"`
		Versions []struct {
			Name         string `json:"name"`
			Served       bool   `json:"served"`
			Storage      bool   `json:"storage"`
			Subresources struct {
				Status *struct{} `json:"status"`
			} `json:"subresources"`
			Schema struct {
				OpenAPIV3Schema jsonSchema `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

func loadCRD(t *testing.T) crd {
	t.Helper()
	data, err := os.ReadFile(crdPath)
	require.NoError(t, err)
	var c crd
	require.NoError(t, yaml.Unmarshal(data, &c))
	// The schema is decoded strictly: a misspelt schema keyword would silently mean nothing.
	var raw struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	require.NoError(t, yaml.Unmarshal(data, &raw))
	for _, v := range raw.Spec.Versions {
		b, err := yaml.Marshal(v.Schema.OpenAPIV3Schema)
		require.NoError(t, err)
		var s jsonSchema
		require.NoError(t, yaml.UnmarshalStrict(b, &s), "unknown schema keyword")
	}
	return c
}

func TestCRDMatchesTypes(t *testing.T) {
	c := loadCRD(t)
	assert.Equal(t, "apiextensions.k8s.io/v1", c.APIVersion)
	assert.Equal(t, "CustomResourceDefinition", c.Kind)
	assert.Equal(t, Resource+"."+Group, c.Metadata.Name)
	assert.Equal(t, Group, c.Spec.Group)
	assert.Equal(t, Kind, c.Spec.Names.Kind)
	assert.Equal(t, Resource, c.Spec.Names.Plural)
	require.Len(t, c.Spec.Versions, 1)
	v := c.Spec.Versions[0]
	assert.Equal(t, Version, v.Name)
	assert.True(t, v.Served && v.Storage)
	assert.NotNil(t, v.Subresources.Status, "the controller writes status through the subresource")

	root := v.Schema.OpenAPIV3Schema
	requireStructural(t, "openAPIV3Schema", root)
	spec := root.Properties["spec"]
	assert.Equal(t, jsonFields(reflect.TypeOf(Spec{})), keys(spec.Properties))
	assert.Equal(t, jsonFields(reflect.TypeOf(Rule{})), keys(spec.Properties["rules"].Items.Properties))
	assert.Equal(t, jsonFields(reflect.TypeOf(Status{})), keys(root.Properties["status"].Properties))
	assert.ElementsMatch(t, []any{string(ModelEdgeIP), string(ModelTunnelPort)}, spec.Properties["model"].Enum)
}

// requireStructural checks the rule the API server enforces for v1 CRDs: every node states its
// type, arrays state their items (metadata is the one object left open).
func requireStructural(t *testing.T, path string, s jsonSchema) {
	t.Helper()
	if s.PreserveUnknown {
		return
	}
	assert.NotEmpty(t, s.Type, "%s has no type", path)
	if s.Type == "array" {
		if assert.NotNil(t, s.Items, "%s: array without items", path) {
			requireStructural(t, path+"[]", *s.Items)
		}
	}
	for _, r := range s.Required {
		assert.Contains(t, s.Properties, r, "%s requires undeclared %s", path, r)
	}
	for name, p := range s.Properties {
		requireStructural(t, path+"."+name, p)
	}
}

func jsonFields(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		name := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func keys(m map[string]jsonSchema) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestUnstructuredRoundTrip(t *testing.T) {
	in := &IPTablesRules{Spec: Spec{Model: ModelEdgeIP, Rules: []Rule{{Table: "nat", Chain: "C", Jump: "DNAT", Protocol: "tcp",
		SourceIP: "10.0.0.1", SourcePort: "10350", DestinationIP: "10.0.0.5", DestinationPort: "10003", Node: "edge-a"}}}}
	in.Name = "x"
	u, err := ToUnstructured(in)
	require.NoError(t, err)
	assert.Equal(t, "onboard.edgetel.io/v1alpha1", u.GetAPIVersion())
	out, err := FromUnstructured(u)
	require.NoError(t, err)
	assert.Equal(t, in, out)
}
