package reliability

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/edgetel/edgetel/bench/peers"
	"github.com/edgetel/edgetel/internal/testing/tlsutil"
)

// cloudcoreHost is the name the collector is given for cloudcore; only the test's DNS server
// knows it.
const cloudcoreHost = "cloudcore.edgetel.test"

// netnsEnv names the network namespace a test runs in (set for the re-executed test binary).
const netnsEnv = "EDGETEL_RELIABILITY_NETNS"

// The collector's cloudcore endpoint is a host name that real DNS first refuses to resolve
// (SERVFAIL) and later resolves to 127.0.0.1, with no change to the collector: every scrape in
// between fails and is counted as a dns failure, only the per-target synthetic series are
// delivered, the collector stays up with flat memory, the name is resolved again on every scrape
// (a failure is not cached), and once DNS answers scrapes succeed and are delivered.
//
// The whole test runs in a network namespace of its own with its own resolv.conf; see inNetns.
func TestCloudcoreDNSFailure(t *testing.T) {
	if !inNetns(t) {
		return
	}
	dns := startDNS(t, "127.0.0.1:53", cloudcoreHost)
	dir := t.TempDir()
	// edgesim's certificate must name the host the collector dials (it verifies the name).
	_, err := tlsutil.Ensure(filepath.Join(dir, "tls"), tlsutil.Options{
		Hosts: []string{cloudcoreHost, "127.0.0.1", "localhost"}, CommonName: "edgesim-ca"})
	require.NoError(t, err)
	env := newEnvIn(t, dir, 4)
	_, port, err := net.SplitHostPort(env.Sim.Addr())
	require.NoError(t, err)
	c := startCollector(t, env, "cloudcore", 0, func(p *peers.Params) { p.CloudcoreAddr = net.JoinHostPort(cloudcoreHost, port) })
	base := c.rss()
	scrapesPerInterval := 2 * len(env.Sim.Fleet().Nodes) // metrics and cadvisor of each node

	// DNS fails.
	wait(3 * interval)
	q1 := dns.refused.Load()
	wait(3 * interval)
	q2 := dns.refused.Load()
	require.Positive(t, q1, "the collector never asked the namespace's DNS server for %s", cloudcoreHost)
	assert.Greater(t, q2, q1, "the receiver stopped resolving %s after it failed: a failed resolution is cached", cloudcoreHost)
	m, err := c.metrics()
	require.NoError(t, err)
	scrapes, failures := named(m, "kubeedge_scrapes"), named(m, "kubeedge_scrape_failures")
	q3 := dns.refused.Load()
	t.Logf("while DNS fails: %v DNS queries refused, %v scrapes, failures %v", q3, scrapes, reasons(m, "kubeedge_scrape_failures"))
	assert.GreaterOrEqual(t, float64(q3), failures, "every failed scrape asked DNS again (no cached failure)")
	assert.GreaterOrEqual(t, scrapes, float64(3*scrapesPerInterval), "scrapes go on while DNS fails")
	assert.Equal(t, scrapes, failures, "every scrape fails while the name does not resolve")
	assert.Equal(t, failures, m[key(m, "kubeedge_scrape_failures")+"{reason=dns}"],
		"a name that does not resolve is a dns failure: %v", reasons(m, "kubeedge_scrape_failures"))
	assert.Zero(t, named(m, "kubeedge_samples"), "no node sample is scraped while DNS fails")
	a := c.drain(30 * time.Second)
	sinkGotAll(t, c)
	during := env.Sink.Names()
	assert.NotEmpty(t, during, "the per-target series (up = 0, ...) are delivered while DNS fails")
	for _, n := range during {
		assert.Contains(t, syntheticSeries, n, "only the receiver's per-target series may be delivered while DNS fails")
	}
	exited, _ := c.proc.Exited()
	require.False(t, exited, "the collector must survive DNS failures")
	boundedRSS(t, base, c.rss())

	// DNS answers; nothing about the collector changes.
	dns.answer.Store(true)
	require.Eventually(t, func() bool {
		m, err := c.metrics()
		return err == nil && named(m, "kubeedge_scrapes") > named(m, "kubeedge_scrape_failures")
	}, 3*interval+5*time.Second, 200*time.Millisecond, "no scrape succeeded after DNS started answering")
	wait(interval + interval/2) // every node past a scrape that began before DNS answered
	m1, err := c.metrics()
	require.NoError(t, err)
	wait(3 * interval)
	m2, err := c.metrics()
	require.NoError(t, err)
	dnsFailures := key(m, "kubeedge_scrape_failures") + "{reason=dns}"
	assert.Equal(t, m1[dnsFailures], m2[dnsFailures], "dns failures kept growing after DNS answered")
	ok1 := named(m1, "kubeedge_scrapes") - named(m1, "kubeedge_scrape_failures")
	ok2 := named(m2, "kubeedge_scrapes") - named(m2, "kubeedge_scrape_failures")
	assert.GreaterOrEqual(t, ok2-ok1, float64(2*scrapesPerInterval), "scrapes succeed once DNS answers")
	assert.Positive(t, named(m2, "kubeedge_samples"))
	assert.Positive(t, dns.answered.Load())
	a2 := c.drain(60 * time.Second)
	assert.Zero(t, a2.dropped)
	assert.Greater(t, a2.sent, a.sent)
	sinkGotAll(t, c)
	assert.Greater(t, len(env.Sink.Names()), len(during), "node data reaches the sink once DNS answers")
	t.Logf("after DNS answers: %v A answers, %v samples sent in all (%v before), %d metric names delivered (%d before)",
		dns.answered.Load(), a2.sent, a.sent, len(env.Sink.Names()), len(during))
	exited, _ = c.proc.Exited()
	require.False(t, exited)
	boundedRSS(t, base, c.rss())
}

// syntheticSeries are the series the receiver makes per node and target (healthText in
// receivers/kubeedgereceiver/loop.go), delivered even when every scrape fails.
var syntheticSeries = []string{
	"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
	"kubeedge_scrape_samples_dropped", "kubeedge_scrape_failures_total", "kubeedge_node_ready",
	"kubeedge_node_connected", "kubeedge_node_seconds_since_last_good_scrape", "kubeedge_node_disconnects_total",
}

// sinkGotAll waits for a moment when the sink holds exactly what the exporter counts as sent
// (scrapes go on, so a send may be in flight between the two readings).
func sinkGotAll(t *testing.T, c *collector) {
	t.Helper()
	var got int64
	var a accounts
	assert.Eventually(t, func() bool {
		got = c.env.Sink.Stats().Samples
		a = c.accounts()
		return float64(got) == a.sent
	}, 20*time.Second, 100*time.Millisecond, "the sink accepted %d samples, the exporter counted %v sent", got, a.sent)
}

// key is the name of the first metric ending in part (or part_total), without labels.
func key(m map[string]float64, part string) string {
	for k := range m {
		if !strings.Contains(k, "{") && strings.HasSuffix(strings.TrimSuffix(k, "_total"), part) {
			return k
		}
	}
	return ""
}

// named is the value of key(m, part): unlike counter, kubeedge_samples does not match
// kubeedge_samples_dropped.
func named(m map[string]float64, part string) float64 { return m[key(m, part)] }

// reasons lists the metric's values by reason.
func reasons(m map[string]float64, part string) map[string]float64 {
	out := map[string]float64{}
	name := key(m, part)
	if name == "" {
		return out
	}
	for k, v := range m {
		if r, ok := strings.CutPrefix(k, name+"{reason="); ok {
			out[strings.TrimSuffix(r, "}")] = v
		}
	}
	return out
}

// inNetns runs the calling test inside a network namespace it creates, and reports whether the
// caller is that run (true: go on with the test) or the outer one (false: return; the outcome
// is already reported).
//
// Why a re-execution: the collector must resolve through a DNS server the test controls, and
// edgesim, the sink and the collector's own metrics must be reachable from where the collector
// runs, all without touching the host's resolver or sending anything off loopback. `ip netns
// exec` gives a process a fresh loopback and bind-mounts /etc/netns/<ns>/resolv.conf over
// /etc/resolv.conf, and every child inherits both. So the outer test creates the namespace and
// the resolv.conf (pointing at 127.0.0.1, where the inner test's DNS server listens) and runs
// this test binary again under `ip netns exec` with only this test selected; in there the whole
// test (DNS server, edgesim, sink, the collector it starts, its metrics scrapes) shares one
// namespace and loopback, exactly like the other reliability tests on the host. Switching one
// locked thread with setns would leave the Go HTTP client (on any thread) and the collector's
// resolv.conf outside. The outer test removes the namespace and /etc/netns/<ns> even when the
// inner one fails or times out.
func inNetns(t *testing.T) bool {
	t.Helper()
	if ns := os.Getenv(netnsEnv); ns != "" {
		// Only ever set by the outer run below: make sure this really is that namespace.
		b, err := os.ReadFile("/etc/resolv.conf")
		require.NoError(t, err)
		require.Equal(t, resolvConf, string(b), "%s=%s but /etc/resolv.conf is not the namespace's", netnsEnv, ns)
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create a network namespace with its own resolv.conf (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: ip (iproute2) not installed (apt-get install -y iproute2)")
	}
	ns := fmt.Sprintf("etrel-%d", os.Getpid())
	ip(t, "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	etc := filepath.Join("/etc/netns", ns)
	_, err := os.Stat("/etc/netns")
	createdParent := errors.Is(err, fs.ErrNotExist)
	require.NoError(t, os.MkdirAll(etc, 0o755))
	t.Cleanup(func() {
		if err := os.RemoveAll(etc); err != nil {
			t.Errorf("removing %s: %v", etc, err)
		}
		if createdParent {
			os.Remove("/etc/netns") // only if empty: someone else may have added theirs since
		}
	})
	require.NoError(t, os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte(resolvConf), 0o644))
	ip(t, "-n", ns, "link", "set", "lo", "up")

	self, err := os.Executable()
	require.NoError(t, err)
	args := []string{"netns", "exec", ns, self, "-test.run=^" + t.Name() + "$", "-test.v", "-test.count=1"}
	if d, ok := t.Deadline(); ok {
		// The inner run times out first (with its goroutine dump) and the cleanups here still run.
		args = append(args, "-test.timeout="+max(time.Until(d)-15*time.Second, time.Second).Truncate(time.Second).String())
	}
	cmd := exec.Command("ip", args...)
	// The inner run uses this run's collector binary rather than building its own.
	cmd.Env = append(os.Environ(), netnsEnv+"="+ns, "EDGETEL_EDGETELCOL="+collectorBin)
	// Pdeathsig survives ip's exec of the test binary: a killed outer run takes the inner one along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	var passed, skipped bool
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		t.Log("netns " + ns + ": " + line)
		passed = passed || strings.HasPrefix(strings.TrimSpace(line), "--- PASS: "+t.Name()+" ")
		skipped = skipped || strings.HasPrefix(strings.TrimSpace(line), "--- SKIP: "+t.Name()+" ")
	}
	io.Copy(io.Discard, out)
	err = cmd.Wait()
	switch {
	case err != nil:
		t.Fatalf("%s failed inside network namespace %s: %v (its output is above)", t.Name(), ns, err)
	case skipped:
		t.Skipf("%s skipped itself inside network namespace %s (see above)", t.Name(), ns)
	case !passed:
		t.Fatalf("%s did not run inside network namespace %s (see above)", t.Name(), ns)
	}
	return false
}

// resolvConf sends every lookup to the test's DNS server, once, with a short timeout.
const resolvConf = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"

func ip(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	require.NoError(t, err, "ip %s: %s", strings.Join(args, " "), out)
}

// dnsServer is an authoritative-looking UDP DNS server for one name: SERVFAIL for every query
// until answer is set, then an A record 127.0.0.1 for the name (no AAAA) and NXDOMAIN for
// anything else.
type dnsServer struct {
	pc                net.PacketConn
	name              string // fully qualified, lower case
	answer            atomic.Bool
	refused, answered atomic.Int64 // queries for name answered SERVFAIL / with its A record
}

func startDNS(t *testing.T, addr, host string) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	require.NoError(t, err)
	d := &dnsServer{pc: pc, name: strings.ToLower(host) + "."}
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.serve()
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return d
}

func (d *dnsServer) serve() {
	buf := make([]byte, 4096)
	for {
		n, from, err := d.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp, err := d.reply(buf[:n]); err == nil {
			d.pc.WriteTo(resp, from)
		}
	}
}

func (d *dnsServer) reply(req []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, Authoritative: true,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	ours := strings.ToLower(q.Name.String()) == d.name
	withA := false
	switch {
	case !d.answer.Load():
		rh.RCode = dnsmessage.RCodeServerFailure
		if ours {
			d.refused.Add(1)
		}
	case !ours:
		rh.RCode = dnsmessage.RCodeNameError
	case q.Type == dnsmessage.TypeA:
		withA = true
		d.answered.Add(1)
	}
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if withA {
		if err := b.StartAnswers(); err != nil {
			return nil, err
		}
		rr := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 1}
		if err := b.AResource(rr, dnsmessage.AResource{A: [4]byte{127, 0, 0, 1}}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
