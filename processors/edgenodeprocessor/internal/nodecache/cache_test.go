package nodecache

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/edgetel/edgetel/internal/fleet"
)

var opts = Options{
	NodeNameAttribute:  "k8s.node.name",
	NodeGroupAttribute: "node_group",
	NodeGroupLabel:     fleet.LabelNodeGroup,
	ReadyAttribute:     "node_ready",
	Labels:             []Mapping{{Key: fleet.LabelRegion, Attribute: "region"}},
	Annotations:        []Mapping{{Key: "example.com/owner", Attribute: "owner"}},
}

func edgeNode(name, ip, region string) *corev1.Node {
	return fleet.Node{Name: name, IP: ip, Labels: map[string]string{
		fleet.LabelRegion: region, fleet.LabelNodeGroup: "group-" + region,
	}}.KubeNode(corev1.ConditionTrue)
}

func TestBuildAttributes(t *testing.T) {
	c := New(opts)
	kn := edgeNode("edge-1", "10.0.0.1", "eu")
	kn.Annotations = map[string]string{"example.com/owner": "team-a"}
	c.Upsert(kn)
	assert.Equal(t, map[string]string{
		"k8s.node.name": "edge-1", "node_group": "group-eu", "node_ready": "true",
		"region": "eu", "owner": "team-a",
	}, c.ByName("edge-1").Attributes())

	bare := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bare"}}
	c.Upsert(bare)
	assert.Equal(t, map[string]string{"k8s.node.name": "bare", "node_ready": "unknown"},
		c.ByName("bare").Attributes(), "absent labels are left out, not set empty")
}

func TestApplyOverwrites(t *testing.T) {
	c := New(opts)
	c.Upsert(edgeNode("edge-1", "10.0.0.1", "eu"))
	m := pcommon.NewMap()
	m.PutStr("region", "spoofed")
	m.PutStr("service.name", "app")
	c.ByName("edge-1").Apply(m)
	assert.Equal(t, "eu", m.AsRaw()["region"])
	assert.Equal(t, "app", m.AsRaw()["service.name"])
}

func TestByIP(t *testing.T) {
	c := New(opts)
	c.Upsert(edgeNode("edge-1", "10.0.0.1", "eu"))
	c.Upsert(edgeNode("edge-2", "10.0.0.2", "eu"))
	require.NotNil(t, c.ByIP("10.0.0.1"))
	assert.Equal(t, "edge-1", c.ByIP("10.0.0.1").Name)

	// Two sites reusing one private address: ambiguous, so neither.
	c.Upsert(edgeNode("edge-3", "10.0.0.1", "us"))
	assert.Nil(t, c.ByIP("10.0.0.1"))
	c.Delete("edge-3")
	assert.Equal(t, "edge-1", c.ByIP("10.0.0.1").Name)

	// A node that changes address leaves its old one.
	c.Upsert(edgeNode("edge-2", "10.0.0.9", "eu"))
	assert.Nil(t, c.ByIP("10.0.0.2"))
	assert.Equal(t, "edge-2", c.ByIP("10.0.0.9").Name)
	assert.Equal(t, 2, c.Len())
}

func TestWatchFollowsTheAPI(t *testing.T) {
	client := fake.NewClientset(edgeNode("edge-1", "10.0.0.1", "eu"),
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cloud-1"}})
	c := New(opts)
	w, err := Watch(client, fleet.LabelEdgeRole, 0, c)
	require.NoError(t, err)
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.True(t, w.WaitForSync(ctx))
	require.NotNil(t, c.ByName("edge-1"))
	assert.Nil(t, c.ByName("cloud-1"), "the selector keeps cloud nodes out")

	kn := edgeNode("edge-1", "10.0.0.1", "apac")
	kn.Status.Conditions[0].Status = corev1.ConditionUnknown
	_, err = client.CoreV1().Nodes().Update(ctx, kn, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		a := c.ByName("edge-1").Attributes()
		return a["region"] == "apac" && a["node_ready"] == "unknown"
	}, 5*time.Second, 10*time.Millisecond)

	require.NoError(t, client.CoreV1().Nodes().Delete(ctx, "edge-1", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool { return c.ByName("edge-1") == nil }, 5*time.Second, 10*time.Millisecond)
}
