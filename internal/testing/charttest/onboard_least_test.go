package charttest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// The controller's Role names the one ConfigMap and the one Lease it writes, grants no create on
// either, and the chart creates both under the names the controller is given.
func TestOnboardControllerWritesOnlyItsOwnObjects(t *testing.T) {
	objs := renderObjects(t, onboardingValues(t)...)
	role, ok := findNamed[*rbacv1.Role](objs, "edgetel-onboard-controller")
	require.True(t, ok)
	for _, r := range role.Rules {
		for _, res := range r.Resources {
			switch res {
			case "configmaps":
				assert.Equal(t, []string{"edgetel-onboard-controller-joins"}, r.ResourceNames)
				assert.NotContains(t, r.Verbs, "create")
			case "leases":
				assert.Equal(t, []string{"edgetel-onboard-controller"}, r.ResourceNames)
				assert.NotContains(t, r.Verbs, "create")
			}
		}
	}
	_, ok = findNamed[*corev1.ConfigMap](objs, "edgetel-onboard-controller-joins")
	assert.True(t, ok, "the reservations ConfigMap is rendered")
	_, ok = findNamed[*coordinationv1.Lease](objs, "edgetel-onboard-controller")
	assert.True(t, ok, "the leader Lease is rendered")
	d, ok := findNamed[*appsv1.Deployment](objs, "edgetel-onboard-controller")
	require.True(t, ok)
	args := d.Spec.Template.Spec.Containers[0].Args
	assert.Contains(t, args, "-reservations-configmap=edgetel-onboard-controller-joins")
	assert.Contains(t, args, "-leader-election-id=edgetel-onboard-controller")
}

// The agent gets NET_ADMIN alone with the nft backend (the default), NET_RAW only where
// iptables-legacy may run, and the runtime's default seccomp profile.
func TestAgentCapabilitiesAndSeccomp(t *testing.T) {
	for mode, want := range map[string][]corev1.Capability{
		"":       {"NET_ADMIN"},
		"nft":    {"NET_ADMIN"},
		"legacy": {"NET_ADMIN", "NET_RAW"},
		"auto":   {"NET_ADMIN", "NET_RAW"},
	} {
		args := onboardingValues(t)
		if mode != "" {
			args = append(args, "--set", "onboard.agent.iptablesMode="+mode)
		}
		ds, ok := findNamed[*appsv1.DaemonSet](renderObjects(t, args...), "edgetel-onboard-agent")
		require.True(t, ok)
		pod := ds.Spec.Template.Spec
		c := pod.Containers[0]
		assert.Equal(t, want, c.SecurityContext.Capabilities.Add, mode)
		assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, pod.SecurityContext.SeccompProfile.Type, mode)
		if mode != "" {
			assert.Contains(t, c.Args, "-iptables-mode="+mode)
		}
	}
	_, err := Render(t, append(onboardingValues(t), "--set", "onboard.agent.iptablesMode=both")...)
	require.Error(t, err)
}

// The join command's keadm: an https mirror only, and the operator's pinned checksums passed on.
func TestJoinMirrorAndChecksums(t *testing.T) {
	_, err := Render(t, append(onboardingValues(t), "--set", "onboard.controller.joinAPI.mirror=http://mirror.example.com/")...)
	require.Error(t, err)
	sum := strings.Repeat("ab", 64)
	objs := renderObjects(t, append(onboardingValues(t), "--set", "onboard.controller.joinAPI.keadmSHA512.arm64="+sum,
		"--set", "onboard.controller.joinAPI.keadmSHA512.amd64="+sum)...)
	d, ok := findNamed[*appsv1.Deployment](objs, "edgetel-onboard-controller")
	require.True(t, ok)
	assert.Contains(t, d.Spec.Template.Spec.Containers[0].Args, "-keadm-sha512=amd64="+sum+",arm64="+sum)
	_, err = Render(t, append(onboardingValues(t), "--set", "onboard.controller.joinAPI.keadmSHA512.amd64=abc")...)
	require.Error(t, err)
}
