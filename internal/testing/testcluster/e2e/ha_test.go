package e2e

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/edgetel/edgetel/bench/harness"
	"github.com/edgetel/edgetel/internal/testing/testprog"
	"github.com/edgetel/edgetel/internal/testing/thanostest"
)

// The HA test's fleet and timing: 100 nodes scraped every haInterval by 2 shards × 2 replicas,
// then 3 shards. EDGETEL_HA_OUTAGE overrides how long the killed replicas stay away (default a
// minute, as the issue asks).
const (
	haNodes          = 100
	haInterval       = 5 * time.Second
	haReplicas       = 2
	haSteady         = 30 * time.Second
	haDefaultOutage  = time.Minute
	haMetric         = "resource_scrape_error" // one untimed sample per /metrics/resource body
	haResourcePath   = "/metrics/resource"
	haReplicaLabel   = "replica"
	haOldReplicaName = "shard" // the chart deduplicates on both (edgetel.replicaLabels)
)

const haCollectorConfig = `receivers:
  kubeedge:
    collection_interval: %[1]s
    scrape_timeout: %[2]s
    endpoints:
      metrics: {enabled: false}
      cadvisor: {enabled: false}
      resource: {enabled: true}
    shard:
      index: %[3]d
      replicas_per_shard: %[4]d
      statefulset: {name: %[5]s, namespace: %[6]s}
    discovery:
      mode: kubernetes
      kubernetes: {auth_type: kubeConfig, kubeconfig: %[7]s}
    transport:
      mode: apiserver
      apiserver: {auth_type: kubeConfig, kubeconfig: %[7]s}
exporters:
  objstore:
    directory: %[8]s
    bucket:
      type: FILESYSTEM
      config: {directory: %[9]s}
    block_duration: 1m
    upload_interval: 2s
    external_labels: {cluster: e2e, replica: "%[3]d"}
    head_api:
      endpoint: %[10]s
extensions:
  health_check:
    endpoint: %[11]s
service:
  extensions: [health_check]
  telemetry:
    metrics: {level: none}
  pipelines:
    metrics:
      receivers: [kubeedge]
      exporters: [objstore]
`

// haCollector is one collector pod: edgetelcol as a process, its Thanos sidecar (how the chart's
// Thanos Query reaches its head) and its addresses, which stay the same across restarts.
type haCollector struct {
	ordinal      int
	conf         string
	head, health string
	proc         *harness.Process
	sidecar      *thanostest.Process
}

type haRig struct {
	t         *testing.T
	bin, dir  string
	logs      string
	bucketDir string
	sts       statefulSetPlayer
	admin     kubernetes.Interface
	kube      string
	cols      map[int]*haCollector
}

func (r *haRig) collector(i int) *haCollector {
	t := r.t
	c := &haCollector{ordinal: i, head: thanostest.FreeAddr(t), health: thanostest.FreeAddr(t)}
	c.conf = filepath.Join(r.dir, fmt.Sprintf("collector-%d.yaml", i))
	require.NoError(t, os.WriteFile(c.conf, fmt.Appendf(nil, haCollectorConfig, haInterval, haInterval*4/5, i, haReplicas,
		collectorSet, Namespace, r.kube, filepath.Join(r.dir, fmt.Sprintf("collector-%d", i)), r.bucketDir, c.head, c.health), 0o600))
	c.sidecar = &thanostest.Process{HTTP: thanostest.FreeAddr(t), GRPC: thanostest.FreeAddr(t)}
	r.cols[i] = c
	return c
}

// start runs ordinal i's edgetelcol and, once its health check answers, plays the kubelet
// marking its pod Ready.
func (r *haRig) start(c *haCollector) {
	t := r.t
	p, err := harness.Start(fmt.Sprintf("edgetelcol-%d", c.ordinal), r.logs, filepath.Join(r.bin, "edgetelcol"), "--config="+c.conf)
	require.NoError(t, err)
	c.proc = p
	testprog.WaitOK(t, fmt.Sprintf("edgetelcol-%d", c.ordinal), "http://"+c.health+"/")
	r.sts.ready(c.ordinal)
}

// startSidecar runs the Thanos sidecar beside collector c (once: it outlives restarts of the
// collector, as a container of the same pod does).
func (r *haRig) startSidecar(c *haCollector) {
	thanostest.StartArgs(r.t, c.sidecar, "sidecar", "--http-address="+c.sidecar.HTTP, "--grpc-address="+c.sidecar.GRPC,
		"--prometheus.url=http://"+c.head, "--tsdb.path="+filepath.Join(r.dir, fmt.Sprintf("sidecar-%d", c.ordinal)))
}

// kill SIGKILLs collector c's process and plays the kubelet reporting its pod not Ready.
func (r *haRig) kill(c *haCollector) {
	require.NoError(r.t, c.proc.Kill())
	r.notReady(c.ordinal)
}

func (r *haRig) notReady(i int) {
	t := r.t
	ctx := context.Background()
	pods := r.admin.CoreV1().Pods(Namespace)
	pod, err := pods.Get(ctx, fmt.Sprintf("%s-%d", collectorSet, i), metav1.GetOptions{})
	require.NoError(t, err)
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.Now()}}
	_, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	require.NoError(t, err)
}

// TestHAReplicasAndReshardAnswerEveryRoundOnce is issue 32's first "Done when": edgesim's 100
// nodes behind the API server's node proxy, 2 shards × 2 replicas of edgetelcol (real processes,
// the shard count followed from the StatefulSet the test plays) writing 1-minute blocks to one
// FILESYSTEM bucket and serving their heads; edgetel-query and real Thanos Query (store gateway on
// the bucket, a sidecar per collector) deduplicating on `replica` and `shard` as the chart's do.
// One replica of each shard is SIGKILLed for a minute and restarted, then the fleet is
// resharded 2 → 3 live. Then, for every node, the rounds it was served in are counted exactly
// against the samples of each reader's deduplicated answer of a raw range selector: one sample
// per round, the same answer from both readers.
//
// A round is one scrape interval of one node. Every replica scrapes a node on its own fixed grid
// (the receiver's per-node offset from its start), so the phases of all replicas' samples of a
// node form a few clusters; the node's round boundary is put in the middle of the widest empty
// stretch between them, and each sample belongs to the round its timestamp falls in. The rounds
// served are those with a sample stored by any replica (Thanos Query with dedup=false), checked
// against what edgesim counted as served.
//
// Behind EDGETEL_HA_E2E: it runs for about four minutes, and it does not pass yet. Both readers
// deduplicate with Thanos' penalty algorithm, which skips the other replicas' samples for two
// intervals after the replica it follows stops (a SIGKILL, the old shard letting go of a moved
// node), and real Thanos Query also switches replicas at chunk boundaries (a round answered
// twice); edgetel-query and Thanos Query differ at the reshard.
func TestHAReplicasAndReshardAnswerEveryRoundOnce(t *testing.T) {
	thanostest.Bin(t)
	if os.Getenv("EDGETEL_HA_E2E") == "" {
		t.Skip("runs for about four minutes and fails until issue 32's deduplication keeps every round: set EDGETEL_HA_E2E=1")
	}
	outage := haDefaultOutage
	if v := os.Getenv("EDGETEL_HA_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "EDGETEL_HA_OUTAGE")
		outage = d
	}
	c := cluster(t)
	ctx := context.Background()
	admin, err := kubernetes.NewForConfig(c.Admin)
	require.NoError(t, err)
	sim, reg := startFleet(t, c, haNodes)
	require.NoError(t, reg.Register(ctx))
	names := nodeNames(sim)

	dir := t.TempDir()
	r := &haRig{t: t, bin: testprog.Commands(t, "edgetelcol", "edgetel-query"), dir: dir, logs: filepath.Join(dir, "logs"),
		bucketDir: filepath.Join(dir, "bucket"), admin: admin, kube: kubeconfigFor(t, c, "edgetel-collector"), cols: map[int]*haCollector{},
		sts: statefulSetPlayer{t: t, client: admin, labels: map[string]string{"app.kubernetes.io/component": "collector", "test": t.Name()}}}
	require.NoError(t, os.MkdirAll(r.bucketDir, 0o755))
	t.Cleanup(func() {
		for _, col := range r.cols {
			if col.proc != nil {
				_ = col.proc.Stop(20 * time.Second)
			}
		}
		if t.Failed() {
			for i := range r.cols {
				out, _ := os.ReadFile(filepath.Join(r.logs, fmt.Sprintf("edgetelcol-%d.log", i)))
				t.Logf("edgetelcol-%d log (tail):\n%s", i, tailString(string(out), 3000))
			}
		}
	})

	sts := r.sts
	sts.create(2 * haReplicas)
	for i := range 3 * haReplicas {
		r.collector(i)
	}
	first := time.Now()
	for i := range 2 * haReplicas {
		sts.createPod(i)
		r.start(r.cols[i])
	}
	for i := range 2 * haReplicas {
		r.startSidecar(r.cols[i])
	}

	// The readers, over every collector's head from the start (the third shard's answer once it
	// runs) and the bucket.
	query := thanostest.FreeAddr(t)
	args := []string{"--listen=" + query, "--bucket-dir=" + r.bucketDir, "--cache-dir=" + filepath.Join(dir, "query-cache"),
		"--sync-interval=5s", "--query.replica-label=" + haReplicaLabel, "--query.replica-label=" + haOldReplicaName}
	for i := range 3 * haReplicas {
		args = append(args, "--head.endpoint=http://"+r.cols[i].head)
	}
	eq, err := harness.Start("edgetel-query", r.logs, filepath.Join(r.bin, "edgetel-query"), args...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = eq.Stop(20 * time.Second) })
	testprog.WaitOK(t, "edgetel-query", "http://"+query+"/-/ready")
	bucketConf := filepath.Join(dir, "bucket.yaml")
	require.NoError(t, os.WriteFile(bucketConf, []byte("type: FILESYSTEM\nconfig: {directory: "+r.bucketDir+"}\n"), 0o600))
	store := thanostest.Start(t, "store", true, "--objstore.config-file="+bucketConf, "--data-dir="+filepath.Join(dir, "store"),
		"--sync-block-duration=10s")
	targs := []string{"--endpoint=" + store.GRPC, "--query.replica-label=" + haReplicaLabel, "--query.replica-label=" + haOldReplicaName}
	for i := range 3 * haReplicas {
		targs = append(targs, "--endpoint="+r.cols[i].sidecar.GRPC)
	}
	thanos := thanostest.Start(t, "query", true, targs...)

	var events []haEvent
	step := func(what string, d time.Duration) {
		events = append(events, haEvent{what, time.Now()})
		t.Logf("%s: %v (%s since the first collector started)", what, d, time.Since(first).Round(time.Second))
		time.Sleep(d)
	}
	step("2 shards × 2 replicas", haSteady)

	// One replica of each shard (ordinals 1 and 3) is killed, stays away, and comes back.
	r.kill(r.cols[1])
	r.kill(r.cols[3])
	step("ordinals 1 and 3 SIGKILLed", outage)
	r.start(r.cols[1])
	r.start(r.cols[3])
	step("ordinals 1 and 3 restarted", haSteady)

	// Reshard 2 → 3: spec.replicas 6, the controller creates pods 4 and 5 at once (Parallel), each
	// Ready once its collector answers.
	sts.scale(3 * haReplicas)
	for i := 2 * haReplicas; i < 3*haReplicas; i++ {
		sts.createPod(i)
		r.start(r.cols[i])
		r.startSidecar(r.cols[i])
	}
	moved := 0
	for _, n := range names {
		if ownerOf(n, 2) != ownerOf(n, 3) {
			moved++
		}
	}
	step(fmt.Sprintf("3 shards (%d of %d nodes move)", moved, len(names)), 2*haInterval+haSteady+haSteady)
	// edgesim stops serving (every scrape refused), so that what it served and what was stored
	// can be compared exactly. The round it stops in is left out: replicas that had not scraped
	// it yet were refused.
	sim.Pause(true)
	end := time.Now()
	time.Sleep(3 * time.Second)
	_, served := sim.Served()
	at := time.Now()

	window := model.Duration(at.Sub(first).Truncate(time.Second) + time.Minute)
	expr := fmt.Sprintf(`%s{job="kubeedge"}[%s]`, haMetric, window)
	raw := haQuery(t, "http://"+thanos.HTTP, expr, at, url.Values{"dedup": {"false"}, "partial_response": {"false"}})
	ours := haQuery(t, "http://"+query, expr, at, nil)
	theirs := haQuery(t, "http://"+thanos.HTTP, expr, at, url.Values{"partial_response": {"false"}})

	a := analyzeRounds(raw, map[string]model.Matrix{"edgetel-query": ours, "thanos-query": theirs}, end, events)
	// edgesim counts a sample without a timestamp every time it serves a body, one with a
	// timestamp once per step (the step does not move here: ManualStep).
	var servedBodies, storedBodies, lostAtKill int64
	for _, n := range names {
		timed, untimed := sampleLines(sim.Expected(n, haResourcePath))
		require.Positive(t, untimed, n)
		require.Zero(t, (served[n]-timed)%untimed, "%s: samples served are not whole bodies", n)
		bodies := (served[n] - timed) / untimed
		servedBodies += bodies
		storedBodies += int64(a.stored[n])
		lostAtKill += bodies - int64(a.stored[n])
		assert.LessOrEqual(t, int64(a.stored[n]), bodies, "%s: more samples stored than bodies served", n)
		assert.LessOrEqual(t, bodies-int64(a.stored[n]), int64(1), "%s: bodies served but not stored (only one in flight at a SIGKILL may be)", n)
	}
	t.Logf("edgesim served %d %s bodies (its own count of all bodies: %d); %d samples of %s stored by the collectors (all replicas, Thanos Query dedup=false); %d served but not stored",
		servedBodies, haResourcePath, sim.Stats().Bodies, storedBodies, haMetric, lostAtKill)
	kill, restart := events[1].at, events[2].at
	var unexpected []string
	gaps := replicaGaps(raw, func(from, to time.Time) bool {
		return !from.Before(kill.Add(-2*haInterval)) && !to.After(restart.Add(2*haInterval))
	})
	for _, g := range gaps {
		if !g.expected {
			unexpected = append(unexpected, g.String())
		}
	}
	t.Logf("gaps of more than 1.5 intervals inside one replica's series: %d, %d of them outside the killed replicas' outage", len(gaps), len(unexpected))
	assert.Empty(t, head(unexpected), "samples missing from a replica's series outside its outage")
	t.Logf("%d nodes, %d rounds served in all (%d–%d per node)", len(a.rounds), a.servedRounds, a.minRounds, a.maxRounds)
	for _, q := range []string{"edgetel-query", "thanos-query"} {
		res := a.readers[q]
		t.Logf("%s: %d samples answered for %d rounds served: %d rounds missing (%d nodes), %d rounds answered more than once (%d nodes)",
			q, res.answered, a.servedRounds, res.missing, len(res.missingNodes), res.doubled, len(res.doubledNodes))
		for _, e := range events {
			if c := res.byEvent[e.what]; c != [2]int{} {
				t.Logf("  %s: after %q: %d missing, %d doubled", q, e.what, c[0], c[1])
			}
		}
		for _, d := range head(res.details) {
			t.Logf("  %s: %s", q, d)
		}
		if res.first != "" {
			dumpNode(t, res.first, res.firstAt, raw, ours, theirs)
		}
	}
	assert.Len(t, a.rounds, haNodes, "nodes with samples")
	assert.Empty(t, head(a.unscraped), "rounds no collector scraped (a gap no reader can fill)")
	assert.Empty(t, head(a.replicaTwice), "a replica with two samples in one round: the rounds are not well defined")
	for _, q := range []string{"edgetel-query", "thanos-query"} {
		res := a.readers[q]
		assert.Zero(t, res.missing+res.doubled+res.outside, "%s: not exactly one sample per served round: %v", q, head(res.details))
	}
	diff := diffMatrices(ours, theirs)
	t.Logf("edgetel-query and thanos-query answers: %d series / %d series, %d differences", len(ours), len(theirs), len(diff))
	assert.Empty(t, head(diff), "edgetel-query and Thanos Query answer differently")
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func haQuery(t *testing.T, base, expr string, at time.Time, extra url.Values) model.Matrix {
	t.Helper()
	a, err := thanostest.Query(t, base, expr, at, extra)
	require.NoError(t, err, base)
	if len(a.Warnings) > 0 {
		t.Logf("%s warnings: %v", base, a.Warnings)
	}
	return a.Matrix
}

// sampleLines counts the sample lines of a Prometheus text body with and without their own
// timestamp.
func sampleLines(body []byte) (timed, untimed int64) {
	for _, l := range strings.Split(string(body), "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		rest := l
		if i := strings.LastIndexByte(l, '}'); i >= 0 {
			rest = l[i+1:]
		} else if i := strings.IndexByte(l, ' '); i >= 0 {
			rest = l[i:]
		}
		if len(strings.Fields(rest)) == 2 {
			timed++
		} else {
			untimed++
		}
	}
	return timed, untimed
}

type readerRounds struct {
	answered, missing, doubled, outside int
	missingNodes, doubledNodes          map[string]bool
	details                             []string
	byEvent                             map[string][2]int // missing, doubled rounds after each event
	first                               string            // a node with a missing or doubled round
	firstAt                             time.Time
}

// haEvent is a step of the test: what was done, and when.
type haEvent struct {
	what string
	at   time.Time
}

// eventOf is the last event at or before t.
func eventOf(events []haEvent, t time.Time) string {
	what := "start"
	for _, e := range events {
		if !e.at.After(t) {
			what = e.what
		}
	}
	return what
}

type roundAnalysis struct {
	rounds                  map[string]map[int64]bool // served rounds by node
	stored                  map[string]int            // samples stored by node, all replicas
	servedRounds            int
	minRounds, maxRounds    int
	unscraped, replicaTwice []string
	readers                 map[string]*readerRounds
}

// analyzeRounds counts, per node, the rounds served (raw: every replica's samples) against the
// samples of each deduplicated answer.
func analyzeRounds(raw model.Matrix, answers map[string]model.Matrix, end time.Time, events []haEvent) roundAnalysis {
	interval := haInterval.Milliseconds()
	// complete: the round ended before edgesim stopped serving.
	complete := func(k, b int64) bool { return (k+1)*interval+b <= end.UnixMilli() }
	byNode := map[string][]model.SampleStream{}
	for _, s := range raw {
		n := string(s.Metric["node"])
		byNode[n] = append(byNode[n], *s)
	}
	a := roundAnalysis{rounds: map[string]map[int64]bool{}, stored: map[string]int{}, readers: map[string]*readerRounds{}, minRounds: math.MaxInt}
	bounds := map[string]int64{}
	for n, streams := range byNode {
		var phases []int64
		for _, s := range streams {
			for _, p := range s.Values {
				phases = append(phases, int64(p.Timestamp)%interval)
			}
		}
		b := widestGapMiddle(phases, interval)
		bounds[n] = b
		rounds := map[int64]bool{}
		for _, s := range streams {
			seen := map[int64]bool{}
			for _, p := range s.Values {
				a.stored[n]++
				k := roundOf(int64(p.Timestamp), b, interval)
				if !complete(k, b) {
					continue
				}
				if seen[k] {
					a.replicaTwice = append(a.replicaTwice, fmt.Sprintf("%s %s round %d", n, s.Metric[haReplicaLabel], k))
				}
				seen[k], rounds[k] = true, true
			}
		}
		a.rounds[n] = rounds
		a.servedRounds += len(rounds)
		a.minRounds, a.maxRounds = min(a.minRounds, len(rounds)), max(a.maxRounds, len(rounds))
		ks := slices.Sorted(func(yield func(int64) bool) {
			for k := range rounds {
				if !yield(k) {
					return
				}
			}
		})
		for i := 1; i < len(ks); i++ {
			for k := ks[i-1] + 1; k < ks[i]; k++ {
				a.unscraped = append(a.unscraped, fmt.Sprintf("%s round %d (%s)", n, k, time.UnixMilli(k*interval+b).UTC().Format("15:04:05.000")))
			}
		}
	}
	for q, m := range answers {
		res := &readerRounds{missingNodes: map[string]bool{}, doubledNodes: map[string]bool{}, byEvent: map[string][2]int{}}
		a.readers[q] = res
		got := map[string]map[int64][]model.Time{}
		for _, s := range m {
			n := string(s.Metric["node"])
			if got[n] == nil {
				got[n] = map[int64][]model.Time{}
			}
			for _, p := range s.Values {
				k := roundOf(int64(p.Timestamp), bounds[n], interval)
				if !complete(k, bounds[n]) {
					continue
				}
				res.answered++
				got[n][k] = append(got[n][k], p.Timestamp)
			}
		}
		names := make([]string, 0, len(a.rounds))
		for n := range a.rounds {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			for k := range a.rounds[n] {
				start := time.UnixMilli(k*interval + bounds[n])
				c := res.byEvent[eventOf(events, start)]
				if len(got[n][k]) != 1 && (res.first == "" || start.Before(res.firstAt)) {
					res.first, res.firstAt = n, start
				}
				switch ts := got[n][k]; {
				case len(ts) == 0:
					c[0]++
					res.byEvent[eventOf(events, start)] = c
					res.missing++
					res.missingNodes[n] = true
					res.details = append(res.details, fmt.Sprintf("%s: round at %s missing", n, time.UnixMilli(k*interval+bounds[n]).UTC().Format("15:04:05.000")))
				case len(ts) > 1:
					c[1]++
					res.byEvent[eventOf(events, start)] = c
					res.doubled++
					res.doubledNodes[n] = true
					res.details = append(res.details, fmt.Sprintf("%s: round at %s answered %d times %v", n, time.UnixMilli(k*interval+bounds[n]).UTC().Format("15:04:05.000"), len(ts), ts))
				}
			}
			for k := range got[n] {
				if !a.rounds[n][k] {
					res.outside++
					res.details = append(res.details, fmt.Sprintf("%s: a sample in a round no replica stored", n))
				}
			}
		}
		for n := range got {
			if a.rounds[n] == nil {
				res.outside++
				res.details = append(res.details, fmt.Sprintf("unknown node %q", n))
			}
		}
		sort.Strings(res.details)
	}
	sort.Strings(a.unscraped)
	return a
}

func roundOf(ts, bound, interval int64) int64 {
	return int64(math.Floor(float64(ts-bound) / float64(interval)))
}

// widestGapMiddle returns the middle of the widest stretch of the circle [0, interval) without
// a phase in it.
func widestGapMiddle(phases []int64, interval int64) int64 {
	if len(phases) == 0 {
		return 0
	}
	slices.Sort(phases)
	best, at := phases[0]+interval-phases[len(phases)-1], phases[len(phases)-1]
	for i := 1; i < len(phases); i++ {
		if g := phases[i] - phases[i-1]; g > best {
			best, at = g, phases[i-1]
		}
	}
	return (at + best/2) % interval
}

// diffMatrices lists how two answers differ: series in one only, and samples that differ.
func diffMatrices(a, b model.Matrix) []string {
	index := func(m model.Matrix) map[string]map[model.Time]model.SampleValue {
		out := map[string]map[model.Time]model.SampleValue{}
		for _, s := range m {
			vs := map[model.Time]model.SampleValue{}
			for _, p := range s.Values {
				vs[p.Timestamp] = p.Value
			}
			out[s.Metric.String()] = vs
		}
		return out
	}
	ia, ib := index(a), index(b)
	var out []string
	for k, va := range ia {
		vb, ok := ib[k]
		if !ok {
			out = append(out, "only in the first: "+k)
			continue
		}
		for ts, v := range va {
			if w, ok := vb[ts]; !ok {
				out = append(out, fmt.Sprintf("%s @%s only in the first", k, ts.Time().UTC().Format("15:04:05.000")))
			} else if v != w && !(math.IsNaN(float64(v)) && math.IsNaN(float64(w))) {
				out = append(out, fmt.Sprintf("%s @%s: %v vs %v", k, ts, v, w))
			}
		}
		for ts := range vb {
			if _, ok := va[ts]; !ok {
				out = append(out, fmt.Sprintf("%s @%s only in the second", k, ts.Time().UTC().Format("15:04:05.000")))
			}
		}
	}
	for k := range ib {
		if _, ok := ia[k]; !ok {
			out = append(out, "only in the second: "+k)
		}
	}
	sort.Strings(out)
	return out
}

// dumpNode logs node n's samples around `around`: every replica's, and both deduplicated answers.
func dumpNode(t *testing.T, n string, around time.Time, raw, ours, theirs model.Matrix) {
	t.Helper()
	line := func(what string, s *model.SampleStream) {
		var ts []string
		for _, p := range s.Values {
			if d := p.Timestamp.Time().Sub(around); d > -30*time.Second && d < 30*time.Second {
				ts = append(ts, p.Timestamp.Time().UTC().Format("05.000"))
			}
		}
		t.Logf("    %s %-22s %s", n, what, strings.Join(ts, " "))
	}
	t.Logf("  %s around %s (seconds of each sample's minute):", n, around.UTC().Format("15:04:05.000"))
	for _, s := range raw {
		if string(s.Metric["node"]) == n {
			line("replica "+string(s.Metric[haReplicaLabel]), s)
		}
	}
	for what, m := range map[string]model.Matrix{"edgetel-query": ours, "thanos-query": theirs} {
		for _, s := range m {
			if string(s.Metric["node"]) == n {
				line(what, s)
			}
		}
	}
}

// haGap is a stretch of more than 1.5 intervals without a sample in one replica's series.
type haGap struct {
	node, replica string
	from, to      time.Time
	expected      bool
}

func (g haGap) String() string {
	return fmt.Sprintf("%s replica %s: %s → %s", g.node, g.replica, g.from.UTC().Format("15:04:05.000"), g.to.UTC().Format("15:04:05.000"))
}

// replicaGaps lists the gaps inside each replica's series; expected tells the ones the test
// caused (the replica was away).
func replicaGaps(raw model.Matrix, expected func(from, to time.Time) bool) []haGap {
	var out []haGap
	for _, s := range raw {
		for i := 1; i < len(s.Values); i++ {
			a, b := s.Values[i-1].Timestamp.Time(), s.Values[i].Timestamp.Time()
			if b.Sub(a) > haInterval*3/2 {
				out = append(out, haGap{string(s.Metric["node"]), string(s.Metric[haReplicaLabel]), a, b, expected(a, b)})
			}
		}
	}
	return out
}
