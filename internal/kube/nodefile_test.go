package kube

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// What a writer of node files (edgesim) marshals, a strict reader (the receiver's file
// discovery) reads back unchanged; a pod's node is where it sits in the file, not a field.
func TestNodeFileRoundTrip(t *testing.T) {
	in := NodeFile{Nodes: []FileNode{{
		Name: "edge-1", IP: "10.0.0.1", Port: 10351, Labels: map[string]string{LabelSite: "s1"},
		Direct: "127.0.0.1:9000", Ready: ReadyFalse,
		Pods: []Pod{{Namespace: "apps", Name: "web-1", Node: "edge-1", Labels: map[string]string{"app": "web"}, Containers: []string{"nginx"}}},
	}}}
	raw, err := json.Marshal(in)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), `"node"`)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var out NodeFile
	require.NoError(t, dec.Decode(&out))
	in.Nodes[0].Pods[0].Node = ""
	assert.Equal(t, in, out)

	n := out.Nodes[0].Node()
	assert.Equal(t, Node{Name: "edge-1", IP: "10.0.0.1", Addresses: []string{"10.0.0.1"}, KubeletPort: 10351, Ready: ReadyFalse,
		Labels: map[string]string{LabelSite: "s1"}}, n)
	assert.Equal(t, ReadyTrue, FileNode{Name: "a", IP: "10.0.0.2"}.Node().Ready, "a node file's nodes are ready unless it says otherwise")
}

func TestFileNodeValidate(t *testing.T) {
	assert.NoError(t, FileNode{Name: "a", IP: "10.0.0.1"}.Validate())
	assert.ErrorContains(t, FileNode{Name: "a", IP: "10.0.0.1", Ready: "yes"}.Validate(), `ready: must be "true", "false" or "unknown", got "yes"`)
	assert.ErrorContains(t, FileNode{Name: "a", IP: "ten"}.Validate(), "not an IP address")
	assert.ErrorContains(t, FileNode{IP: "10.0.0.1"}.Validate(), "without a name")
}

func TestFileNodeKubeNode(t *testing.T) {
	kn := FileNode{Name: "edge-1", IP: "10.0.0.9", Labels: map[string]string{LabelSite: "s1"}}.KubeNode(corev1.ConditionFalse)
	n := FromKube(kn)
	assert.Equal(t, DefaultKubeletPort, n.KubeletPort, "edged's port when the file gives none")
	assert.Equal(t, map[string]string{LabelEdgeRole: "", LabelAgentRole: "", LabelSite: "s1"}, n.Labels)
	assert.Equal(t, ReadyFalse, n.Ready)
	assert.Equal(t, "10.0.0.9", n.IP)
}
