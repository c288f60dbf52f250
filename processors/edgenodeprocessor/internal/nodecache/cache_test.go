package nodecache

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/edgetel/edgetel/internal/kube"
)

var opts = Options{
	NodeNameAttribute:  "k8s.node.name",
	NodeGroupAttribute: "node_group",
	NodeGroupLabel:     kube.LabelNodeGroup,
	ReadyAttribute:     "node_ready",
	Labels:             []kube.LabelMapping{{Key: kube.LabelRegion, Attribute: "region"}},
	Annotations:        []kube.LabelMapping{{Key: "example.com/owner", Attribute: "owner"}},
}

func edgeNode(name, ip, region string) kube.Node {
	return kube.Node{Name: name, IP: ip, Addresses: []string{ip}, Ready: kube.ReadyTrue, Labels: map[string]string{
		kube.LabelRegion: region, kube.LabelNodeGroup: "group-" + region,
	}}
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

	c.Upsert(kube.FromKube(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bare"}}))
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
