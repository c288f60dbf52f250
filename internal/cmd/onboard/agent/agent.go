package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/edgetel/edgetel/internal/cmd/onboard/apis"
	"github.com/edgetel/edgetel/internal/cmd/onboard/policy"
)

// DefaultChain is the nat chain the agent owns.
const DefaultChain = "EDGETEL-ONBOARD"

// Config is what the agent needs.
type Config struct {
	IPTables IPTables
	Chain    string
	// NodeName is the host the agent runs on, for events.
	NodeName string
	Dynamic  dynamic.Interface
	// Namespace and Name locate the IPTablesRules object.
	Namespace string
	Name      string
	// Interval is how often the rules are re-checked against iptables-save.
	Interval time.Duration
	Recorder record.EventRecorder
	Logger   *slog.Logger
	Registry prometheus.Registerer
	// Policy returns the DNAT policy each check applies (cloudcore's endpoints, the port range,
	// the addresses never to match). Nil refuses every rule.
	Policy func() policy.Policy
}

type metrics struct {
	checks  *prometheus.CounterVec
	drift   prometheus.Counter
	repairs prometheus.Counter
	rules   prometheus.Gauge
	invalid prometheus.Gauge
	refused *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgetel_onboard_agent_checks_total",
			Help: "Rule checks against iptables-save, by result (in_sync, applied, repaired, error)."}, []string{"result"}),
		drift: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgetel_onboard_agent_drift_total",
			Help: "Checks that found the agent's chain or jumps changed by someone else."}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgetel_onboard_agent_repairs_total",
			Help: "Drifted rule sets restored."}),
		rules: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgetel_onboard_agent_rules",
			Help: "DNAT rules in the agent's chain after the last successful check."}),
		invalid: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgetel_onboard_agent_invalid_rules",
			Help: "Rules of the IPTablesRules object the agent refused to apply."}),
		refused: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "edgetel_onboard_agent_refused_rules",
			Help: "Rules the last check refused, by reason (malformed, empty_match, match_address, match_port, target)."}, []string{"reason"}),
	}
	for _, r := range []string{policy.ReasonMalformed, policy.ReasonEmptyMatch, policy.ReasonAddress, policy.ReasonPort, policy.ReasonTarget} {
		m.refused.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{m.checks, m.drift, m.repairs, m.rules, m.invalid, m.refused} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering agent metrics: %w", err)
		}
	}
	return m, nil
}

// Agent keeps the host's chain equal to the desired rules.
type Agent struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	mu sync.Mutex
	// prev is the rule set the last successful check left in place; ok says there was one.
	// iptables-save differing from it while the desired rules stayed the same is drift.
	prev   []string
	prevOK bool
}

// New checks cfg and registers the metrics.
func New(cfg Config) (*Agent, error) {
	if cfg.Chain == "" {
		cfg.Chain = DefaultChain
	}
	if err := validChain(cfg.Chain); err != nil {
		return nil, err
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Recorder == nil {
		cfg.Recorder = &record.FakeRecorder{}
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	return &Agent{cfg: cfg, log: cfg.Logger.With("component", "rules-agent", "backend", cfg.IPTables.Mode), m: m}, nil
}

// Result is what one check did.
type Result struct {
	Drift   bool
	Changed bool
	Rules   int
	Invalid []error
}

// Check compares the chain with desired (nil removes the chain) and restores it if they differ.
func (a *Agent) Check(ctx context.Context, desired *apis.IPTablesRules) (Result, error) {
	res, err := a.check(ctx, desired)
	switch {
	case err != nil:
		a.m.checks.WithLabelValues("error").Inc()
	case res.Drift:
		a.m.checks.WithLabelValues("repaired").Inc()
	case res.Changed:
		a.m.checks.WithLabelValues("applied").Inc()
	default:
		a.m.checks.WithLabelValues("in_sync").Inc()
	}
	return res, err
}

func (a *Agent) check(ctx context.Context, desired *apis.IPTablesRules) (Result, error) {
	save, err := a.cfg.IPTables.SaveNAT(ctx)
	if err != nil {
		return Result{}, err
	}
	o := parseSave(save, a.cfg.Chain)
	if desired == nil {
		if !o.chainExists && len(o.jumps) == 0 {
			return Result{}, nil
		}
		if err := a.cfg.IPTables.RestoreNoFlush(ctx, cleanupInput(o, a.cfg.Chain)); err != nil {
			return Result{}, fmt.Errorf("removing chain %s: %w", a.cfg.Chain, err)
		}
		a.log.Info("no IPTablesRules object: removed chain and jumps", "chain", a.cfg.Chain)
		a.m.rules.Set(0)
		a.mu.Lock()
		a.prev, a.prevOK = nil, false
		a.mu.Unlock()
		return Result{Changed: true}, nil
	}
	want, invalid := a.lines(desired.Spec.Rules)
	a.m.invalid.Set(float64(len(invalid)))
	a.countRefused(invalid)
	res := Result{Rules: len(want), Invalid: invalid}
	a.mu.Lock()
	defer a.mu.Unlock()
	if o.inSync(a.cfg.Chain, want) {
		a.m.rules.Set(float64(len(want)))
		a.prev, a.prevOK = want, true
		return res, nil
	}
	res.Drift = a.prevOK && equal(a.prev, want)
	if err := a.cfg.IPTables.RestoreNoFlush(ctx, restoreInput(o, a.cfg.Chain, want)); err != nil {
		return res, fmt.Errorf("applying %d rules to chain %s: %w", len(want), a.cfg.Chain, err)
	}
	res.Changed = true
	a.prev, a.prevOK = want, true
	a.m.rules.Set(float64(len(want)))
	if res.Drift {
		a.m.drift.Inc()
		a.m.repairs.Inc()
	}
	return res, nil
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (a *Agent) lines(rules []apis.Rule) ([]string, []error) {
	var want []string
	var invalid []error
	seen := map[string]bool{}
	var pol policy.Policy
	if a.cfg.Policy != nil {
		pol = a.cfg.Policy()
	}
	for _, r := range rules {
		line, err := RuleLine(a.cfg.Chain, r)
		if err == nil {
			err = pol.Check(r)
		}
		if err != nil {
			invalid = append(invalid, fmt.Errorf("rule %s: %w", describe(r), err))
			continue
		}
		if !seen[line] {
			seen[line] = true
			want = append(want, line)
		}
	}
	return want, invalid
}

func (a *Agent) countRefused(invalid []error) {
	n := map[string]int{}
	for _, err := range invalid {
		n[policy.Reason(err)]++
	}
	for _, r := range []string{policy.ReasonMalformed, policy.ReasonEmptyMatch, policy.ReasonAddress, policy.ReasonPort, policy.ReasonTarget} {
		a.m.refused.WithLabelValues(r).Set(float64(n[r]))
	}
}

// describe names a rule in messages without echoing its fields wholesale.
func describe(r apis.Rule) string {
	s := fmt.Sprintf("%q:%q -> %q:%q", r.SourceIP, r.SourcePort, r.DestinationIP, r.DestinationPort)
	if r.Node != "" {
		s += fmt.Sprintf(" (node %q)", r.Node)
	}
	return s
}

// Uninstall removes the chain and the jumps to it, and nothing else. A chain that is not the
// agent's is left alone.
func (a *Agent) Uninstall(ctx context.Context) error {
	if err := a.Claim(ctx); err != nil {
		return err
	}
	_, err := a.check(ctx, nil)
	return err
}

// Run watches the IPTablesRules object and checks the rules on every change and every
// Interval, until ctx ends. It leaves the rules in place on exit: a restarting agent must not
// cut the API server off from edge nodes. Uninstall removes them.
func (a *Agent) Run(ctx context.Context) error {
	if a.cfg.Dynamic == nil || a.cfg.Namespace == "" || a.cfg.Name == "" {
		return errors.New("agent: dynamic client, namespace and name are required")
	}
	if err := a.Claim(ctx); err != nil {
		return err
	}
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(a.cfg.Dynamic, 0, a.cfg.Namespace,
		func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", a.cfg.Name).String()
		})
	inf := f.ForResource(apis.GVR).Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(_, _ any) { notify() },
		DeleteFunc: func(any) { notify() },
	}); err != nil {
		return fmt.Errorf("agent: adding event handler: %w", err)
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("agent: cache did not sync: %w", ctx.Err())
	}
	ticker := time.NewTicker(a.cfg.Interval)
	defer ticker.Stop()
	for {
		a.pass(ctx, inf.GetStore())
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-changed:
		}
	}
}

func (a *Agent) pass(ctx context.Context, store cache.Store) {
	var desired *apis.IPTablesRules
	if item, ok, _ := store.GetByKey(a.cfg.Namespace + "/" + a.cfg.Name); ok {
		obj, err := apis.FromUnstructured(item.(*unstructured.Unstructured))
		if err != nil {
			a.log.Error("IPTablesRules object unreadable; rules left as they are", "error", err)
			return
		}
		desired = obj
	}
	res, err := a.Check(ctx, desired)
	if desired == nil {
		if err != nil {
			a.log.Error("removing rules failed", "error", err)
		}
		return
	}
	a.report(desired, res, err)
	a.reportStatus(ctx, desired, res, err)
}

// reportStatus writes this node's entry of status.agents when it changed. A merge patch on the
// status subresource touches that entry only: other agents' entries and the controller's
// conditions stay as they are.
func (a *Agent) reportStatus(ctx context.Context, obj *apis.IPTablesRules, res Result, err error) {
	st := apis.AgentStatus{ObservedGeneration: obj.Generation, Rules: res.Rules}
	for _, e := range res.Invalid {
		st.Refused = append(st.Refused, e.Error())
	}
	if err != nil {
		st.Error = err.Error()
	}
	if old, ok := obj.Status.Agents[a.cfg.NodeName]; ok && reflect.DeepEqual(old, st) {
		return
	}
	// Fields left out of a merge patch keep their old value: send null for the empty ones.
	entry := map[string]any{"observedGeneration": st.ObservedGeneration, "rules": st.Rules, "refused": nil, "error": nil}
	if len(st.Refused) > 0 {
		entry["refused"] = st.Refused
	}
	if st.Error != "" {
		entry["error"] = st.Error
	}
	patch, merr := json.Marshal(map[string]any{"status": map[string]any{"agents": map[string]any{a.cfg.NodeName: entry}}})
	if merr != nil {
		return
	}
	if _, perr := a.cfg.Dynamic.Resource(apis.GVR).Namespace(obj.Namespace).Patch(ctx, obj.Name, types.MergePatchType, patch,
		metav1.PatchOptions{}, "status"); perr != nil {
		a.log.Warn("reporting in the object's status failed", "error", perr)
	}
}

func (a *Agent) report(obj *apis.IPTablesRules, res Result, err error) {
	u, cerr := apis.ToUnstructured(obj)
	if cerr != nil {
		return
	}
	switch {
	case err != nil:
		a.log.Error("applying rules failed", "error", err)
		a.cfg.Recorder.Event(u, corev1.EventTypeWarning, "ApplyFailed", fmt.Sprintf("node %s: %v", a.cfg.NodeName, err))
	case res.Drift:
		a.log.Warn("rules drifted and were repaired", "rules", res.Rules)
		a.cfg.Recorder.Event(u, corev1.EventTypeWarning, "DriftRepaired",
			fmt.Sprintf("node %s: chain %s or its jumps were changed outside the agent; %d rules restored", a.cfg.NodeName, a.cfg.Chain, res.Rules))
	case res.Changed:
		a.log.Info("rules applied", "rules", res.Rules)
		a.cfg.Recorder.Event(u, corev1.EventTypeNormal, "RulesApplied", fmt.Sprintf("node %s: %d rules in chain %s", a.cfg.NodeName, res.Rules, a.cfg.Chain))
	}
	if len(res.Invalid) > 0 && (res.Changed || err != nil) {
		a.cfg.Recorder.Event(u, corev1.EventTypeWarning, "InvalidRules",
			fmt.Sprintf("node %s: %d rules refused: %v", a.cfg.NodeName, len(res.Invalid), errors.Join(res.Invalid...)))
	}
}
