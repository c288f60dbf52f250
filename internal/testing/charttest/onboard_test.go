package charttest

import (
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func onboardingValues(t *testing.T) []string {
	return []string{"-f", filepath.Join(RepoRoot(t), "examples", "onboarding", "values.yaml")}
}

func renderObjects(t *testing.T, args ...string) []Object {
	t.Helper()
	out, err := Render(t, args...)
	require.NoError(t, err)
	objs, err := DecodeAll(out)
	require.NoError(t, err)
	return objs
}

// findNamed returns the first rendered object of type T (named name, unless name is empty).
func findNamed[T any](objs []Object, name string) (T, bool) {
	for _, o := range objs {
		if v, ok := o.Obj.(T); ok && (name == "" || o.Name == name) {
			return v, true
		}
	}
	var zero T
	return zero, false
}

// A plain telemetry install brings no join API, no root DaemonSet and no CRD.
func TestOnboardingOffByDefault(t *testing.T) {
	for _, o := range renderObjects(t) {
		assert.NotContains(t, o.Name, "onboard", "%s %s rendered with the default values", o.GVK.Kind, o.Name)
		assert.NotEqual(t, "CustomResourceDefinition", o.GVK.Kind, "CRD %s rendered with onboarding off", o.Name)
	}
	// With onboarding on, the CRD comes with it (rendered from files/, not helm's always-installed crds/).
	crds := 0
	for _, o := range renderObjects(t, onboardingValues(t)...) {
		if o.GVK.Kind == "CustomResourceDefinition" && o.Name == "iptablesrules.onboard.edgetel.io" {
			crds++
		}
	}
	assert.Equal(t, 1, crds)
	inCRDs, err := filepath.Glob(filepath.Join(ChartDir(t), "crds", "*"))
	require.NoError(t, err)
	assert.Empty(t, inCRDs, "nothing in crds/: helm would install it with every release")
}

// The join API hands out cloudcore's join token: the chart refuses to render it open to all.
func TestOnboardingRefusesAnOpenJoinAPI(t *testing.T) {
	_, err := Render(t, "--set", "onboard.controller.enabled=true")
	require.ErrorContains(t, err, "onboard.controller.joinAPI.allowedUsers or allowedGroups must name who may join edge nodes")
	_, err = Render(t, append(onboardingValues(t), "--set", "onboard.controller.joinAPI.audiences=null")...)
	require.ErrorContains(t, err, "onboard.controller.joinAPI.audiences")
	// The rules controller alone (join API off) needs neither.
	_, err = Render(t, "--set", "onboard.controller.enabled=true", "--set", "onboard.controller.joinAPI.enabled=false")
	require.NoError(t, err)
}

// No ClusterRole of the chart, onboarding on, grants anything on configmaps, leases or secrets.
func TestNoClusterRoleOnConfigMapsLeasesOrSecrets(t *testing.T) {
	for _, values := range []string{"onboarding", "kubesphere"} {
		t.Run(values, func(t *testing.T) {
			objs := renderObjects(t, "-f", filepath.Join(RepoRoot(t), "examples", values, "values.yaml"))
			roles := 0
			for _, o := range objs {
				cr, ok := o.Obj.(*rbacv1.ClusterRole)
				if !ok {
					continue
				}
				roles++
				for _, r := range cr.Rules {
					for _, res := range r.Resources {
						base, _, _ := strings.Cut(res, "/")
						assert.NotContains(t, []string{"configmaps", "leases", "secrets", "*"}, base, "ClusterRole %s grants %v on %s", cr.Name, r.Verbs, res)
					}
				}
			}
			assert.GreaterOrEqual(t, roles, 3, "the collector's and both onboarding ClusterRoles are rendered")
		})
	}
}

func TestJoinAPIIsTLSAndFenced(t *testing.T) {
	objs := renderObjects(t, onboardingValues(t)...)
	const name = "edgetel-onboard-controller"

	svc, ok := findNamed[*corev1.Service](objs, name)
	require.True(t, ok)
	// The join port is served once, as TLS on 443; the only other port is the plain metrics one.
	var join []corev1.ServicePort
	for _, p := range svc.Spec.Ports {
		if p.TargetPort.String() == "join" {
			join = append(join, p)
		} else {
			assert.Equal(t, "metrics", p.Name)
		}
	}
	require.Len(t, join, 1)
	assert.Equal(t, int32(443), join[0].Port)
	assert.Equal(t, "https", join[0].Name)

	dep, ok := findNamed[*appsv1.Deployment](objs, name)
	require.True(t, ok)
	args := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " ")
	for _, want := range []string{"-tls-cert-file=/etc/edgetel/join-tls/tls.crt", "-tls-key-file=/etc/edgetel/join-tls/tls.key",
		"-token-review-audiences=edgetel-onboard", "-allowed-groups=edge-admins", "-rate-limit-burst=10", "-max-reservations=500"} {
		assert.Contains(t, args, want)
	}
	var secretName string
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Name == "join-tls" && v.Secret != nil {
			secretName = v.Secret.SecretName
		}
	}
	sec, ok := findNamed[*corev1.Secret](objs, secretName)
	require.True(t, ok, "the join API's certificate Secret %q is rendered", secretName)
	assert.Equal(t, corev1.SecretTypeTLS, sec.Type)
	block, _ := pem.Decode(sec.Data["tls.crt"])
	require.NotNil(t, block)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	assert.Contains(t, cert.DNSNames, name+".edgetel.svc")
	caBlock, _ := pem.Decode(sec.Data["ca.crt"])
	require.NotNil(t, caBlock)
	ca, err := x509.ParseCertificate(caBlock.Bytes)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: name + ".edgetel.svc"})
	require.NoError(t, err, "the certificate verifies against the Secret's ca.crt for the Service name")

	// An operator's certificate replaces the generated one.
	own := renderObjects(t, append(onboardingValues(t), "--set", "onboard.controller.joinAPI.tls.existingSecret=my-tls")...)
	_, generated := findNamed[*corev1.Secret](own, name+"-tls")
	assert.False(t, generated)
	dep, _ = findNamed[*appsv1.Deployment](own, name)
	assert.True(t, slices.ContainsFunc(dep.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == "my-tls" }))

	// The NetworkPolicy covers the controller's pods; the join port is open only to the peers named.
	np, ok := findNamed[*networkingv1.NetworkPolicy](objs, name)
	require.True(t, ok)
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	require.NoError(t, err)
	assert.True(t, sel.Matches(labels.Set(dep.Spec.Template.Labels)))
	assert.Equal(t, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}, np.Spec.PolicyTypes)
	for _, rule := range np.Spec.Ingress {
		if rule.Ports[0].Port.String() == "join" {
			require.Len(t, rule.From, 1)
			assert.Equal(t, "edge-admins", rule.From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
		}
	}
	closed := renderObjects(t, append(onboardingValues(t), "--set", "onboard.controller.networkPolicy.joinFrom=null")...)
	np, _ = findNamed[*networkingv1.NetworkPolicy](closed, name)
	for _, rule := range np.Spec.Ingress {
		assert.NotEqual(t, "join", rule.Ports[0].Port.String(), "no peer named: the join port is closed")
	}

	// Two replicas: a PDB keeps one through drains.
	pdb, ok := findNamed[*policyv1.PodDisruptionBudget](objs, name)
	require.True(t, ok)
	assert.Equal(t, 1, pdb.Spec.MinAvailable.IntValue())
	sel, err = metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	require.NoError(t, err)
	assert.True(t, sel.Matches(labels.Set(dep.Spec.Template.Labels)))
	_, ok = findNamed[*policyv1.PodDisruptionBudget](renderObjects(t, append(onboardingValues(t), "--set", "onboard.controller.replicas=1")...), name)
	assert.False(t, ok, "no PDB for a single replica: it would block every drain")
}

// The agent's rules stay through rollouts and drains: no preStop removes them.
func TestAgentKeepsRulesOnRollout(t *testing.T) {
	objs := renderObjects(t, onboardingValues(t)...)
	ds, ok := findNamed[*appsv1.DaemonSet](objs, "edgetel-onboard-agent")
	require.True(t, ok)
	c := ds.Spec.Template.Spec.Containers[0]
	assert.Nil(t, c.Lifecycle, "no lifecycle hook removes the rules")
	args := strings.Join(c.Args, " ")
	assert.Contains(t, args, "-forbidden-cidrs=10.96.0.0/12,192.168.1.100")
	assert.Contains(t, args, "-match-ports=10350-10999")
}
