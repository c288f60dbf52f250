package edgesim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// KubeOptions say how a fleet registers in a Kubernetes API server.
type KubeOptions struct {
	Client kubernetes.Interface
	// NodeIP is the InternalIP every node publishes, and Port its kubelet endpoint port: where the
	// API server's node proxy dials. In a KubeEdge cluster every node's address:10350 is DNATed to
	// cloudcore's stream server, which picks the node from the proxied path; here it is edgesim's
	// stream endpoint. Empty/0: each node's own fleet IP and port (names only, not dialable).
	NodeIP string
	Port   int
	// Pods also registers the pods each node runs at registration, bound to it (spec.nodeName),
	// in the namespaces of the captures, which must exist.
	Pods bool
	// Workers bounds the requests in flight; default 16.
	Workers int
}

// Registrar keeps a fleet's Node objects in an API server: Ready follows each node's tunnel
// session (connected: True; disconnected: Unknown, as the node lifecycle controller marks a node
// that stopped reporting), and deleted nodes' objects are removed.
type Registrar struct {
	sim  *Sim
	opts KubeOptions

	mu      sync.Mutex
	posted  map[int]bool // node → Ready last posted
	deleted map[int]bool
}

// Registrar returns a registrar of s's fleet.
func (s *Sim) Registrar(opts KubeOptions) (*Registrar, error) {
	if opts.Client == nil {
		return nil, errors.New("edgesim: kube registration needs a client")
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("edgesim: kube registration port %d out of range", opts.Port)
	}
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	return &Registrar{sim: s, opts: opts, posted: map[int]bool{}, deleted: map[int]bool{}}, nil
}

// Register creates the Node object of every node not deleted (and its pods with Pods), or updates
// its labels and status when it exists.
func (r *Registrar) Register(ctx context.Context) error {
	return r.each(ctx, r.live(), func(ctx context.Context, i int) error {
		if err := r.putNode(ctx, i); err != nil {
			return err
		}
		if r.opts.Pods {
			return r.putPods(ctx, i)
		}
		return nil
	})
}

// Sync posts the Ready condition of every node whose session changed since it was last posted.
func (r *Registrar) Sync(ctx context.Context) error {
	var changed []int
	r.mu.Lock()
	for i := range r.sim.nodes {
		if !r.deleted[i] && r.posted[i] != r.ready(i) {
			changed = append(changed, i)
		}
	}
	r.mu.Unlock()
	return r.each(ctx, changed, r.postReady)
}

// Delete removes the named nodes' Node objects (and their pods): the nodes left the cluster.
// Unknown names are an error.
func (r *Registrar) Delete(ctx context.Context, names ...string) error {
	if bad := r.sim.Unknown(names...); len(bad) > 0 {
		return fmt.Errorf("edgesim: not in the fleet: %v", bad)
	}
	idx := make([]int, 0, len(names))
	r.mu.Lock()
	for _, n := range names {
		i := r.sim.byKey[n]
		r.deleted[i] = true
		idx = append(idx, i)
	}
	r.mu.Unlock()
	return r.each(ctx, idx, func(ctx context.Context, i int) error {
		if r.opts.Pods {
			for _, p := range r.sim.pods(i, r.sim.Step()) {
				ns := r.sim.tmpl.pods[p.tmpl].namespace
				// No kubelet confirms a graceful deletion here: the pod is removed at once.
				err := r.opts.Client.CoreV1().Pods(ns).Delete(ctx, string(p.name), metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
				if err != nil && !apierrors.IsNotFound(err) {
					return fmt.Errorf("deleting pod %s/%s: %w", ns, p.name, err)
				}
			}
		}
		err := r.opts.Client.CoreV1().Nodes().Delete(ctx, r.sim.nodeName(i), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting node %s: %w", r.sim.nodeName(i), err)
		}
		return nil
	})
}

// Run syncs the registered fleet every interval until ctx ends (Register it first).
func (r *Registrar) Run(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		return fmt.Errorf("edgesim: sync interval %v must be positive", every)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := r.Sync(ctx); err != nil && ctx.Err() == nil {
				r.sim.log.Warn("edgesim: syncing Node objects", "err", err)
			}
		}
	}
}

// PodNamespaces are the namespaces of the pods nodes may run (they must exist for Pods).
func (s *Sim) PodNamespaces() []string {
	seen := map[string]bool{}
	var out []string
	for _, i := range s.tmpl.eligible {
		if ns := s.tmpl.pods[i].namespace; !seen[ns] {
			seen[ns] = true
			out = append(out, ns)
		}
	}
	return out
}

func (r *Registrar) live() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int, 0, len(r.sim.nodes))
	for i := range r.sim.nodes {
		if !r.deleted[i] {
			out = append(out, i)
		}
	}
	return out
}

func (r *Registrar) ready(i int) bool { return !r.sim.faults.disconnected[i].Load() }

func (r *Registrar) kubeNode(i int) *corev1.Node {
	n := r.sim.fleet.Nodes[i]
	if r.opts.NodeIP != "" {
		n.IP = r.opts.NodeIP
	}
	if r.opts.Port != 0 {
		n.Port = r.opts.Port
	}
	kn := n.KubeNode(corev1.ConditionTrue)
	kn.Status.Conditions = []corev1.NodeCondition{readyCondition(r.ready(i))}
	return kn
}

func readyCondition(ready bool) corev1.NodeCondition {
	now := metav1.Now()
	c := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "edgesim node connected", LastHeartbeatTime: now, LastTransitionTime: now}
	if !ready {
		c.Status, c.Reason, c.Message = corev1.ConditionUnknown, "NodeStatusUnknown", "edgesim node disconnected"
	}
	return c
}

// putNode creates node i's object or, when it exists, updates its labels and then its status
// (an update of the object leaves its status as it was).
func (r *Registrar) putNode(ctx context.Context, i int) error {
	nodes := r.opts.Client.CoreV1().Nodes()
	want := r.kubeNode(i)
	ready := r.ready(i)
	_, err := nodes.Create(ctx, want, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		var cur *corev1.Node
		if cur, err = nodes.Get(ctx, want.Name, metav1.GetOptions{}); err == nil {
			cur.Labels = want.Labels
			if cur, err = nodes.Update(ctx, cur, metav1.UpdateOptions{}); err == nil {
				cur.Status = want.Status
				_, err = nodes.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
			}
		}
	}
	if err != nil {
		return fmt.Errorf("registering node %s: %w", want.Name, err)
	}
	r.setPosted(i, ready)
	return nil
}

func (r *Registrar) postReady(ctx context.Context, i int) error {
	ready := r.ready(i)
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.NodeCondition{readyCondition(ready)}}})
	if err != nil {
		return err
	}
	name := r.sim.nodeName(i)
	if _, err := r.opts.Client.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("posting Ready=%v of node %s: %w", ready, name, err)
	}
	r.setPosted(i, ready)
	return nil
}

func (r *Registrar) setPosted(i int, ready bool) {
	r.mu.Lock()
	r.posted[i] = ready
	r.mu.Unlock()
}

func (r *Registrar) putPods(ctx context.Context, i int) error {
	no := false
	for _, p := range r.sim.pods(i, r.sim.Step()) {
		cp := r.sim.tmpl.pods[p.tmpl]
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: string(p.name), Namespace: cp.namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "edgesim"}},
			Spec: corev1.PodSpec{
				NodeName:                     r.sim.nodeName(i),
				AutomountServiceAccountToken: &no,
				Containers:                   []corev1.Container{{Name: "main", Image: "registry.k8s.io/pause:3.10"}},
			},
		}
		_, err := r.opts.Client.CoreV1().Pods(cp.namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("registering pod %s/%s of node %s: %w", cp.namespace, p.name, r.sim.nodeName(i), err)
		}
	}
	return nil
}

// each runs fn on every node in idx with Workers in flight, and returns the errors joined.
func (r *Registrar) each(ctx context.Context, idx []int, fn func(context.Context, int) error) error {
	work := make(chan int)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range min(r.opts.Workers, len(idx)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := fn(ctx, i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for _, i := range idx {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}
