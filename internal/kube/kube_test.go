package kube

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func edgeNode(name, ip string, ready corev1.ConditionStatus) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{LabelEdgeRole: "", LabelRegion: "eu"}},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeHostName, Address: name},
				{Type: corev1.NodeExternalIP, Address: "192.0.2.1"},
				{Type: corev1.NodeInternalIP, Address: ip},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10351}},
			Conditions:      []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}},
		},
	}
}

func watches(c *fake.Clientset) int {
	n := 0
	for _, a := range c.Actions() {
		if a.GetVerb() == "watch" && a.GetResource().Resource == "nodes" {
			n++
		}
	}
	return n
}

func fakeRegistry(c kubernetes.Interface) *Registry {
	return NewRegistry(func(APIConfig) (kubernetes.Interface, error) { return c, nil })
}

func TestFromKube(t *testing.T) {
	n := FromKube(edgeNode("edge-1", "10.0.0.1", corev1.ConditionTrue))
	assert.Equal(t, "10.0.0.1", n.IP)
	assert.Equal(t, []string{"10.0.0.1", "192.0.2.1"}, n.Addresses, "InternalIP first, hostnames left out")
	assert.Equal(t, 10351, n.KubeletPort)
	assert.True(t, n.IsReady())
	assert.Equal(t, "10.0.0.1:10351", n.Address())
	assert.Equal(t, ReadyFalse, FromKube(edgeNode("e", "10.0.0.2", corev1.ConditionFalse)).Ready)
	bare := FromKube(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bare"}})
	assert.Equal(t, ReadyUnknown, bare.Ready)
	assert.False(t, bare.IsReady())
	assert.Empty(t, bare.IP)
	assert.Equal(t, DefaultKubeletPort, bare.Port(), "an unreported kubelet port is edged's")
	assert.Equal(t, 10351, n.Port())
}

func TestAPIConfigValidate(t *testing.T) {
	assert.NoError(t, DefaultAPIConfig().Validate())
	assert.NoError(t, APIConfig{AuthType: AuthKubeConfig, KubeConfig: "/k", Context: "c"}.Validate())
	assert.ErrorContains(t, APIConfig{AuthType: "token"}.Validate(), "auth_type")
	assert.ErrorContains(t, APIConfig{AuthType: AuthServiceAccount, KubeConfig: "/k"}.Validate(), "kubeconfig")
	assert.ErrorContains(t, APIConfig{AuthType: AuthServiceAccount, Context: "c"}.Validate(), "context")
}

func TestRestConfigFromKubeconfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(path, []byte(`apiVersion: v1
kind: Config
clusters:
- {name: a, cluster: {server: "https://a.example:6443"}}
- {name: b, cluster: {server: "https://b.example:6443"}}
contexts:
- {name: a, context: {cluster: a, user: u}}
- {name: b, context: {cluster: b, user: u}}
users:
- {name: u, user: {token: t}}
current-context: a
`), 0o600))
	rc, err := RestConfig(APIConfig{AuthType: AuthKubeConfig, KubeConfig: path})
	require.NoError(t, err)
	assert.Equal(t, "https://a.example:6443", rc.Host)
	rc, err = RestConfig(APIConfig{AuthType: AuthKubeConfig, KubeConfig: path, Context: "b"})
	require.NoError(t, err)
	assert.Equal(t, "https://b.example:6443", rc.Host)
	_, err = RestConfig(APIConfig{AuthType: AuthKubeConfig, KubeConfig: filepath.Join(t.TempDir(), "none")})
	assert.Error(t, err)
	_, err = RestConfig(APIConfig{AuthType: "token"})
	assert.Error(t, err)
}

func TestMappings(t *testing.T) {
	assert.NoError(t, ValidateMappings("attributes.labels", DefaultLabelMappings()))
	err := ValidateMappings("attributes.labels", []LabelMapping{{Key: "a", Attribute: "x"}, {Key: "b", Attribute: "x"}, {Attribute: "y"}, {Key: "c"}})
	assert.ErrorContains(t, err, `attributes.labels[1].attribute: "x" is already set by attributes.labels[0]`)
	assert.ErrorContains(t, err, "attributes.labels[2].key: must not be empty")
	assert.ErrorContains(t, err, "attributes.labels[3].attribute: must not be empty")

	merged := MergeLabelMap(DefaultLabelMappings(), map[string]string{"site": "", "region": "example.com/region", "rack": "example.com/rack"})
	assert.Equal(t, []LabelMapping{{Key: "example.com/region", Attribute: "region"}, {Key: "example.com/rack", Attribute: "rack"}}, merged)
	assert.Equal(t, DefaultLabelMappings(), MergeLabelMap(DefaultLabelMappings(), nil))
}

// Two holders of the same watch share one informer; it stops with the last release and a later
// acquire starts a fresh one.
func TestRegistrySharesAndReleases(t *testing.T) {
	client := fake.NewClientset(edgeNode("edge-2", "10.0.0.2", corev1.ConditionTrue), edgeNode("edge-1", "10.0.0.1", corev1.ConditionTrue),
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cloud-1"}})
	reg := fakeRegistry(client)
	w := NodeWatch{API: DefaultAPIConfig(), Selector: DefaultEdgeSelector}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	a, err := reg.AcquireNodes(w)
	require.NoError(t, err)
	b, err := reg.AcquireNodes(w)
	require.NoError(t, err)
	require.True(t, a.WaitForSync(ctx))
	require.True(t, b.WaitForSync(ctx))
	assert.Equal(t, 1, watches(client))
	names := func(nodes []Node) []string {
		var out []string
		for _, n := range nodes {
			out = append(out, n.Name)
		}
		return out
	}
	assert.Equal(t, []string{"edge-1", "edge-2"}, names(b.List()), "sorted, cloud node left out by the selector")

	// A different selector is a different watch.
	all, err := reg.AcquireNodes(NodeWatch{API: DefaultAPIConfig()})
	require.NoError(t, err)
	require.True(t, all.WaitForSync(ctx))
	assert.Len(t, all.List(), 3)
	all.Release()
	assert.Equal(t, 2, watches(client))

	a.Release()
	a.Release() // a second release of the same holder changes nothing
	upserts := make(chan Node, 10)
	sub, err := b.Handle(NodeHandler{Upsert: func(n Node) { upserts <- n }})
	require.NoError(t, err)
	require.True(t, sub.WaitForSync(ctx))
	assert.Len(t, upserts, 2, "the known nodes are handed over before WaitForSync returns")
	_, err = client.CoreV1().Nodes().Create(ctx, edgeNode("edge-3", "10.0.0.3", corev1.ConditionFalse), metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(b.List()) == 3 }, 5*time.Second, 10*time.Millisecond, "b still holds a running informer")
	seen := map[string]bool{}
	for len(seen) < 3 {
		seen[(<-upserts).Name] = true
	}
	sub.Remove()
	b.Release()
	assert.Empty(t, reg.running)

	c, err := reg.AcquireNodes(w)
	require.NoError(t, err)
	require.True(t, c.WaitForSync(ctx))
	assert.Equal(t, 3, watches(client), "a fresh informer after the last release")
	c.Release()
}

func TestAcquireErrors(t *testing.T) {
	reg := fakeRegistry(fake.NewClientset())
	_, err := reg.AcquireNodes(NodeWatch{Selector: "a in ("})
	assert.ErrorContains(t, err, "node selector")
	failing := NewRegistry(func(APIConfig) (kubernetes.Interface, error) { return nil, os.ErrNotExist })
	_, err = failing.AcquireNodes(NodeWatch{})
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Empty(t, failing.running)
}

func TestObjectRoundTrip(t *testing.T) {
	n := Node{Name: "edge-1", IP: "10.0.0.1", Addresses: []string{"10.0.0.1", "192.0.2.1"}, KubeletPort: 10351,
		Ready: ReadyFalse, Labels: map[string]string{LabelEdgeRole: ""}, Annotations: map[string]string{"a": "b"}}
	assert.Equal(t, n, FromKube(n.Object()))
	short := Node{Name: "edge-2", IP: "10.0.0.2", Ready: ReadyUnknown}
	got := FromKube(short.Object())
	assert.Equal(t, []string{"10.0.0.2"}, got.Addresses)
	assert.Equal(t, ReadyUnknown, got.Ready)
}

func TestNodeValidate(t *testing.T) {
	assert.NoError(t, Node{Name: "a", IP: "10.0.0.1", KubeletPort: 10350}.Validate())
	assert.ErrorContains(t, Node{IP: "10.0.0.1"}.Validate(), "without a name")
	assert.ErrorContains(t, Node{Name: "a", IP: "nope"}.Validate(), "not an IP address")
	assert.ErrorContains(t, Node{Name: "a", IP: "10.0.0.1", KubeletPort: 70000}.Validate(), "out of range")
}
