package kubeedgereceiver

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/configtest"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

func loadConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	return configtest.Load[*Config](t, NewFactory(), name)
}

func TestLoadConfig(t *testing.T) {
	cfg, err := loadConfig(t, "")
	require.NoError(t, err)
	assert.Equal(t, createDefaultConfig(), cfg)

	cfg, err = loadConfig(t, "cloudcore")
	require.NoError(t, err)
	assert.Equal(t, 60*time.Second, cfg.CollectionInterval)
	assert.Equal(t, "edge", cfg.Job)
	assert.Equal(t, ShardConfig{Index: 2, Count: 3, ReplicasPerShard: 1}, cfg.Shard)
	assert.Equal(t, []string{"/metrics/cadvisor", "/metrics/resource"}, cfg.Endpoints.paths())
	assert.Equal(t, kube.AuthKubeConfig, cfg.Discovery.Kubernetes.AuthType)
	assert.Equal(t, "/etc/edgetel/kubeconfig", cfg.Discovery.Kubernetes.KubeConfig)
	assert.Equal(t, []string{"10.0.0.10:10003", "10.0.0.11:10003"}, cfg.Transport.Cloudcore.Endpoints)
	assert.Equal(t, "/etc/kubeedge/ca/streamCA.crt", cfg.Transport.Cloudcore.TLS.CAFile)
	// The deprecated node_labels map merges into attributes.labels: site was removed with an
	// empty value.
	assert.Equal(t, []kube.LabelMapping{{Key: kube.LabelNodeGroup, Attribute: "group"}, {Key: kube.LabelRegion, Attribute: "region"}},
		sortedMappings(cfg.labelMappings()))
	rc, err := cfg.relabelConfigs()
	require.NoError(t, err)
	require.Len(t, rc, 1)
	assert.Equal(t, "drop", string(rc[0].Action))

	cfg, err = loadConfig(t, "labels")
	require.NoError(t, err)
	assert.Nil(t, cfg.NodeLabels)
	assert.Equal(t, []kube.LabelMapping{{Key: kube.LabelRegion, Attribute: "region"}, {Key: kube.LabelNodeGroup, Attribute: "group"}},
		cfg.labelMappings(), "a list replaces the default")
	assert.Equal(t, "scope", cfg.Attributes.TargetLabelsOn, "deprecated, still read")

	for _, name := range []string{"apiserver", "direct", "file"} {
		_, err := loadConfig(t, name)
		assert.NoError(t, err, name)
	}

	// Two collectors per shard: pod 5 of 6 is the second replica of shard 2.
	cfg, err = loadConfig(t, "replicas")
	require.NoError(t, err)
	assert.Equal(t, 2, cfg.Shard.shard())

	// The count follows the StatefulSet: an index beyond shard.count is fine.
	cfg, err = loadConfig(t, "statefulset")
	require.NoError(t, err)
	assert.Equal(t, ShardStatefulSetConfig{Name: "edgetel-collector", Namespace: "edgetel"}, cfg.Shard.StatefulSet)
	assert.Equal(t, 2, cfg.Shard.shard())
	assert.Equal(t, 2*cfg.CollectionInterval, cfg.handoverDelay())
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for name, key := range map[string]string{
		"bad_shard":                       "shard.index",
		"bad_replicas":                    "shard.index: must be in [0, 6)",
		"bad_relabel":                     "metric_relabel_configs[0]",
		"bad_transport":                   "transport.mode",
		"no_endpoints":                    "endpoints",
		"reserved_label":                  `node_labels (deprecated) merged into attributes.labels[2].attribute: "node" is set by the receiver`,
		"reserved_attribute":              `attributes.labels[0].attribute: "instance" is set by the receiver`,
		"duplicate_attribute":             `attributes.labels[1].attribute: "x" is already set`,
		"kubeconfig_with_service_account": "discovery.kubernetes.kubeconfig: only allowed with auth_type kubeConfig",
		"bad_timeout":                     "scrape_timeout",
		"bad_statefulset":                 `shard.statefulset.name: "Edgetel_Collector" is not a valid name`,
		"bad_handover_delay":              "shard.statefulset.handover_delay: must not be negative",
	} {
		_, err := loadConfig(t, name)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), key, name)
	}
}

func TestConfigStruct(t *testing.T) {
	require.NoError(t, componenttest.CheckConfigStruct(createDefaultConfig()))
}

func TestFactory(t *testing.T) {
	f := NewFactory()
	assert.Equal(t, metadata.Type, f.Type())
	assert.Equal(t, metadata.MetricsStability, f.MetricsStability())
}

func TestShutdownWithoutStart(t *testing.T) {
	f := NewFactory()
	r, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), f.CreateDefaultConfig(), consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, r.Shutdown(context.Background()))
}

func TestStartFailsClearlyOutsideACluster(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.Transport.Mode = TransportDirect
	r, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
	require.NoError(t, err)
	err = r.Start(context.Background(), componenttest.NewNopHost())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "discovery.kubernetes")
	require.NoError(t, r.Shutdown(context.Background()))
}

func sortedMappings(list []kube.LabelMapping) []kube.LabelMapping {
	out := slices.Clone(list)
	slices.SortFunc(out, func(a, b kube.LabelMapping) int { return strings.Compare(a.Attribute, b.Attribute) })
	return out
}

// The deprecated node_labels still works for one release: its mappings label the series, and
// the receiver warns once, naming the replacement.
func TestDeprecatedNodeLabelsWarnsAndWorks(t *testing.T) {
	cfg, err := loadConfig(t, "cloudcore")
	require.NoError(t, err)
	core, logs := observer.New(zapcore.WarnLevel)
	set := receivertest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	r, err := newReceiver(set, cfg, consumertest.NewNop(), testRegistry)
	require.NoError(t, err)
	warnings := logs.FilterMessageSnippet("node_labels is deprecated").All()
	require.Len(t, warnings, 1)
	assert.Contains(t, warnings[0].Message, "attributes.labels")

	n := discovery.Target{Node: kube.Node{Name: "edge-1", Labels: map[string]string{
		kube.LabelRegion: "eu", kube.LabelSite: "eu-1", kube.LabelNodeGroup: "g1",
	}}}
	assert.Equal(t, `{group="g1", instance="edge-1", job="edge", node="edge-1", region="eu"}`, r.targetLabels(n).String())

	assert.Empty(t, logs.FilterMessageSnippet("target_labels_on").All())

	quiet, quietLogs := observer.New(zapcore.WarnLevel)
	set.Logger = zap.New(quiet)
	_, err = newReceiver(set, createDefaultConfig().(*Config), consumertest.NewNop(), testRegistry)
	require.NoError(t, err)
	assert.Zero(t, quietLogs.Len(), "no warning without node_labels")
}

// attributes.target_labels_on is read for one release whatever its value, ignored, with a
// warning at start.
func TestDeprecatedTargetLabelsOnWarns(t *testing.T) {
	for name, value := range map[string]string{"labels": "scope", "old_target_labels_on": "data_points"} {
		cfg, err := loadConfig(t, name)
		require.NoError(t, err, name)
		core, logs := observer.New(zapcore.WarnLevel)
		set := receivertest.NewNopSettings(metadata.Type)
		set.Logger = zap.New(core)
		_, err = newReceiver(set, cfg, consumertest.NewNop(), testRegistry)
		require.NoError(t, err)
		warnings := logs.FilterMessageSnippet("target_labels_on is deprecated").All()
		require.Len(t, warnings, 1, name)
		assert.Equal(t, value, warnings[0].ContextMap()["attributes.target_labels_on"])
	}
}
