package charttest

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/bearertokenauthextension"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/edgetel/edgetel/exporters/objstoreexporter"
	"github.com/edgetel/edgetel/internal/testing/testprog"
	"github.com/edgetel/edgetel/internal/testing/thanostest"
)

// The compactor is off by default, refuses the FILESYSTEM bucket it could not reach, and when on
// runs alone (Recreate, one replica) with vertical compaction.
func TestThanosCompactor(t *testing.T) {
	assert.False(t, has(rendered(t), "Deployment", "edgetel-compactor"), "off by default")
	_, err := Render(t, "--set", "thanos.compactor.enabled=true")
	require.ErrorContains(t, err, "needs an object store bucket")

	objs := rendered(t, "--set", "thanos.compactor.enabled=true", "--set", "bucket.existingSecret=my-bucket")
	d := find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-compactor")
	assert.EqualValues(t, 1, *d.Spec.Replicas)
	assert.Equal(t, appsv1.RecreateDeploymentStrategyType, d.Spec.Strategy.Type, "never two compactors on one bucket")
	c := container(t, d.Spec.Template.Spec, "compactor")
	assert.Contains(t, c.Args, "--compact.enable-vertical-compaction")
	assert.Equal(t, "my-bucket", volume(t, d.Spec.Template.Spec, "bucket").Secret.SecretName)
	assert.Empty(t, Check(objs))
}

// The compactor's rendered command line starts the real Thanos (EDGETEL_THANOS): every flag the
// chart passes exists in the pinned version. Paths and the address are moved to the test's own.
func TestThanosCompactorArgsRunTheRealThanos(t *testing.T) {
	bin := testprog.Path(t, "EDGETEL_THANOS", "tool-thanos")
	// Two shards: the deduplication flags, penalty merge included.
	objs := rendered(t, "--set", "thanos.compactor.enabled=true", "--set", "bucket.existingSecret=b",
		"--set", "thanos.compactor.retention.raw=30d", "--set", "collector.shards=2")
	d := find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-compactor")
	require.Contains(t, container(t, d.Spec.Template.Spec, "compactor").Args, "--deduplication.func=penalty")
	dir := t.TempDir()
	conf := filepath.Join(dir, "objstore.yml")
	require.NoError(t, os.WriteFile(conf, []byte("type: FILESYSTEM\nconfig:\n  directory: "+filepath.Join(dir, "bucket")+"\n"), 0o600))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	var args []string
	for _, a := range container(t, d.Spec.Template.Spec, "compactor").Args {
		switch name, _, _ := strings.Cut(a, "="); name {
		case "--data-dir":
			a = name + "=" + filepath.Join(dir, "data")
		case "--objstore.config-file":
			a = name + "=" + conf
		case "--http-address":
			a = name + "=" + addr
		}
		args = append(args, a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	log, err := os.Create(filepath.Join(dir, "thanos.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	ready := func() bool {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for deadline := time.Now().Add(time.Minute); !ready(); time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-exited:
			out, _ := os.ReadFile(log.Name())
			t.Fatalf("thanos %s exited (%v):\n%s", strings.Join(args, " "), err, out)
		default:
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(log.Name())
			t.Fatalf("thanos compact never became ready:\n%s", out)
		}
	}
}

// The collectors serve their heads by default and edgetel-query reads them through the headless
// Service; the Thanos scale path is off by default.
func TestCollectorHeadsByDefault(t *testing.T) {
	objs := rendered(t)
	head := dig(t, collectorConfig(t, objs), "exporters", "objstore", "head_api").(map[string]any)
	assert.Equal(t, "${env:POD_IP}:9095", head["endpoint"])
	sts := find[*appsv1.StatefulSet](t, objs, "StatefulSet", "edgetel-collector")
	assert.Contains(t, portNames(container(t, sts.Spec.Template.Spec, "collector").Ports), "head")
	assert.Len(t, sts.Spec.Template.Spec.Containers, 1, "no sidecar without thanos.enabled")
	svc := find[*corev1.Service](t, objs, "Service", "edgetel-collector-headless")
	assert.True(t, hasPort(svc, "head"))
	q := find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-query")
	assert.Contains(t, container(t, q.Spec.Template.Spec, "query").Args, "--head.dns=edgetel-collector-headless.edgetel.svc:9095")
	for _, name := range []string{"edgetel-thanos-store", "edgetel-thanos-query"} {
		assert.False(t, has(objs, "Deployment", name), "%s off by default", name)
	}

	objs = rendered(t, "--set", "thanos.head.enabled=false")
	_, on := collectorConfig(t, objs)["exporters"].(map[string]any)["objstore"].(map[string]any)["head_api"]
	assert.False(t, on, "head_api off")
	q = find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-query")
	for _, a := range container(t, q.Spec.Template.Spec, "query").Args {
		assert.NotContains(t, a, "--head.dns")
	}
}

func portNames(ps []corev1.ContainerPort) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

// thanos.enabled renders the store gateway and the querier on the chart's bucket Secret, a
// sidecar without a bucket beside each collector, Grafana's data source on the querier; with the
// compactor on, all three Thanos components.
func TestThanosScalePath(t *testing.T) {
	_, err := Render(t, "--set", "thanos.enabled=true")
	require.ErrorContains(t, err, "thanos.enabled needs an object store bucket")
	_, err = Render(t, "--set", "thanos.enabled=true", "--set", "bucket.existingSecret=b", "--set", "thanos.head.enabled=false")
	require.ErrorContains(t, err, "thanos.enabled needs collector.enabled, collector.objstore.enabled and thanos.head.enabled")

	objs := rendered(t, "--set", "thanos.enabled=true", "--set", "thanos.compactor.enabled=true", "--set", "bucket.existingSecret=my-bucket")
	for _, name := range []string{"edgetel-thanos-store", "edgetel-compactor"} {
		d := find[*appsv1.Deployment](t, objs, "Deployment", name)
		assert.Equal(t, "my-bucket", volume(t, d.Spec.Template.Spec, "bucket").Secret.SecretName, name)
	}
	store := find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-thanos-store")
	assert.Contains(t, container(t, store.Spec.Template.Spec, "store").Args, "--objstore.config-file=/etc/edgetel/bucket/objstore.yml")
	query := find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-thanos-query")
	var sd string
	for _, a := range container(t, query.Spec.Template.Spec, "query").Args {
		if v, ok := strings.CutPrefix(a, "--endpoint.sd-config="); ok {
			sd = v
		}
	}
	assert.JSONEq(t, `{"endpoints":[{"address":"dnssrv+_grpc._tcp.edgetel-thanos-store.edgetel.svc"},{"address":"dnssrv+_grpc._tcp.edgetel-collector-headless.edgetel.svc"}]}`, sd)
	assert.True(t, hasPort(find[*corev1.Service](t, objs, "Service", "edgetel-thanos-store"), "grpc"))
	assert.True(t, hasPort(find[*corev1.Service](t, objs, "Service", "edgetel-collector-headless"), "grpc"), "the sidecars' SRV records")

	sts := find[*appsv1.StatefulSet](t, objs, "StatefulSet", "edgetel-collector")
	sc := container(t, sts.Spec.Template.Spec, "thanos-sidecar")
	assert.Contains(t, sc.Args, "--prometheus.url=http://$(POD_IP):9095")
	for _, a := range sc.Args {
		assert.NotContains(t, a, "--objstore", "the sidecar does not ship: the exporter uploads")
	}
	// With the collector's NetworkPolicy, the head API is open to edgetel-query and the collector
	// pods (the sidecar), the sidecar's StoreAPI to Thanos' querier only.
	np := find[*networkingv1.NetworkPolicy](t, rendered(t, "--set", "thanos.enabled=true", "--set", "bucket.existingSecret=b",
		"--set", "collector.networkPolicy.enabled=true"), "NetworkPolicy", "edgetel-collector")
	from := map[int32][]string{}
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			for _, f := range r.From {
				from[p.Port.IntVal] = append(from[p.Port.IntVal], f.PodSelector.MatchLabels["app.kubernetes.io/component"])
			}
		}
	}
	assert.Equal(t, map[int32][]string{9095: {"query", "collector"}, 10901: {"thanos-query"}}, from)

	cm := find[*corev1.ConfigMap](t, objs, "ConfigMap", "edgetel-datasource")
	assert.Contains(t, cm.Data["edgetel-datasource.yaml"], "http://edgetel-thanos-query.edgetel.svc:10902")
	assert.Empty(t, Check(objs))
}

// rewriteArgs moves a rendered command line's addresses and paths to the test's own.
func rewriteArgs(args []string, with map[string]string) []string {
	var out []string
	for _, a := range args {
		name, _, _ := strings.Cut(a, "=")
		if v, ok := with[name]; ok {
			a = name + "=" + v
		}
		out = append(out, a)
	}
	return out
}

// The rendered sidecar, store gateway and querier command lines start the real Thanos and
// answer a sample held only in a real objstore exporter's head (the sidecar reads its head_api).
// Only addresses and paths are the test's own; the querier's endpoint config keeps its shape
// with the two DNS names replaced by the test's addresses.
func TestThanosScalePathArgsRunTheRealThanos(t *testing.T) {
	thanostest.Bin(t)
	objs := rendered(t, "--set", "thanos.enabled=true", "--set", "bucket.existingSecret=b")
	sts := find[*appsv1.StatefulSet](t, objs, "StatefulSet", "edgetel-collector")
	store := find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-thanos-store")
	query := find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-thanos-query")

	dir := t.TempDir()
	token := filepath.Join(dir, "head-token")
	require.NoError(t, os.WriteFile(token, []byte("chart-head-token\n"), 0o600))
	headURL, at := startExporterHead(t, filepath.Join(dir, "collector"), token)
	resp, err := http.Get(headURL + "/api/v1/status/config")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the head answers no one without the token")
	conf := filepath.Join(dir, "objstore.yml")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "collector", "bucket"), 0o750))
	require.NoError(t, os.WriteFile(conf, []byte("type: FILESYSTEM\nconfig:\n  directory: "+filepath.Join(dir, "collector", "bucket")+"\n"), 0o600))

	sidecar := &thanostest.Process{HTTP: thanostest.FreeAddr(t), GRPC: thanostest.FreeAddr(t)}
	// The rendered client configuration, with the token file at the test's path.
	sidecarArgs := container(t, sts.Spec.Template.Spec, "thanos-sidecar").Args
	var client map[string]any
	for _, a := range sidecarArgs {
		if v, ok := strings.CutPrefix(a, "--prometheus.http-client="); ok {
			require.NoError(t, json.Unmarshal([]byte(v), &client))
		}
	}
	require.Equal(t, "/etc/edgetel/head-token/token", client["bearer_token_file"])
	client["bearer_token_file"] = token
	clientJSON, err := json.Marshal(client)
	require.NoError(t, err)
	thanostest.StartArgs(t, sidecar, rewriteArgs(sidecarArgs, map[string]string{
		"--prometheus.http-client": string(clientJSON),
		"--prometheus.url":         headURL, "--tsdb.path": filepath.Join(dir, "sidecar"),
		"--http-address": sidecar.HTTP, "--grpc-address": sidecar.GRPC})...)
	gw := &thanostest.Process{HTTP: thanostest.FreeAddr(t), GRPC: thanostest.FreeAddr(t)}
	thanostest.StartArgs(t, gw, rewriteArgs(container(t, store.Spec.Template.Spec, "store").Args, map[string]string{
		"--data-dir": filepath.Join(dir, "store"), "--objstore.config-file": conf,
		"--http-address": gw.HTTP, "--grpc-address": gw.GRPC})...)

	args := container(t, query.Spec.Template.Spec, "query").Args
	var sd struct {
		Endpoints []map[string]any `json:"endpoints"`
	}
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--endpoint.sd-config="); ok {
			require.NoError(t, json.Unmarshal([]byte(v), &sd))
		}
	}
	require.Len(t, sd.Endpoints, 2)
	sd.Endpoints[0]["address"], sd.Endpoints[1]["address"] = gw.GRPC, sidecar.GRPC
	sdJSON, err := json.Marshal(sd)
	require.NoError(t, err)
	q := &thanostest.Process{HTTP: thanostest.FreeAddr(t), GRPC: thanostest.FreeAddr(t)}
	thanostest.StartArgs(t, q, rewriteArgs(args, map[string]string{
		"--http-address": q.HTTP, "--grpc-address": q.GRPC, "--endpoint.sd-config": string(sdJSON)})...)

	require.Eventually(t, func() bool {
		a, err := thanostest.Query(t, "http://"+q.HTTP, `up{job="kubeedge", cluster="chart"}`, at, nil)
		require.NoError(t, err)
		return len(a.Vector) == 1 && a.Vector[0].Value == 1
	}, time.Minute, 200*time.Millisecond, "the querier answers the head's sample through the sidecar")
}

// startExporterHead runs the real objstore exporter with head_api on and one `up` sample in its
// head, taking only the bearer token in tokenFile (as the chart configures it); it returns the
// head API's URL and the sample's time.
func startExporterHead(t *testing.T, dir, tokenFile string) (string, time.Time) {
	t.Helper()
	ctx := context.Background()
	f := objstoreexporter.NewFactory()
	cfg := f.CreateDefaultConfig().(*objstoreexporter.Config)
	cfg.Directory = dir
	cfg.ExternalLabels = map[string]string{"cluster": "chart", "shard": "0"}
	srv := objstoreexporter.DefaultHeadAPIConfig()
	srv.NetAddr.Endpoint = thanostest.FreeAddr(t)
	host := tokenHost(t, tokenFile)
	srv.Auth = configoptional.Some(confighttp.AuthConfig{Config: configauth.Config{AuthenticatorID: headAuthID}})
	cfg.HeadAPI = configoptional.Some(srv)
	exp, err := f.CreateMetrics(ctx, exportertest.NewNopSettings(f.Type()), cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(ctx, host))
	t.Cleanup(func() { require.NoError(t, exp.Shutdown(context.Background())) })
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "kubeedge")
	rm.Resource().Attributes().PutStr("service.instance.id", "edge-1")
	dp := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	dp.SetName("up")
	p := dp.SetEmptyGauge().DataPoints().AppendEmpty()
	p.SetTimestamp(pcommon.NewTimestampFromTime(at))
	p.SetDoubleValue(1)
	require.NoError(t, exp.ConsumeMetrics(ctx, md))
	return "http://" + srv.NetAddr.Endpoint, at
}

// The Thanos example keeps one copy of the data: blocks to the bucket and no remote write, the
// store gateway, querier and compactor on the same bucket Secret, a sidecar per collector for
// its head, and Grafana on the querier. With remote write to Receive as well, every series
// would reach Thanos Query twice under two label sets.
func TestThanosExampleKeepsOneCopy(t *testing.T) {
	objs := rendered(t, "-f", filepath.Join(RepoRoot(t), "examples", "thanos", "values.yaml"))
	cfg := collectorConfig(t, objs)
	exporters := dig(t, cfg, "service", "pipelines", "metrics", "exporters").([]any)
	assert.Equal(t, []any{"objstore"}, exporters, "blocks only: no remote write beside them")
	for _, name := range []string{"edgetel-thanos-store", "edgetel-compactor"} {
		d := find[*appsv1.Deployment](t, objs, "Deployment", name)
		assert.Equal(t, "thanos-objstore", volume(t, d.Spec.Template.Spec, "bucket").Secret.SecretName, name)
	}
	assert.True(t, has(objs, "Deployment", "edgetel-thanos-query"))
	assert.False(t, has(objs, "Deployment", "edgetel-query"), "Thanos Query serves the bucket and the heads")
	sts := find[*appsv1.StatefulSet](t, objs, "StatefulSet", "edgetel-collector")
	container(t, sts.Spec.Template.Spec, "thanos-sidecar")
	compactor := container(t, find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-compactor").Spec.Template.Spec, "compactor")
	assert.Subset(t, compactor.Args, []string{"--retention.resolution-raw=30d", "--retention.resolution-5m=180d", "--retention.resolution-1h=2y"})
	cm := find[*corev1.ConfigMap](t, objs, "ConfigMap", "edgetel-datasource")
	assert.Contains(t, cm.Data["edgetel-datasource.yaml"], "http://edgetel-thanos-query.edgetel.svc:10902")
	assert.Empty(t, Check(objs))
}

// headAuthID is the authenticator the chart gives head_api.
var headAuthID = component.MustNewIDWithName("bearertokenauth", "head")

// extHost is a Collector host with extensions.
type extHost struct {
	component.Host
	exts map[component.ID]component.Component
}

func (h extHost) GetExtensions() map[component.ID]component.Component { return h.exts }

// tokenHost runs the bearertokenauth extension as the chart configures it (the token read from
// a file) and returns a host that has it.
func tokenHost(t *testing.T, tokenFile string) component.Host {
	t.Helper()
	ctx := context.Background()
	f := bearertokenauthextension.NewFactory()
	cfg := f.CreateDefaultConfig().(*bearertokenauthextension.Config)
	cfg.Filename = tokenFile
	ext, err := f.Create(ctx, extensiontest.NewNopSettings(f.Type()), cfg)
	require.NoError(t, err)
	host := extHost{Host: componenttest.NewNopHost(), exts: map[component.ID]component.Component{headAuthID: ext}}
	require.NoError(t, ext.Start(ctx, host))
	t.Cleanup(func() { _ = ext.Shutdown(ctx) })
	return host
}

// Every reader of the heads presents the token the collectors require, from one Secret the
// chart generates (or names), and with head TLS on, dials https and verifies the head's name.
func TestHeadAPITokenAndTLSWiring(t *testing.T) {
	for _, tls := range []bool{false, true} {
		args := []string{"--set", "thanos.enabled=true", "--set", "bucket.existingSecret=b"}
		if tls {
			args = append(args, "--set", "thanos.head.tlsSecret=head-tls")
		}
		objs := rendered(t, args...)
		cfg := collectorConfig(t, objs)
		head := dig(t, cfg, "exporters", "objstore", "head_api").(map[string]any)
		assert.Equal(t, map[string]any{"authenticator": "bearertokenauth/head"}, head["auth"])
		assert.EqualValues(t, 4, head["max_queries_per_request"])
		assert.Equal(t, "/etc/edgetel/head-token/token", dig(t, cfg, "extensions", "bearertokenauth/head", "filename"))
		assert.Contains(t, dig(t, cfg, "service", "extensions"), "bearertokenauth/head")
		secret := find[*corev1.Secret](t, objs, "Secret", "edgetel-head-token")
		assert.Len(t, secret.Data["token"], 48)

		sts := find[*appsv1.StatefulSet](t, objs, "StatefulSet", "edgetel-collector")
		query := find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-query")
		for _, c := range []corev1.Container{container(t, sts.Spec.Template.Spec, "collector"),
			container(t, sts.Spec.Template.Spec, "thanos-sidecar"), container(t, query.Spec.Template.Spec, "query")} {
			assert.True(t, mountedAt(c, "head-token", "/etc/edgetel/head-token"), "%s: token not mounted", c.Name)
			assert.Equal(t, tls, mountedAt(c, "head-tls", "/etc/edgetel/head-tls"), c.Name)
		}
		qargs := strings.Join(container(t, query.Spec.Template.Spec, "query").Args, " ")
		sargs := strings.Join(container(t, sts.Spec.Template.Spec, "thanos-sidecar").Args, " ")
		assert.Contains(t, qargs, "--head.bearer-token-file=/etc/edgetel/head-token/token")
		if tls {
			assert.Equal(t, map[string]any{"cert_file": "/etc/edgetel/head-tls/tls.crt", "key_file": "/etc/edgetel/head-tls/tls.key"}, head["tls"])
			assert.Contains(t, qargs, "--head.scheme=https")
			assert.Contains(t, qargs, "--head.tls-ca-file=/etc/edgetel/head-tls/ca.crt")
			assert.Contains(t, qargs, "--head.tls-server-name=edgetel-collector-headless.edgetel.svc")
			assert.Contains(t, sargs, "--prometheus.url=https://$(POD_IP):9095")
			assert.Contains(t, sargs, `"tls_config":{"ca_file":"/etc/edgetel/head-tls/ca.crt","server_name":"edgetel-collector-headless.edgetel.svc"}`)
		} else {
			assert.NotContains(t, head, "tls")
			assert.Contains(t, qargs, "--head.scheme=http ")
			assert.Contains(t, sargs, "--prometheus.url=http://$(POD_IP):9095")
		}
	}
}

func mountedAt(c corev1.Container, volume, path string) bool {
	for _, m := range c.VolumeMounts {
		if m.Name == volume && m.MountPath == path {
			return true
		}
	}
	return false
}

// The edge agent runs as uid 10001, not root; the only root step is the init container that
// hands the hostPath buffer to it, with CHOWN and DAC_READ_SEARCH and nothing else.
func TestEdgeAgentRunsNonRoot(t *testing.T) {
	objs := rendered(t, "--set", "edgeAgent.enabled=true", "--set", "edgeAgent.endpoint=http://rw.example/api/v1/write")
	ds := find[*appsv1.DaemonSet](t, objs, "DaemonSet", "edgetel-edge-agent")
	pod := ds.Spec.Template.Spec
	require.NotNil(t, pod.SecurityContext.RunAsUser)
	assert.EqualValues(t, 10001, *pod.SecurityContext.RunAsUser)
	require.NotNil(t, pod.SecurityContext.RunAsNonRoot)
	assert.True(t, *pod.SecurityContext.RunAsNonRoot)
	agent := container(t, pod, "agent")
	assert.Nil(t, agent.SecurityContext.RunAsUser, "the agent inherits the pod's uid")
	assert.Equal(t, []corev1.Capability{"ALL"}, agent.SecurityContext.Capabilities.Drop)
	assert.Empty(t, agent.SecurityContext.Capabilities.Add)
	require.Len(t, pod.InitContainers, 1)
	init := pod.InitContainers[0]
	assert.Equal(t, []string{"chown", "-R", "10001:10001", "/var/lib/edgetel"}, init.Command)
	assert.Equal(t, []corev1.Capability{"CHOWN", "DAC_READ_SEARCH"}, init.SecurityContext.Capabilities.Add)
	assert.False(t, *init.SecurityContext.AllowPrivilegeEscalation)
}
