package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/edgetel/edgetel/internal/cmd/onboard/apis"
	"github.com/edgetel/edgetel/internal/cmd/onboard/rules"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
)

const (
	kubeedgeNamespace = "kubeedge"
	joinToken         = "3b5a3e1d8c0f4a6b9e2d7c1a5f8e3b6d0a9c4e7f2b5d8a1c6e9f3b7d0a4c8e2f.eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDB9.c2lnbmF0dXJl"
	cloudcoreYAML     = `modules:
  cloudHub:
    advertiseAddress: [192.0.2.10]
    websocket: {port: 10000}
    quic: {port: 10001}
    https: {port: 10002}
  cloudStream:
    tunnelPort: 10004
`
)

// TestJoinAPIWithRealTokenReview runs the edgetel-onboard controller binary with the arguments
// of the chart's Deployment and the onboard-controller ServiceAccount, and calls its join API
// with real ServiceAccount tokens: TokenReview by the API server with the chart's audience
// decides who the caller is, the chart's allow-list who may join, and the chart's RBAC lets the
// controller read the nodes, cloudcore's ConfigMap and the join token. The rules controller in
// the same process must write the IPTablesRules object from the nodes, cloudcore's EndpointSlices
// and the tunnelport record, which it watches with that identity.
func TestJoinAPIWithRealTokenReview(t *testing.T) {
	c := cluster(t)
	bin := onboardBinary(t)
	ctx := context.Background()
	admin, err := kubernetes.NewForConfig(c.Admin)
	require.NoError(t, err)
	require.NoError(t, c.EnsureNamespace(ctx, kubeedgeNamespace))
	_, err = admin.CoreV1().ConfigMaps(kubeedgeNamespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cloudcore"}, Data: map[string]string{"cloudcore.yaml": cloudcoreYAML}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = admin.CoreV1().Secrets(kubeedgeNamespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "tokensecret"}, Data: map[string][]byte{"tokendata": []byte(joinToken)}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = admin.CoreV1().Nodes().Create(ctx, fleet.Node{Name: "edge-joined", IP: "192.0.2.50"}.KubeNode(corev1.ConditionTrue), metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.CoreV1().Nodes().Delete(ctx, "edge-joined", metav1.DeleteOptions{}) })
	// What the rules controller turns into a DNAT rule: an edge node on cloudcore's tunnel port,
	// the tunnelport record and cloudcore's ready endpoint.
	_, err = admin.CoreV1().Nodes().Create(ctx, fleet.Node{Name: "edge-tunnel", IP: "198.51.100.7", Port: 10351}.KubeNode(corev1.ConditionTrue), metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.CoreV1().Nodes().Delete(ctx, "edge-tunnel", metav1.DeleteOptions{}) })
	_, err = admin.CoreV1().ConfigMaps(kubeedgeNamespace).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name: rules.TunnelPortConfigMap, Annotations: map[string]string{
			rules.TunnelPortAnnotation: `{"ipTunnelPort":{"192.0.2.20":10351},"port":{"10351":true}}`}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = admin.DiscoveryV1().EndpointSlices(kubeedgeNamespace).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "cloudcore-1", Labels: map[string]string{discoveryv1.LabelServiceName: "cloudcore"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(rules.StreamPortName), Port: ptr.To[int32](10003)}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"192.0.2.20"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	for _, sa := range []string{"joiner", "outsider"} {
		_, err = admin.CoreV1().ServiceAccounts(Namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}

	join, ca := startOnboardController(t, bin, kubeconfigFor(t, c, "edgetel-onboard-controller"))
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: ca, ServerName: "edgetel-onboard-controller." + Namespace + ".svc", MinVersion: tls.VersionTLS12}}}
	get := func(token, node, ip string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, "https://"+join+"/api/v1alpha1/nodes/join?node_name="+node+"&node_ip="+ip, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	token := func(sa string, audiences ...string) string {
		tok, err := c.ServiceAccountToken(ctx, Namespace, sa, audiences...)
		require.NoError(t, err)
		return tok
	}
	// The chart's audience (values: onboard.controller.joinAPI.audiences).
	audience := flagValue(t, controllerArgs(t), "-token-review-audiences")

	// Allowed: the allow-listed ServiceAccount with a token minted for the join API.
	code, body := get(token("joiner", audience), "edge-new", "192.0.2.51")
	require.Equal(t, http.StatusOK, code, body)
	var resp struct {
		Code int    `json:"code"`
		Data string `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	assert.Contains(t, resp.Data, joinToken)
	assert.Contains(t, resp.Data, "192.0.2.10:10000")

	// The controller read the nodes with its own identity: a taken IP is refused.
	code, body = get(token("joiner", audience), "edge-other", "192.0.2.50")
	assert.Equal(t, http.StatusBadRequest, code, body)
	assert.Contains(t, body, "in use by node edge-joined")

	// Refused: the same ServiceAccount with an ordinary (API server audience) token, ...
	code, body = get(token("joiner"), "edge-x", "192.0.2.52")
	assert.Equal(t, http.StatusUnauthorized, code, body)
	// ... a ServiceAccount that is authenticated but not allowed, ...
	code, body = get(token("outsider", audience), "edge-x", "192.0.2.52")
	assert.Equal(t, http.StatusForbidden, code, body)
	assert.Contains(t, body, "system:serviceaccount:"+Namespace+":outsider")
	// ... a forged token, and no token.
	code, body = get("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "edge-x", "192.0.2.52")
	assert.Equal(t, http.StatusUnauthorized, code, body)
	code, body = get("", "edge-x", "192.0.2.52")
	assert.Equal(t, http.StatusUnauthorized, code, body)

	// The rules controller, with the same identity, wrote the IPTablesRules object.
	dyn, err := dynamic.NewForConfig(c.Admin)
	require.NoError(t, err)
	var got []apis.Rule
	rulesName := flagOr(controllerArgs(t), "-rules-name", "edgetel-onboard")
	ok := assert.Eventually(t, func() bool {
		u, err := dyn.Resource(apis.GVR).Namespace(Namespace).Get(ctx, rulesName, metav1.GetOptions{})
		if err != nil {
			return false
		}
		obj, err := apis.FromUnstructured(u)
		if err != nil {
			return false
		}
		got = obj.Spec.Rules
		return len(got) > 0
	}, 30*time.Second, 100*time.Millisecond)
	require.True(t, ok, "the rules controller wrote no rules")
	require.Len(t, got, 1)
	assert.Equal(t, "198.51.100.7", got[0].SourceIP)
	assert.Equal(t, "10351", got[0].SourcePort)
	assert.Equal(t, "192.0.2.20", got[0].DestinationIP)
	assert.Equal(t, "10003", got[0].DestinationPort)
}

func flagOr(args []string, name, def string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return def
}

// onboardBinary is edgetel-onboard as `make build` puts it in EDGETEL_BIN.
func onboardBinary(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("EDGETEL_BIN")
	if dir == "" {
		t.Skip("EDGETEL_BIN is not set: run through `make test`, which builds edgetel-onboard into ./bin")
	}
	bin := filepath.Join(dir, "edgetel-onboard")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("EDGETEL_BIN: %v", err)
	}
	return bin
}

// controllerArgs are the chart Deployment's arguments of the onboard controller.
func controllerArgs(t *testing.T) []string {
	t.Helper()
	for _, o := range chartObjs {
		if d, ok := o.Obj.(*appsv1.Deployment); ok && d.Name == "edgetel-onboard-controller" {
			return d.Spec.Template.Spec.Containers[0].Args
		}
	}
	t.Fatal("the chart rendered no edgetel-onboard-controller Deployment")
	return nil
}

func flagValue(t *testing.T, args []string, name string) string {
	t.Helper()
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	t.Fatalf("the chart's controller has no %s argument: %q", name, args)
	return ""
}

// startOnboardController runs the controller with the chart's arguments, its listeners moved to
// loopback ports and its TLS files taken from the chart's generated Secret, and waits until the
// join API answers. It returns the join API's address and the CA of its certificate.
func startOnboardController(t *testing.T, bin, kubeconfig string) (string, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	var secret *corev1.Secret
	for _, o := range chartObjs {
		if s, ok := o.Obj.(*corev1.Secret); ok && s.Name == "edgetel-onboard-controller-tls" {
			secret = s
		}
	}
	require.NotNil(t, secret, "the chart rendered no join API TLS Secret")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	require.NoError(t, os.WriteFile(certFile, secret.Data["tls.crt"], 0o600))
	require.NoError(t, os.WriteFile(keyFile, secret.Data["tls.key"], 0o600))
	ca := x509.NewCertPool()
	require.True(t, ca.AppendCertsFromPEM(secret.Data["ca.crt"]), "ca.crt of the chart's Secret")

	join, metrics := loopbackAddr(t), loopbackAddr(t)
	var args []string
	for _, a := range controllerArgs(t) {
		switch {
		case strings.HasPrefix(a, "-listen="):
			a = "-listen=" + join
		case strings.HasPrefix(a, "-metrics-listen="):
			a = "-metrics-listen=" + metrics
		case strings.HasPrefix(a, "-tls-cert-file="):
			a = "-tls-cert-file=" + certFile
		case strings.HasPrefix(a, "-tls-key-file="):
			a = "-tls-key-file=" + keyFile
		}
		args = append(args, a)
	}
	args = append(args, "-kubeconfig="+kubeconfig)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "POD_NAMESPACE="+Namespace, "POD_NAME=controller-0")
	logs, err := os.Create(filepath.Join(dir, "controller.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			out, _ := os.ReadFile(logs.Name())
			t.Logf("edgetel-onboard controller log:\n%s", out)
		}
	})
	ok := assert.Eventually(t, func() bool {
		select {
		case <-exited:
			return false
		default:
		}
		conn, err := net.DialTimeout("tcp", join, time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	}, 30*time.Second, 100*time.Millisecond)
	require.True(t, ok, "the join API did not listen on %s", join)
	return join, ca
}

func loopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}
