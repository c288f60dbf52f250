package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/tools/record"

	"github.com/edgetel/edgetel/internal/cmd/onboard/apis"
	"github.com/edgetel/edgetel/internal/cmd/onboard/policy"
)

// Whoever can write the IPTablesRules object must not be able to turn the agent's root DNAT
// rules against the control plane: hostile entries are refused, reported in the object's status
// and in metrics, and the valid rules stay in place and keep working.
func TestAgentRefusesHostileRulesInNetns(t *testing.T) {
	tp := newTopology(t, 4, "nft")
	tp.cloudcore(t, 10003)
	addOthers(t, tp)
	valid := rule(edgeIP, "10350", tp.ccIP, "10003")
	obj := desired(valid)
	u, err := apis.ToUnstructured(obj)
	require.NoError(t, err)
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{apis.GVR: apis.Kind + "List"})
	_, err = dyn.Resource(apis.GVR).Namespace("edgetel").Create(context.Background(), u, metav1.CreateOptions{})
	require.NoError(t, err)
	a := newAgent(t, tp, prometheus.NewRegistry(), func(c *Config) {
		c.Dynamic, c.Namespace, c.Name, c.Interval, c.Recorder = dyn, "edgetel", "edgetel-onboard", 200*time.Millisecond, record.NewFakeRecorder(100)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	reaches := func() bool { g, err := tp.dial(edgeIP + ":10350"); return err == nil && g == "cloudcore 10003" }
	require.Eventually(t, reaches, 5*time.Second, 50*time.Millisecond)
	validLine := "-A EDGETEL-ONBOARD -d 10.250.0.5/32 -p tcp -m tcp --dport 10350 -j DNAT --to-destination " + tp.ccIP + ":10003"

	hostile := map[string]apis.Rule{
		"loopback target":       rule("10.250.0.7", "10350", "127.0.0.1", "10003"),
		"port 6443":             rule("10.250.0.8", "6443", tp.ccIP, "10003"),
		"empty source":          rule("", "10350", tp.ccIP, "10003"),
		"API server's address":  rule(tp.apiIP, "10350", tp.ccIP, "10003"),
		"loopback match":        rule("127.0.0.1", "10350", tp.ccIP, "10003"),
		"link-local match":      rule("169.254.169.254", "10350", tp.ccIP, "10003"),
		"Service CIDR match":    rule("10.96.0.1", "10350", tp.ccIP, "10003"),
		"not cloudcore":         rule("10.250.0.9", "10350", "10.199.4.77", "10003"),
		"cloudcore, wrong port": rule("10.250.0.10", "10350", tp.ccIP, "22"),
	}
	obj.Spec.Rules = []apis.Rule{valid}
	for _, r := range hostile {
		obj.Spec.Rules = append(obj.Spec.Rules, r)
	}
	obj.ResourceVersion = ""
	u, err = apis.ToUnstructured(obj)
	require.NoError(t, err)
	cur, err := dyn.Resource(apis.GVR).Namespace("edgetel").Get(ctx, "edgetel-onboard", metav1.GetOptions{})
	require.NoError(t, err)
	u.SetResourceVersion(cur.GetResourceVersion())
	_, err = dyn.Resource(apis.GVR).Namespace("edgetel").Update(ctx, u, metav1.UpdateOptions{})
	require.NoError(t, err)

	// Status: this node's entry lists every refusal.
	var st apis.AgentStatus
	require.Eventually(t, func() bool {
		cur, err := dyn.Resource(apis.GVR).Namespace("edgetel").Get(ctx, "edgetel-onboard", metav1.GetOptions{})
		if err != nil {
			return false
		}
		o, err := apis.FromUnstructured(cur)
		require.NoError(t, err)
		st = o.Status.Agents["master-1"]
		return len(st.Refused) == len(hostile)
	}, 5*time.Second, 50*time.Millisecond, "status.agents[master-1] never listed the refusals: %+v", st)
	assert.Equal(t, 1, st.Rules)
	refused := strings.Join(st.Refused, "\n")
	for _, want := range []string{"target 127.0.0.1:10003 is loopback", "match port 6443 is outside", "empty match would redirect every destination",
		"match address " + tp.apiIP + " is the API server's address", "match address 127.0.0.1 is loopback", "169.254.169.254 is link-local",
		"10.96.0.1 is the Service CIDR", "target 10.199.4.77:10003 is not a ready cloudcore stream endpoint", "target " + tp.ccIP + ":22 is not"} {
		assert.Contains(t, refused, want)
	}

	// Metrics, by reason.
	assert.Equal(t, float64(len(hostile)), testutil.ToFloat64(a.m.invalid))
	assert.Equal(t, 1.0, testutil.ToFloat64(a.m.refused.WithLabelValues(policy.ReasonEmptyMatch)))
	assert.Equal(t, 1.0, testutil.ToFloat64(a.m.refused.WithLabelValues(policy.ReasonPort)))
	assert.Equal(t, 4.0, testutil.ToFloat64(a.m.refused.WithLabelValues(policy.ReasonAddress)))
	assert.Equal(t, 3.0, testutil.ToFloat64(a.m.refused.WithLabelValues(policy.ReasonTarget)))

	// iptables: exactly the valid rule, still working; nothing of the hostile ones.
	save := tp.ipt(t, "iptables-save", "-t", "nat")
	var ours []string
	for _, l := range strings.Split(save, "\n") {
		if strings.HasPrefix(l, "-A EDGETEL-ONBOARD ") {
			ours = append(ours, l)
		}
	}
	assert.Equal(t, []string{validLine}, ours, "only the valid rule is in the agent's chain")
	assert.True(t, reaches(), "the valid rule still works")
	requireOthers(t, tp)
}

// A -chain naming an existing chain that is not the agent's is refused at start: the agent
// would flush it, and on uninstall delete it.
func TestAgentRefusesForeignChainInNetns(t *testing.T) {
	tp := newTopology(t, 5, "nft")
	addOthers(t, tp)
	tp.ipt(t, "iptables", "-t", "nat", "-N", "SITE-DNAT")
	tp.ipt(t, "iptables", "-t", "nat", "-A", "SITE-DNAT", "-p", "tcp", "--dport", "8443", "-j", "DNAT", "--to-destination", "10.1.1.1:443")
	tp.ipt(t, "iptables", "-t", "nat", "-A", "PREROUTING", "-j", "SITE-DNAT")
	before := tp.ipt(t, "iptables-save", "-t", "nat")

	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{apis.GVR: apis.Kind + "List"})
	a := newAgent(t, tp, prometheus.NewRegistry(), func(c *Config) {
		c.Chain, c.Dynamic, c.Namespace, c.Name = "SITE-DNAT", dyn, "edgetel", "edgetel-onboard"
	})
	err := a.Run(context.Background())
	require.ErrorContains(t, err, "nat chain SITE-DNAT exists and is not ours")
	require.ErrorContains(t, a.Uninstall(context.Background()), "choose another -chain")
	assert.Equal(t, stripCounters(before), stripCounters(tp.ipt(t, "iptables-save", "-t", "nat")), "nothing changed")

	// An existing chain of our own shape (an earlier agent's) is ours.
	tp.ipt(t, "iptables", "-t", "nat", "-N", "EDGETEL-ONBOARD")
	tp.ipt(t, "iptables", "-t", "nat", "-A", "EDGETEL-ONBOARD", "-p", "tcp", "--dport", "10351", "-j", "DNAT", "--to-destination", "10.0.0.5:10003")
	tp.ipt(t, "iptables", "-t", "nat", "-I", "OUTPUT", "-m", "comment", "--comment", JumpComment, "-j", "EDGETEL-ONBOARD")
	ours := newAgent(t, tp, prometheus.NewRegistry(), nil)
	require.NoError(t, ours.Claim(context.Background()))

	for _, name := range []string{"OUTPUT", "PREROUTING", "KUBE-SERVICES", "TUNNEL-PORT", "X\n-A OUTPUT -j DROP", ""} {
		_, err := New(Config{Chain: name, IPTables: ours.cfg.IPTables})
		if name == "" {
			require.NoError(t, err, "empty means the default chain")
			continue
		}
		require.Error(t, err, "%q", name)
	}
}

func stripCounters(save string) string {
	var out []string
	for _, l := range strings.Split(save, "\n") {
		if !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// While another program (kube-proxy, a CNI) holds the xtables lock, the agent waits for it
// instead of failing (iptables-restore -w).
func TestRestoreWaitsForXtablesLock(t *testing.T) {
	tp := newTopology(t, 6, "legacy")
	addOthers(t, tp) // so auto-detection picks legacy, the backend that takes the lock
	a := newAgent(t, tp, prometheus.NewRegistry(), nil)
	require.Equal(t, "legacy", a.cfg.IPTables.Mode)
	f, err := os.OpenFile("/run/xtables.lock", os.O_CREATE|os.O_RDWR, 0o600)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, unix.Flock(int(f.Fd()), unix.LOCK_EX))
	locked := true
	defer func() {
		if locked {
			_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		}
	}()
	done := make(chan error, 1)
	go func() {
		_, err := a.Check(context.Background(), desired(rule(edgeIP, "10350", tp.ccIP, "10003")))
		done <- err
	}()
	// Wait until iptables-legacy-restore runs (and blocks on the lock).
	require.Eventually(t, func() bool { return running("iptables-legacy-restore") }, 10*time.Second, 20*time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the restore finished while another program held the xtables lock: %v", err)
	default:
	}
	require.NoError(t, unix.Flock(int(f.Fd()), unix.LOCK_UN))
	locked = false
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("the restore did not finish after the lock was released")
	}
	assert.Contains(t, tp.ipt(t, "iptables-save", "-t", "nat"), "--dport 10350 -j DNAT")
	requireOthers(t, tp)
}

// running reports whether a process whose command line starts with name exists.
func running(name string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		argv := strings.Split(string(b), "\x00")
		for _, arg := range argv {
			if filepath.Base(arg) == name {
				return true
			}
		}
	}
	return false
}
