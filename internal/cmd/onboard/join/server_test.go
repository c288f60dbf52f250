package join

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
)

const (
	bearer      = "caller-secret-0123456789"
	otherBearer = "operator-secret-0123456789"
	outsider    = "outsider-secret-0123456789"
	joinToken   = "3b5a3e1d8c0f4a6b9e2d7c1a5f8e3b6d0a9c4e7f2b5d8a1c6e9f3b7d0a4c8e2f.eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDB9.c2lnbmF0dXJl"
	ccYAML      = `modules:
  cloudHub:
    advertiseAddress: [192.168.1.10]
    websocket: {port: 10000}
    quic: {port: 10001}
    https: {port: 10002}
  cloudStream:
    tunnelPort: 10004
`
)

type fixture struct {
	kube *fake.Clientset
	srv  *Server
	logs *bytes.Buffer
	now  time.Time
}

func cloudNode(name, ip string) *corev1.Node {
	n := fleet.Node{Name: name, IP: ip}.KubeNode(corev1.ConditionTrue)
	delete(n.Labels, kube.LabelEdgeRole)
	n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.7"})
	return n
}

func baseObjects() []runtime.Object {
	return []runtime.Object{
		fleet.Node{Name: "edge-a", IP: "10.20.0.1"}.KubeNode(corev1.ConditionTrue),
		cloudNode("master-1", "192.168.1.1"),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kubeedge", Name: CloudcoreConfigMap},
			Data: map[string]string{CloudcoreKey: ccYAML}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kubeedge", Name: TokenSecret},
			Data: map[string][]byte{TokenKey: []byte(joinToken)}},
	}
}

func defaults() Settings {
	return Settings{Flavor: FlavorUpstream, Version: "v1.23.0", Region: "en"}
}

func newFixture(t *testing.T, settings Settings, objs ...runtime.Object) *fixture {
	t.Helper()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.csv")
	require.NoError(t, os.WriteFile(tokens, []byte(bearer+",console,uid-1,\"system:authenticated,edge-admins\"\n"+
		otherBearer+",operator,uid-2,\"edge-admins\"\n"+outsider+",intruder,uid-3,\"system:authenticated\"\n"), 0o600))
	st, err := LoadStaticTokens(tokens)
	require.NoError(t, err)
	// The chart creates the reservations ConfigMap; the service only updates it.
	objs = append(objs, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "edgetel", Name: "edgetel-onboard-joins"}})
	f := &fixture{kube: fake.NewClientset(objs...), logs: &bytes.Buffer{}, now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	f.srv, err = NewServer(Config{
		Client: f.kube, Auth: st, Logger: slog.New(slog.NewTextHandler(f.logs, nil)), Defaults: settings,
		Allow: Allowed{Groups: []string{"edge-admins"}},
		Reservations: ReservationStore{Client: f.kube, Namespace: "edgetel", Name: "edgetel-onboard-joins",
			TTL: time.Hour, Now: func() time.Time { return f.now }},
	})
	require.NoError(t, err)
	return f
}

// get calls the API and decodes edge-watcher's JSON.
func (f *fixture) get(t *testing.T, path string, q url.Values) (int, response, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path+"?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+bearer)
	return f.do(t, req)
}

func (f *fixture) do(t *testing.T, req *http.Request) (int, response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	assert.Equal(t, "text/json", rec.Header().Get("Content-Type"))
	raw := rec.Body.String()
	var resp response
	require.NoError(t, json.Unmarshal([]byte(raw), &resp), raw)
	assert.Equal(t, uint32(rec.Code), resp.Code)
	return rec.Code, resp, raw
}

func q(name, ip string, extra ...string) url.Values {
	v := url.Values{"node_name": {name}, "node_ip": {ip}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

func TestJoinSucceedsWithEdgeWatcherResponse(t *testing.T) {
	f := newFixture(t, defaults(), baseObjects()...)
	code, resp, raw := f.get(t, "/api/v1alpha1/nodes/join", q("edge-new", "10.20.0.9"))
	require.Equal(t, http.StatusOK, code, raw)
	assert.Equal(t, "Succeeded", resp.Status)
	assert.Empty(t, resp.Message)
	assert.True(t, strings.HasPrefix(raw, `{"code":200,"status":"Succeeded","data":"`), raw)
	assert.Contains(t, raw, " && ", "HTML escaping must be off")
	assert.NotContains(t, raw, `\u0026`)
	assert.Contains(t, resp.Data, "'--cloudcore-ipport=192.168.1.10:10000'")
	assert.Contains(t, resp.Data, "'--token="+joinToken+"'")
	assert.Contains(t, resp.Data, "'--edgenode-name=edge-new'")
	assert.Contains(t, resp.Data, "'--set=modules.edgeStream.enable=true,modules.edged.nodeIP=10.20.0.9'")
}

func TestJoinPaths(t *testing.T) {
	f := newFixture(t, defaults(), baseObjects()...)
	for i, p := range []string{"/api/v1alpha1/nodes/join", "/api/v1alpha1/nodes/join/", "/nodes/join",
		"/kapis/kubeedge.kubesphere.io/v1alpha1/nodes/join", "/kapis/edgeruntime.kubesphere.io/v1alpha1/nodes/join"} {
		code, _, raw := f.get(t, p, q("edge-new", "10.20.0.9", "add_default_taint", "true"))
		assert.Equal(t, http.StatusOK, code, "path %d %s: %s", i, p, raw)
	}
	code, resp, _ := f.get(t, "/api/v1alpha1/nodes/leave", q("edge-new", "10.20.0.9"))
	assert.Equal(t, http.StatusNotFound, code)
	assert.Equal(t, "Failure", resp.Status)
	req := httptest.NewRequest(http.MethodPost, "/nodes/join?"+q("edge-new", "10.20.0.9").Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+bearer)
	code, _, _ = f.do(t, req)
	assert.Equal(t, http.StatusMethodNotAllowed, code)
}

func TestKubeSphereFlavorAndConfigMap(t *testing.T) {
	objs := append(baseObjects(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kubeedge", Name: SettingsConfigMap},
		Data: map[string]string{KeyVersion: "v1.9.2", KeyRegion: "zh", KeyFlavor: "kubesphere",
			KeyLabels: "site=berlin,tier=edge", KeyExtraFlags: "--cgroupdriver=systemd"},
	})
	f := newFixture(t, defaults(), objs...)
	code, resp, raw := f.get(t, "/nodes/join", q("edge-new", "10.20.0.9", "add_default_taint", "true"))
	require.Equal(t, http.StatusOK, code, raw)
	for _, want := range []string{"https://kubeedge.pek3b.qingstor.com/bin/v1.9.2/", "'--kubeedge-version=1.9.2'", "'--region=zh'",
		"'--quicport' '10001'", "'--certport' '10002'", "'--tunnelport' '10004'", "'--edgenode-ip' '10.20.0.9'",
		"'--with-edge-taint'", "'--labels=site=berlin,tier=edge'", "'--cgroupdriver=systemd'"} {
		assert.Contains(t, resp.Data, want)
	}
	code, resp, _ = f.get(t, "/nodes/join", q("edge-new", "10.20.0.9", "add_default_taint", "false"))
	require.Equal(t, http.StatusOK, code)
	assert.NotContains(t, resp.Data, "--with-edge-taint")
}

func TestValidationRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		query   url.Values
		code    int
		message string
	}{
		{"name missing", q("", "10.20.0.9"), 400, "Invalid node name"},
		{"name not DNS-1123", q("Edge_New", "10.20.0.9"), 400, "Invalid node name"},
		{"name in use", q("edge-a", "10.20.0.9"), 400, "Node name edge-a in use"},
		{"name of a cloud node", q("master-1", "10.20.0.9"), 400, "Node name master-1 in use"},
		{"ip missing", q("edge-new", ""), 400, "Invalid node IP"},
		{"ip not an IP", q("edge-new", "10.20.0"), 400, "Invalid node IP"},
		{"ip with zone", q("edge-new", "fe80::1%eth0"), 400, "Invalid node IP"},
		{"ip loopback", q("edge-new", "127.0.0.1"), 400, "not a unicast"},
		{"ip unspecified", q("edge-new", "0.0.0.0"), 400, "not a unicast"},
		{"ip multicast", q("edge-new", "224.0.0.1"), 400, "not a unicast"},
		{"ip broadcast", q("edge-new", "255.255.255.255"), 400, "not a unicast"},
		{"ip link-local", q("edge-new", "169.254.1.1"), 400, "not a unicast"},
		{"ip in use (InternalIP)", q("edge-new", "10.20.0.1"), 400, "Node IP 10.20.0.1 in use"},
		{"ip in use (ExternalIP)", q("edge-new", "203.0.113.7"), 400, "Node IP 203.0.113.7 in use"},
		{"ip in use (v4-mapped)", q("edge-new", "::ffff:10.20.0.1"), 400, "Node IP 10.20.0.1 in use"},
		{"taint not a bool", q("edge-new", "10.20.0.9", "add_default_taint", "yes"), 400, "add_default_taint"},
		{"arch unknown", q("edge-new", "10.20.0.9", "arch", "mips"), 400, "Invalid arch"},
		{"param twice", url.Values{"node_name": {"a", "b"}, "node_ip": {"10.20.0.9"}}, 400, "node_name given 2 times"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, defaults(), baseObjects()...)
			code, resp, raw := f.get(t, "/api/v1alpha1/nodes/join", tc.query)
			assert.Equal(t, tc.code, code, raw)
			assert.Equal(t, "Failure", resp.Status)
			assert.Contains(t, resp.Message, tc.message)
			assert.Empty(t, resp.Data)
		})
	}
}

func TestAlreadyJoining(t *testing.T) {
	f := newFixture(t, defaults(), baseObjects()...)
	code, _, _ := f.get(t, "/nodes/join", q("edge-new", "10.20.0.9"))
	require.Equal(t, 200, code)
	// The console validates, then asks again for the command: same pair, still fine.
	code, _, _ = f.get(t, "/nodes/join", q("edge-new", "10.20.0.9"))
	require.Equal(t, 200, code)

	code, resp, _ := f.get(t, "/nodes/join", q("edge-new", "10.20.0.10"))
	assert.Equal(t, 400, code)
	assert.Contains(t, resp.Message, "Node name edge-new is already joining with IP 10.20.0.9")
	code, resp, _ = f.get(t, "/nodes/join", q("edge-other", "10.20.0.9"))
	assert.Equal(t, 400, code)
	assert.Contains(t, resp.Message, "Node IP 10.20.0.9 is already reserved by joining node edge-new")

	// The reservation lapses after its TTL.
	f.now = f.now.Add(61 * time.Minute)
	code, _, raw := f.get(t, "/nodes/join", q("edge-other", "10.20.0.9"))
	assert.Equal(t, 200, code, raw)
	assert.Equal(t, 3.0, testutil.ToFloat64(f.srv.requests.WithLabelValues("200")))
	assert.Equal(t, 2.0, testutil.ToFloat64(f.srv.requests.WithLabelValues("400")))
}

func TestClusterReadFailuresAre500(t *testing.T) {
	t.Run("list nodes", func(t *testing.T) {
		f := newFixture(t, defaults(), baseObjects()...)
		f.kube.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, errors.New("etcd is on fire")
		})
		code, resp, _ := f.get(t, "/nodes/join", q("edge-new", "10.20.0.9"))
		assert.Equal(t, 500, code)
		assert.NotContains(t, resp.Message, "etcd is on fire", "the API server's text stays in the log")
		assert.Contains(t, resp.Message, "internal error")
		assert.Contains(t, f.logs.String(), "List nodes error: etcd is on fire")
	})
	for _, tc := range []struct {
		name, message string
		drop          func([]runtime.Object) []runtime.Object
	}{
		{"no cloudcore configmap", "Read cloudcore configmap error", func(o []runtime.Object) []runtime.Object { return append(o[:2:2], o[3]) }},
		{"no token secret", "Read cloudcore token secret error", func(o []runtime.Object) []runtime.Object { return o[:3] }},
		{"malformed token", "is not a <ca-hash>.<jwt> token", func(o []runtime.Object) []runtime.Object {
			o[3].(*corev1.Secret).Data[TokenKey] = []byte("abc'; reboot; '.x.y.z")
			return o
		}},
		{"cloudcore.yaml not YAML", "Unmarshal cloudcore configmap error", func(o []runtime.Object) []runtime.Object {
			o[2].(*corev1.ConfigMap).Data[CloudcoreKey] = "modules: [unclosed"
			return o
		}},
		{"no advertise address", "no modules.cloudHub.advertiseAddress", func(o []runtime.Object) []runtime.Object {
			o[2].(*corev1.ConfigMap).Data[CloudcoreKey] = "modules: {}"
			return o
		}},
		{"hostile advertise address", "neither an IP address nor a DNS name", func(o []runtime.Object) []runtime.Object {
			o[2].(*corev1.ConfigMap).Data[CloudcoreKey] = "modules: {cloudHub: {advertiseAddress: ['$(reboot)']}}"
			return o
		}},
		{"port out of range", "websocket port 70000 out of range", func(o []runtime.Object) []runtime.Object {
			o[2].(*corev1.ConfigMap).Data[CloudcoreKey] = "modules: {cloudHub: {advertiseAddress: [cc.example.com], websocket: {port: 70000}}}"
			return o
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, defaults(), tc.drop(baseObjects())...)
			code, resp, _ := f.get(t, "/nodes/join", q("edge-new", "10.20.0.9"))
			assert.Equal(t, 500, code)
			assert.Equal(t, "internal error: the join service could not prepare the command; its log says why", resp.Message)
			assert.Contains(t, f.logs.String(), tc.message)
			assert.NotContains(t, resp.Message, "reboot;")
		})
	}
}

// hostile is the table of values no request or setting may get into a command.
var hostile = map[string]string{
	"single quote":  "edge'a",
	"double quote":  `edge"a`,
	"command subst": "$(reboot)",
	"backticks":     "`reboot`",
	"newline":       "edge\nreboot",
	"semicolon":     "edge;reboot",
	"ampersand":     "edge&&reboot",
	"pipe":          "edge|sh",
	"space":         "edge reboot",
	"unicode":       "édge-ü",
	"rtl override":  "edge\u202e",
	"nul":           "edge\x00",
	"dollar brace":  "${IFS}",
	"overlong":      strings.Repeat("a", 300),
	"glob":          "edge*",
	"redirect":      "edge>/etc/passwd",
}

func TestHostileRequestsRefused(t *testing.T) {
	for name, v := range hostile {
		for _, field := range []string{"node_name", "node_ip", "add_default_taint", "arch"} {
			t.Run(name+"/"+field, func(t *testing.T) {
				f := newFixture(t, defaults(), baseObjects()...)
				query := q("edge-new", "10.20.0.9")
				query.Set(field, v)
				code, resp, _ := f.get(t, "/nodes/join", query)
				assert.Equal(t, 400, code)
				assert.Equal(t, "Failure", resp.Status)
				assert.Empty(t, resp.Data)
				assert.Regexp(t, `^Invalid (node name|node IP|add_default_taint|arch)`, resp.Message)
				assert.NotContains(t, resp.Message, "\n", "messages must not carry raw newlines")
			})
		}
	}
}

func TestHostileSettingsRefused(t *testing.T) {
	keys := []string{KeyVersion, KeyRegion, KeyMirror, KeyFlavor, KeyLabels, KeyExtraFlags, KeyAddress}
	for name, v := range hostile {
		for _, key := range keys {
			t.Run(name+"/"+key, func(t *testing.T) {
				val := v
				switch key {
				case KeyMirror:
					val = "https://mirror.example.com/" + v
				case KeyLabels:
					val = "site=" + v
				case KeyExtraFlags:
					val = "--x=" + v
				}
				if key == KeyExtraFlags && strings.TrimSpace(v) != v {
					t.Skip("whitespace separates extra flags; covered by the other cases")
				}
				objs := append(baseObjects(), &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Namespace: "kubeedge", Name: SettingsConfigMap},
					Data:       map[string]string{KeyFlavor: "kubesphere", KeyRegion: "en", key: val},
				})
				f := newFixture(t, defaults(), objs...)
				code, resp, _ := f.get(t, "/nodes/join", q("edge-new", "10.20.0.9"))
				assert.Equal(t, 400, code, "value %q for %s", val, key)
				assert.Contains(t, resp.Message, "edge-watcher-config configured, but the given values were incorrect")
				assert.Empty(t, resp.Data)
			})
		}
	}
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t, defaults(), baseObjects()...)
	req := httptest.NewRequest(http.MethodGet, "/nodes/join?"+q("edge-new", "10.20.0.9").Encode(), nil)
	code, resp, _ := f.do(t, req)
	assert.Equal(t, 401, code)
	assert.Contains(t, resp.Message, "Bearer token is required")
	req.Header.Set("Authorization", "Bearer wrong")
	code, _, _ = f.do(t, req)
	assert.Equal(t, 401, code)

	// TokenReview: the fake API server accepts exactly one token.
	f.kube.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview).DeepCopy()
		if tr.Spec.Token == "sa-token" {
			tr.Status = authnv1.TokenReviewStatus{Authenticated: true, Audiences: tr.Spec.Audiences,
				User: authnv1.UserInfo{Username: "system:serviceaccount:kubesphere-system:ks-apiserver", Groups: []string{"system:serviceaccounts", "edge-admins"}}}
		}
		return true, tr, nil
	})
	f.srv.cfg.Auth = Authenticators{f.srv.cfg.Auth, TokenReviewer{Client: f.kube, Audiences: []string{"edgetel-onboard"}}}
	req.Header.Set("Authorization", "Bearer sa-token")
	code, _, raw := f.do(t, req)
	assert.Equal(t, 200, code, raw)
	req.Header.Set("Authorization", "Bearer other-token")
	code, _, _ = f.do(t, req)
	assert.Equal(t, 401, code)
	req.Header.Set("Authorization", "Bearer "+outsider)
	code, resp, _ = f.do(t, req)
	assert.Equal(t, 403, code)
	assert.Contains(t, resp.Message, "forbidden")
	req.Header.Set("Authorization", "Bearer "+bearer)
	code, _, _ = f.do(t, req)
	assert.Equal(t, 200, code)

	f.kube.PrependReactor("create", "tokenreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("apiserver unreachable at 10.0.0.1:6443")
	})
	req.Header.Set("Authorization", "Bearer sa-token")
	code, resp, _ = f.do(t, req)
	assert.Equal(t, 500, code)
	assert.NotContains(t, resp.Message, "10.0.0.1", "the API server's error text is not echoed")
	assert.Contains(t, f.logs.String(), "apiserver unreachable at 10.0.0.1:6443")

	logs := f.logs.String()
	for _, secret := range []string{bearer, "sa-token", joinToken, "eyJ"} {
		assert.NotContains(t, logs, secret, "a credential reached the logs")
	}
	assert.Contains(t, logs, "join command issued")
}

func TestStaticTokenFileErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"empty": "\n", "no user": "tok-only\n", "no uid": "tok-only,user\n", "bare quote": "tok-only,us\"er,1\n"} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		_, err := LoadStaticTokens(p)
		require.Error(t, err, name)
		assert.NotContains(t, err.Error(), "tok-only")
	}
	_, err := LoadStaticTokens(filepath.Join(dir, "missing"))
	require.Error(t, err)
}

// TestStaticTokensParsedAsTheAPIServerDoes: the file is kube-apiserver's CSV: a quoted group
// list holds commas, a quoted token may hold a comma, and groups are the user's.
func TestStaticTokensParsedAsTheAPIServerDoes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tokens.csv")
	require.NoError(t, os.WriteFile(p, []byte("\"tok,with,commas\",alice,uid-1,\"edge-admins,ops\"\nplain,bob,uid-2\n"), 0o600))
	st, err := LoadStaticTokens(p)
	require.NoError(t, err)
	u, err := st.Authenticate(context.Background(), "tok,with,commas")
	require.NoError(t, err)
	assert.Equal(t, User{Name: "alice", Groups: []string{"edge-admins", "ops"}}, u)
	_, err = st.Authenticate(context.Background(), `"tok`)
	assert.ErrorIs(t, err, ErrUnauthenticated, "a hand split on commas would have taken \"tok as a token")
	u, err = st.Authenticate(context.Background(), "plain")
	require.NoError(t, err)
	assert.Equal(t, "bob", u.Name)
	assert.Empty(t, u.Groups)
}

// TestReservationsNeedTheChartsConfigMap: the service creates no ConfigMap (its RBAC has no
// create); without the chart's, it says which to create.
func TestReservationsNeedTheChartsConfigMap(t *testing.T) {
	kube := fake.NewClientset()
	r := ReservationStore{Client: kube, Namespace: "edgetel", Name: "edgetel-onboard-joins", TTL: time.Hour}
	err := r.Reserve(context.Background(), "edge-new", "10.20.0.9", "alice", nil)
	require.ErrorContains(t, err, "kubectl -n edgetel create configmap edgetel-onboard-joins")
	for _, a := range kube.Actions() {
		assert.NotEqual(t, "create", a.GetVerb())
	}
}

func TestServerShutsDownWithContext(t *testing.T) {
	f := newFixture(t, defaults(), baseObjects()...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.srv.ListenAndServe(ctx, "127.0.0.1:0", "", "") }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop")
	}
	_ = io.Discard
}
