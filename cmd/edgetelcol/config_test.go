package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/otelcol"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/edgetel/edgetel/internal/testing/charttest"
)

// dryRun resolves and validates a collector configuration as `edgetelcol validate` does.
func dryRun(t *testing.T, uris ...string) error {
	t.Helper()
	col, err := otelcol.NewCollector(otelcol.CollectorSettings{
		BuildInfo: component.NewDefaultBuildInfo(),
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
			URIs:              uris,
			ProviderFactories: []confmap.ProviderFactory{envprovider.NewFactory(), fileprovider.NewFactory(), yamlprovider.NewFactory()},
		}},
	})
	require.NoError(t, err)
	return col.DryRun(context.Background())
}

// Every collector configuration shipped under examples/ must be one edgetelcol accepts.
func TestExampleConfigsValidate(t *testing.T) {
	root := charttest.RepoRoot(t)
	t.Setenv("EDGETEL_DEMO_DATA", t.TempDir())
	// The variables the examples document: their values come from the deployment.
	for k, v := range map[string]string{
		"EDGETEL_REMOTE_WRITE_URL": "http://127.0.0.1:9/api/v1/write", "REMOTE_WRITE_URL": "http://127.0.0.1:9/api/v1/write",
		"NODE_NAME": "edge-1", "NODE_IP": "10.0.0.1", "BUFFER_DIR": t.TempDir(), "TOKEN_FILE": filepath.Join(t.TempDir(), "token"),
	} {
		t.Setenv(k, v)
	}
	configs := collectorConfigs(t, filepath.Join(root, "examples"))
	require.NotEmpty(t, configs)
	for _, cfg := range configs {
		rel, _ := filepath.Rel(root, cfg)
		t.Run(rel, func(t *testing.T) {
			uris := []string{"file:" + cfg}
			if filepath.Base(cfg) == "remote-write.yaml" {
				uris = []string{"file:" + filepath.Join(filepath.Dir(cfg), "config.yaml"), "file:" + cfg}
			}
			require.NoError(t, dryRun(t, uris...))
		})
	}
}

func TestInvalidConfigIsRejected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(path, []byte("receivers: {otlp: {protocols: {grpc: {endpoint: 127.0.0.1:0}}}}\nexporters: {debug: {verbosity: loud}}\nservice: {pipelines: {metrics: {receivers: [otlp], exporters: [debug]}}}\n"), 0o600))
	require.Error(t, dryRun(t, "file:"+path))
}

// collectorConfigs lists the YAML files under dir that are collector configurations (they have a
// service section); chart values files and dashboards are not.
func collectorConfigs(t *testing.T, dir string) []string {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		var doc map[string]any
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if yaml.Unmarshal(data, &doc) == nil && doc["service"] != nil {
			out = append(out, path)
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

// The collector configurations the chart renders (collector StatefulSet, edge agent) must be valid
// for this distribution, with every example's and ci/ values.
func TestChartCollectorConfigsValidate(t *testing.T) {
	root := charttest.RepoRoot(t)
	for _, values := range append(append([]string{""}, charttest.ExampleValues(t)...), charttest.CIValues(t)...) {
		name := values
		if name == "" {
			name = "default values"
		}
		t.Run(name, func(t *testing.T) {
			var args []string
			if values != "" {
				args = []string{"-f", filepath.Join(root, values)}
			}
			out, err := charttest.Render(t, args...)
			require.NoError(t, err)
			objs, err := charttest.DecodeAll(out)
			require.NoError(t, err)
			for _, o := range objs {
				cm, ok := o.Obj.(*corev1.ConfigMap)
				if !ok || cm.Data["config.yaml"] == "" {
					continue
				}
				validateRendered(t, cm.Name, cm.Data["config.yaml"])
			}
		})
	}
}

func validateRendered(t *testing.T, name, config string) {
	t.Helper()
	dir := t.TempDir()
	bucket := filepath.Join(dir, "objstore.yml")
	require.NoError(t, os.WriteFile(bucket, []byte("type: FILESYSTEM\nconfig: {directory: "+dir+"}\n"), 0o600))
	config = strings.ReplaceAll(config, "/etc/edgetel/bucket/objstore.yml", bucket)
	path := filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(config), 0o600))
	for k, v := range map[string]string{"SHARD_INDEX": "0", "POD_IP": "127.0.0.1", "NODE_NAME": "edge-1", "NODE_IP": "10.0.0.1"} {
		t.Setenv(k, v)
	}
	require.NoError(t, dryRun(t, "file:"+path), "ConfigMap %s:\n%s", name, config)
}
