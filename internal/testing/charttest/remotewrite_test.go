package charttest

import (
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// Remote-write credentials come from Secrets only: the rendered collector and edge-agent
// configs authenticate through an auth extension of the distribution whose files are mounts of
// the named Secrets; no ConfigMap carries a credential, and the CA is a Secret too.
func TestRemoteWriteCredentialsOnlyInSecrets(t *testing.T) {
	objs := rendered(t, ciValues(t, "remote-write-values.yaml")...)
	for _, tc := range []struct {
		configMap, kind, workload, container string
		exporter, authenticator, secret      string
		files                                []string
	}{
		{"edgetel-collector", "StatefulSet", "edgetel-collector", "collector", "edgeremotewrite",
			"bearertokenauth/remotewrite", "thanos-receive-token", []string{"filename"}},
		{"edgetel-collector", "StatefulSet", "edgetel-collector", "collector", "edgeremotewrite/vendor",
			"basicauth/remotewrite-vendor", "vendor-remote-write", []string{"client_auth.username_file", "client_auth.password_file"}},
		{"edgetel-edge-agent", "DaemonSet", "edgetel-edge-agent", "agent", "edgeremotewrite",
			"basicauth/remotewrite", "edge-agent-remote-write", []string{"client_auth.username_file", "client_auth.password_file"}},
	} {
		t.Run(tc.workload+"/"+tc.exporter, func(t *testing.T) {
			cfg := collectorConfig(t, objs, tc.configMap)
			exp := dig(t, cfg, "exporters", tc.exporter).(map[string]any)
			assert.Equal(t, tc.authenticator, dig(t, exp, "auth", "authenticator"))
			assert.Contains(t, dig(t, cfg, "service", "extensions"), tc.authenticator)
			assert.Contains(t, dig(t, cfg, "service", "pipelines", "metrics", "exporters"), tc.exporter)
			ext := dig(t, cfg, "extensions", tc.authenticator).(map[string]any)
			if tc.exporter == "edgeremotewrite" {
				assert.Equal(t, "6h", dig(t, exp, "buffer", "store_out_of_order_window"))
				_, hasMaxAge := dig(t, exp, "buffer").(map[string]any)["max_age"]
				assert.False(t, hasMaxAge, "max_age follows the declared window")
			}

			var pod corev1.PodSpec
			if tc.kind == "StatefulSet" {
				pod = find[*appsv1.StatefulSet](t, objs, tc.kind, tc.workload).Spec.Template.Spec
			} else {
				pod = find[*appsv1.DaemonSet](t, objs, tc.kind, tc.workload).Spec.Template.Spec
			}
			c := container(t, pod, tc.container)
			for _, key := range tc.files {
				file := dig(t, ext, strings.Split(key, ".")...).(string)
				src := secretBehind(t, pod, c, file)
				assert.Equal(t, tc.secret, src, "%s: %s must be a file of the Secret", tc.authenticator, key)
			}
			if tc.configMap == "edgetel-collector" && tc.exporter == "edgeremotewrite" {
				ca := dig(t, exp, "tls", "ca_file").(string)
				assert.Equal(t, "thanos-receive-ca", secretBehind(t, pod, c, ca))
			}
		})
	}
	// The second destination has its own buffer and relabelling.
	vendor := dig(t, collectorConfig(t, objs), "exporters", "edgeremotewrite/vendor").(map[string]any)
	assert.Equal(t, "/var/lib/edgetel/buffer-vendor", dig(t, vendor, "buffer", "directory"))
	assert.Equal(t, "/var/lib/edgetel/buffer", dig(t, collectorConfig(t, objs), "exporters", "edgeremotewrite", "buffer", "directory"))
	assert.Equal(t, "2h", dig(t, vendor, "buffer", "max_age"))
	assert.Equal(t, []any{map[string]any{"source_labels": []any{"__name__"}, "regex": "node_.*", "action": "keep"}},
		dig(t, vendor, "write_relabel_configs"))
	// Nothing secret in any ConfigMap: the values name Secrets, never their content.
	for _, o := range objs {
		if cm, ok := o.Obj.(*corev1.ConfigMap); ok {
			for k, v := range cm.Data {
				assert.NotContains(t, strings.ToLower(v), "authorization:", "%s/%s", cm.Name, k)
				assert.NotContains(t, v, "password:", "%s/%s", cm.Name, k)
			}
		}
	}
}

// secretBehind returns the name of the Secret volume mounted in c at the directory of file.
func secretBehind(t *testing.T, pod corev1.PodSpec, c corev1.Container, file string) string {
	t.Helper()
	dir := path.Dir(file)
	for _, m := range c.VolumeMounts {
		if m.MountPath != dir {
			continue
		}
		assert.True(t, m.ReadOnly, "%s mounted read-only", dir)
		for _, v := range pod.Volumes {
			if v.Name == m.Name {
				require.NotNil(t, v.Secret, "volume %s is a Secret", v.Name)
				found := false
				for _, it := range v.Secret.Items {
					found = found || it.Path == path.Base(file)
				}
				assert.True(t, found, "Secret volume %s has no item %s", v.Name, path.Base(file))
				return v.Secret.SecretName
			}
		}
	}
	t.Fatalf("no volume mounted at %s", dir)
	return ""
}

// A credential put into headers would land in a ConfigMap: the chart refuses it, naming auth.
func TestRemoteWriteRefusesCredentialHeaders(t *testing.T) {
	for _, args := range [][]string{
		{"--set", "collector.remoteWrite.enabled=true", "--set", "collector.remoteWrite.endpoint=https://r/api/v1/receive",
			"--set", "collector.remoteWrite.headers.Authorization=Bearer x"},
		{"--set", "edgeAgent.enabled=true", "--set", "edgeAgent.endpoint=https://r/api/v1/receive",
			"--set", "edgeAgent.headers.authorization=Basic eA=="},
	} {
		_, err := Render(t, args...)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "would put a credential into a ConfigMap: use auth.bearerToken or auth.basicAuth")
	}
	_, err := Render(t, "--set", "collector.remoteWrite.enabled=true", "--set", "collector.remoteWrite.endpoint=https://r/api/v1/receive",
		"--set", "collector.remoteWrite.auth.bearerToken.secretName=a", "--set", "collector.remoteWrite.auth.basicAuth.secretName=b")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "set auth.bearerToken or auth.basicAuth, not both")
}
