package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersdiscoveryv1 "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/edgetel/edgetel/internal/cmd/onboard/apis"
	"github.com/edgetel/edgetel/internal/cmd/onboard/policy"
	"github.com/edgetel/edgetel/internal/kube"
)

// Config is what the rules controller needs.
type Config struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	// Recorder receives events about the IPTablesRules object.
	Recorder record.EventRecorder
	Logger   *slog.Logger
	Model    apis.Model
	// KubeEdgeNamespace holds cloudcore's Service and the tunnelport ConfigMap ("kubeedge").
	KubeEdgeNamespace string
	// CloudcoreService is the Service whose EndpointSlices list the cloudcore replicas.
	CloudcoreService string
	// StreamPort is used when the EndpointSlices have no port named "cloudstream".
	StreamPort int
	// EdgeNodeSelector selects edge nodes (default: kube.DefaultEdgeSelector, the nodes cloudcore
	// tunnels, so the collector and the rules see the same edge nodes).
	EdgeNodeSelector string
	// Namespace and Name locate the IPTablesRules object the controller owns.
	Namespace string
	Name      string
	Resync    time.Duration
	// Registry receives the controller's metrics; nil keeps them private.
	Registry prometheus.Registerer
	// Policy is the operator's part of the DNAT policy: the kubelet/tunnel port range and the
	// ranges never matched (Service CIDR, API server addresses). Empty Ports means
	// policy.DefaultPorts.
	Policy policy.Policy
}

func (c *Config) validate() error {
	var errs []error
	if c.Client == nil || c.Dynamic == nil {
		errs = append(errs, errors.New("rules controller: Kubernetes clients are required"))
	}
	if c.Model != apis.ModelEdgeIP && c.Model != apis.ModelTunnelPort {
		errs = append(errs, fmt.Errorf("rules controller: model %q: want %s or %s", c.Model, apis.ModelEdgeIP, apis.ModelTunnelPort))
	}
	if c.KubeEdgeNamespace == "" || c.CloudcoreService == "" || c.Namespace == "" || c.Name == "" {
		errs = append(errs, errors.New("rules controller: kubeedge namespace, cloudcore service, and the IPTablesRules namespace and name are required"))
	}
	if !validPort(c.StreamPort) {
		errs = append(errs, fmt.Errorf("rules controller: stream port %d out of range", c.StreamPort))
	}
	if _, err := labels.Parse(c.EdgeNodeSelector); err != nil {
		errs = append(errs, fmt.Errorf("rules controller: edge node selector: %w", err))
	}
	return errors.Join(errs...)
}

// Controller keeps the IPTablesRules object equal to the rules computed from edge nodes,
// cloudcore endpoints and the tunnelport record. Every event enqueues the one object's key.
type Controller struct {
	cfg       Config
	log       *slog.Logger
	queue     workqueue.TypedRateLimitingInterface[string]
	nodes     listerscorev1.NodeLister
	slices    listersdiscoveryv1.EndpointSliceLister
	configMap listerscorev1.ConfigMapLister
	starters  []interface{ Start(<-chan struct{}) }
	synced    []cache.InformerSynced
	syncs     *prometheus.CounterVec
	desired   prometheus.Gauge
	refused   prometheus.Gauge
	edge      labels.Selector
}

// NewController builds the informers; nothing runs until Run.
func NewController(cfg Config) (*Controller, error) {
	if cfg.EdgeNodeSelector == "" {
		cfg.EdgeNodeSelector = kube.DefaultEdgeSelector
	}
	if cfg.StreamPort == 0 {
		cfg.StreamPort = DefaultStreamPort
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if len(cfg.Policy.Ports) == 0 {
		cfg.Policy.Ports, _ = policy.ParsePorts(policy.DefaultPorts)
	}
	edge, _ := labels.Parse(cfg.EdgeNodeSelector)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Recorder == nil {
		cfg.Recorder = &record.FakeRecorder{}
	}
	c := &Controller{
		cfg: cfg,
		log: cfg.Logger.With("controller", "iptablesrules"),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "iptablesrules"}),
		edge: edge,
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	c.syncs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edgetel_onboard_rules_syncs_total",
		Help: "Rules controller syncs by result (ok, error)."}, []string{"result"})
	c.desired = prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgetel_onboard_rules_desired",
		Help: "Rules in the IPTablesRules object after the last sync."})
	c.refused = prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgetel_onboard_rules_refused",
		Help: "Rules derived from edge nodes' status that the last sync refused under the DNAT policy."})
	for _, col := range []prometheus.Collector{c.syncs, c.desired, c.refused} {
		if err := cfg.Registry.Register(col); err != nil {
			return nil, fmt.Errorf("rules controller metrics: %w", err)
		}
	}
	// Every node, not only edge nodes: a rule must never match a cloud node's address.
	nodeF := informers.NewSharedInformerFactoryWithOptions(cfg.Client, cfg.Resync)
	sliceF := informers.NewSharedInformerFactoryWithOptions(cfg.Client, cfg.Resync, informers.WithNamespace(cfg.KubeEdgeNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = discoveryv1.LabelServiceName + "=" + cfg.CloudcoreService
		}))
	cmF := informers.NewSharedInformerFactoryWithOptions(cfg.Client, cfg.Resync, informers.WithNamespace(cfg.KubeEdgeNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", TunnelPortConfigMap).String()
		}))
	crF := dynamicinformer.NewFilteredDynamicSharedInformerFactory(cfg.Dynamic, cfg.Resync, cfg.Namespace,
		func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", cfg.Name).String()
		})

	nodeInf := nodeF.Core().V1().Nodes()
	sliceInf := sliceF.Discovery().V1().EndpointSlices()
	cmInf := cmF.Core().V1().ConfigMaps()
	crInf := crF.ForResource(apis.GVR)
	c.nodes, c.slices, c.configMap = nodeInf.Lister(), sliceInf.Lister(), cmInf.Lister()
	for _, inf := range []cache.SharedIndexInformer{nodeInf.Informer(), sliceInf.Informer(), cmInf.Informer(), crInf.Informer()} {
		if _, err := inf.AddEventHandler(c.handler()); err != nil {
			return nil, fmt.Errorf("rules controller: adding event handler: %w", err)
		}
		c.synced = append(c.synced, inf.HasSynced)
	}
	c.starters = []interface{ Start(<-chan struct{}) }{nodeF, sliceF, cmF, crF}
	return c, nil
}

func (c *Controller) key() string { return c.cfg.Namespace + "/" + c.cfg.Name }

// handler enqueues the single key on every change: the rules depend on the whole set.
func (c *Controller) handler() cache.ResourceEventHandler {
	enqueue := func(any) { c.queue.Add(c.key()) }
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, n any) { enqueue(n) },
		DeleteFunc: enqueue,
	}
}

// Run starts the informers and one worker, and returns when ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer c.queue.ShutDown()
	for _, s := range c.starters {
		s.Start(ctx.Done())
	}
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return fmt.Errorf("rules controller: caches did not sync: %w", ctx.Err())
	}
	c.queue.Add(c.key())
	go func() {
		<-ctx.Done()
		c.queue.ShutDown()
	}()
	for c.next(ctx) {
	}
	return nil
}

func (c *Controller) next(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if err := c.Sync(ctx); err != nil {
		c.syncs.WithLabelValues("error").Inc()
		c.log.Warn("sync failed, retrying", "key", key, "retries", c.queue.NumRequeues(key), "error", err)
		c.queue.AddRateLimited(key)
		return true
	}
	c.syncs.WithLabelValues("ok").Inc()
	c.queue.Forget(key)
	return true
}

// Sync computes the desired rules from the informer caches and writes them, with the status,
// to the IPTablesRules object. It is idempotent: a second call with no change writes nothing.
func (c *Controller) Sync(ctx context.Context) error {
	in, recErr, err := c.input()
	if err != nil {
		return err
	}
	res, err := Desired(in)
	if err != nil {
		return err
	}
	c.refused.Set(float64(res.Refused))
	obj, created, err := c.getOrCreate(ctx, in.Model, res.Rules, recErr)
	if err != nil {
		return err
	}
	// A broken tunnelport record must not wipe rules that work: keep the old spec.
	if recErr == nil && !created && (obj.Spec.Model != in.Model || !reflect.DeepEqual(nonNil(obj.Spec.Rules), nonNil(res.Rules))) {
		obj.Spec = apis.Spec{Model: in.Model, Rules: nonNil(res.Rules)}
		if obj, err = c.update(ctx, obj); err != nil {
			return err
		}
		c.event(obj, corev1.EventTypeNormal, "RulesUpdated", fmt.Sprintf("%d %s rules", len(res.Rules), in.Model))
	}
	return c.updateStatus(ctx, obj, res, recErr)
}

func nonNil(r []apis.Rule) []apis.Rule {
	if r == nil {
		return []apis.Rule{}
	}
	return r
}

func (c *Controller) input() (Input, error, error) {
	all, err := c.nodes.List(labels.Everything())
	if err != nil {
		return Input{}, nil, fmt.Errorf("listing nodes: %w", err)
	}
	var nodes, cloud []*corev1.Node
	for _, n := range all {
		if c.edge.Matches(labels.Set(n.Labels)) {
			nodes = append(nodes, n)
		} else {
			cloud = append(cloud, n)
		}
	}
	slices, err := c.slices.EndpointSlices(c.cfg.KubeEdgeNamespace).List(labels.Everything())
	if err != nil {
		return Input{}, nil, fmt.Errorf("listing cloudcore endpoint slices: %w", err)
	}
	cm, err := c.configMap.ConfigMaps(c.cfg.KubeEdgeNamespace).Get(TunnelPortConfigMap)
	if err != nil && !apierrors.IsNotFound(err) {
		return Input{}, nil, fmt.Errorf("reading tunnelport ConfigMap: %w", err)
	}
	rec, recErr := ParseTunnelPortRecord(cm)
	return Input{Model: c.cfg.Model, Nodes: nodes, CloudNodes: cloud, Cloudcores: CloudcoresFromSlices(slices, c.cfg.StreamPort),
		Record: rec, Policy: c.cfg.Policy}, recErr, nil
}

func (c *Controller) getOrCreate(ctx context.Context, model apis.Model, rules []apis.Rule, recErr error) (*apis.IPTablesRules, bool, error) {
	ri := c.cfg.Dynamic.Resource(apis.GVR).Namespace(c.cfg.Namespace)
	u, err := ri.Get(ctx, c.cfg.Name, metav1.GetOptions{})
	if err == nil {
		obj, err := apis.FromUnstructured(u)
		if err != nil {
			return nil, false, fmt.Errorf("decoding IPTablesRules %s: %w", c.key(), err)
		}
		return obj, false, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, false, fmt.Errorf("reading IPTablesRules %s: %w", c.key(), err)
	}
	if recErr != nil {
		rules = nil
	}
	obj := &apis.IPTablesRules{
		ObjectMeta: metav1.ObjectMeta{Namespace: c.cfg.Namespace, Name: c.cfg.Name,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "edgetel-onboard"}},
		Spec: apis.Spec{Model: model, Rules: nonNil(rules)},
	}
	u, err = apis.ToUnstructured(obj)
	if err != nil {
		return nil, false, err
	}
	if u, err = ri.Create(ctx, u, metav1.CreateOptions{}); err != nil {
		return nil, false, fmt.Errorf("creating IPTablesRules %s: %w", c.key(), err)
	}
	created, err := apis.FromUnstructured(u)
	if err != nil {
		return nil, false, err
	}
	c.event(created, corev1.EventTypeNormal, "RulesCreated", fmt.Sprintf("%d %s rules", len(rules), model))
	return created, true, nil
}

func (c *Controller) update(ctx context.Context, obj *apis.IPTablesRules) (*apis.IPTablesRules, error) {
	u, err := apis.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u, err = c.cfg.Dynamic.Resource(apis.GVR).Namespace(c.cfg.Namespace).Update(ctx, u, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("updating IPTablesRules %s: %w", c.key(), err)
	}
	return apis.FromUnstructured(u)
}

func (c *Controller) updateStatus(ctx context.Context, obj *apis.IPTablesRules, res Result, recErr error) error {
	c.desired.Set(float64(len(obj.Spec.Rules)))
	st := obj.Status
	st.Conditions = append([]metav1.Condition(nil), st.Conditions...)
	st.ObservedGeneration = obj.Generation
	st.RuleCount = len(obj.Spec.Rules)
	ready := metav1.Condition{Type: apis.ConditionReady, Status: metav1.ConditionTrue, Reason: "RulesComputed",
		Message: fmt.Sprintf("%d rules from the current cluster state", len(res.Rules)), ObservedGeneration: obj.Generation}
	if recErr != nil {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, "BadTunnelPortRecord", recErr.Error()+"; previous rules kept"
	}
	degraded := metav1.Condition{Type: apis.ConditionDegraded, Status: metav1.ConditionFalse, Reason: "AllInputsUsable",
		Message: "every edge node and tunnel record has a rule", ObservedGeneration: obj.Generation}
	if len(res.Problems) > 0 {
		degraded.Status, degraded.Reason, degraded.Message = metav1.ConditionTrue, "UnusableInputs", strings.Join(res.Problems, "; ")
	}
	meta.SetStatusCondition(&st.Conditions, ready)
	meta.SetStatusCondition(&st.Conditions, degraded)
	if reflect.DeepEqual(st, obj.Status) {
		return nil
	}
	if recErr != nil {
		c.event(obj, corev1.EventTypeWarning, "BadTunnelPortRecord", recErr.Error())
	}
	obj.Status = st
	u, err := apis.ToUnstructured(obj)
	if err != nil {
		return err
	}
	if _, err := c.cfg.Dynamic.Resource(apis.GVR).Namespace(c.cfg.Namespace).UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating IPTablesRules %s status: %w", c.key(), err)
	}
	return nil
}

func (c *Controller) event(obj *apis.IPTablesRules, kind, reason, msg string) {
	u, err := apis.ToUnstructured(obj)
	if err != nil {
		return
	}
	c.cfg.Recorder.Event(u, kind, reason, msg)
}
