package fleet

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/edgetel/edgetel/internal/kube"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.json")
	want := File{Nodes: []Node{
		{Name: "edge-0001", IP: "10.20.0.1", Port: 10350, Labels: map[string]string{kube.LabelRegion: "eu"}},
		{Name: "edge-0002", IP: "10.20.0.2", Direct: "127.0.0.2:10350"},
	}}
	require.NoError(t, Save(path, want))
	got, err := Load(path)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, "10.20.0.2:10350", got.Nodes[1].Address())
}

func TestLoadRejectsBadFleet(t *testing.T) {
	for name, body := range map[string]string{
		"not json":  "{",
		"bad ip":    `{"nodes":[{"name":"a","ip":"nope"}]}`,
		"no name":   `{"nodes":[{"ip":"10.0.0.1"}]}`,
		"duplicate": `{"nodes":[{"name":"a","ip":"10.0.0.1"},{"name":"a","ip":"10.0.0.2"}]}`,
		"bad port":  `{"nodes":[{"name":"a","ip":"10.0.0.1","port":70000}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "fleet.json")
			require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
			_, err := Load(path)
			assert.Error(t, err)
		})
	}
}

func TestKubeNode(t *testing.T) {
	kn := Node{Name: "edge-1", IP: "10.0.0.9", Labels: map[string]string{kube.LabelSite: "s1"}}.KubeNode(corev1.ConditionTrue)
	assert.Equal(t, "", kn.Labels[kube.LabelEdgeRole])
	assert.Equal(t, "s1", kn.Labels[kube.LabelSite])
	assert.Equal(t, int32(kube.DefaultKubeletPort), kn.Status.DaemonEndpoints.KubeletEndpoint.Port)
	assert.Equal(t, "10.0.0.9", kn.Status.Addresses[0].Address)
}
