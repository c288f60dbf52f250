package edgenodeprocessor

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/configtest"
)

func loadConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	return configtest.Load[*Config](t, NewFactory(), name)
}

func TestLoadConfig(t *testing.T) {
	def, err := loadConfig(t, "")
	require.NoError(t, err)
	assert.Equal(t, createDefaultConfig(), def)

	custom, err := loadConfig(t, "custom")
	require.NoError(t, err)
	want := createDefaultConfig().(*Config)
	want.AuthType = kube.AuthKubeConfig
	want.KubeConfig = "/etc/edgetel/kubeconfig"
	want.Context = "edge-cluster"
	want.NodeSelector = "node-role.kubernetes.io/edge,topology.kubernetes.io/region in (eu,us)"
	want.ResyncPeriod = 5 * time.Minute
	want.WaitForMetadata = true
	want.WaitForMetadataTimeout = 30 * time.Second
	want.NodeFrom = []NodeSource{{From: FromResourceAttribute, Name: "host.name"}, {From: FromConnection}}
	want.Attributes = AttributesConfig{
		NodeName:    "k8s.node.name",
		NodeGroup:   "kubeedge.nodegroup",
		Labels:      []kube.LabelMapping{{Key: "topology.kubernetes.io/region", Attribute: "region"}},
		Annotations: []kube.LabelMapping{{Key: "example.com/owner", Attribute: "owner"}},
	}
	want.Guard = GuardConfig{Enabled: true, MaxSeriesPerNode: 5000, MaxSeriesPerMetric: 500, Window: time.Hour, LogInterval: 30 * time.Second}
	assert.Equal(t, want, custom)

	noGuard, err := loadConfig(t, "noguard")
	require.NoError(t, err)
	assert.False(t, noGuard.Guard.Enabled)
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for name, key := range map[string]string{
		"bad_auth":                        "auth_type",
		"bad_selector":                    "node_selector",
		"no_sources":                      "node_from",
		"bad_source":                      "node_from[0].from",
		"source_without_name":             "node_from[0].name",
		"connection_with_name":            "node_from[0].name",
		"empty_label_key":                 "attributes.labels[0].key",
		"duplicate_attribute":             "attributes.annotations[0].attribute",
		"negative_limit":                  "cardinality_guard.max_series_per_node",
		"no_limits":                       "cardinality_guard",
		"zero_window":                     "cardinality_guard.window",
		"zero_log_interval":               "cardinality_guard.log_interval",
		"kubeconfig_with_service_account": "kubeconfig",
		"zero_wait_timeout":               "wait_for_metadata_timeout",
		"negative_resync":                 "resync_period",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(t, name)
			require.Error(t, err)
			assert.Contains(t, err.Error(), key+":")
		})
	}
}

func TestConfigStruct(t *testing.T) {
	require.NoError(t, componenttest.CheckConfigStruct(createDefaultConfig()))
}
