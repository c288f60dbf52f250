package charttest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	sigsyaml "sigs.k8s.io/yaml"
)

// Object is one rendered manifest, decoded.
type Object struct {
	GVK  schema.GroupVersionKind
	Name string
	Obj  runtime.Object
	// External is the decoded object of a kind client-go does not know (see externalKinds).
	External any
}

// externalKinds are rendered kinds that client-go's scheme does not know; each is decoded
// strictly into the struct that holds the fields the chart may set.
var externalKinds = map[schema.GroupVersionKind]func() any{
	{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}: func() any { return &ServiceMonitor{} },
	{Group: "monitoring.coreos.com", Version: "v1", Kind: "PrometheusRule"}: func() any { return &PrometheusRule{} },
	{Group: "monitoring.coreos.com", Version: "v1", Kind: "PodMonitor"}:     func() any { return &PodMonitor{} },
}

// PodMonitor holds the prometheus-operator fields the chart uses; anything else is an error.
type PodMonitor struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		PodMetricsEndpoints []struct {
			Port              string           `json:"port"`
			Path              string           `json:"path"`
			Interval          string           `json:"interval"`
			ScrapeTimeout     string           `json:"scrapeTimeout"`
			Relabelings       []map[string]any `json:"relabelings"`
			MetricRelabelings []map[string]any `json:"metricRelabelings"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

// ServiceMonitor holds the prometheus-operator fields the chart uses; anything else is an error.
type ServiceMonitor struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       struct {
		JobLabel string `json:"jobLabel"`
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port              string           `json:"port"`
			Path              string           `json:"path"`
			Interval          string           `json:"interval"`
			ScrapeTimeout     string           `json:"scrapeTimeout"`
			Relabelings       []map[string]any `json:"relabelings"`
			MetricRelabelings []map[string]any `json:"metricRelabelings"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// PrometheusRule holds a prometheus-operator PrometheusRule: rule groups as in a Prometheus rule file.
type PrometheusRule struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   map[string]any `json:"metadata"`
	Spec       struct {
		Groups []map[string]any `json:"groups"`
	} `json:"spec"`
}

func newScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := scheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// DecodeAll splits a multi-document YAML stream and decodes every document strictly: an unknown or
// duplicated field, an unknown kind or a document without kind or name is an error.
func DecodeAll(manifests []byte) ([]Object, error) {
	s, err := newScheme()
	if err != nil {
		return nil, err
	}
	strict := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, s, s, kjson.SerializerOptions{Yaml: true, Strict: true})
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(manifests)))
	var out []Object
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("splitting manifests: %w", err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, err := decodeOne(strict, doc)
		if err != nil {
			return nil, err
		}
		out = append(out, obj)
	}
}

func decodeOne(strict runtime.Decoder, doc []byte) (Object, error) {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := sigsyaml.Unmarshal(doc, &meta); err != nil {
		return Object{}, fmt.Errorf("reading kind: %w\n%s", err, doc)
	}
	if meta.Kind == "" || meta.Metadata.Name == "" {
		return Object{}, fmt.Errorf("document without kind or metadata.name:\n%s", doc)
	}
	gvk := schema.FromAPIVersionAndKind(meta.APIVersion, meta.Kind)
	id := fmt.Sprintf("%s %s", meta.Kind, meta.Metadata.Name)
	if newExternal, ok := externalKinds[gvk]; ok {
		v := newExternal()
		if err := sigsyaml.UnmarshalStrict(doc, v); err != nil {
			return Object{}, fmt.Errorf("%s: %w", id, err)
		}
		return Object{GVK: gvk, Name: meta.Metadata.Name, External: v}, nil
	}
	obj, _, err := strict.Decode(doc, nil, nil)
	if err != nil {
		return Object{}, fmt.Errorf("%s: %w", id, err)
	}
	return Object{GVK: gvk, Name: meta.Metadata.Name, Obj: obj}, nil
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}
