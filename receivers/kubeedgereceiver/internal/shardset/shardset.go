// Package shardset follows the shard layout of a StatefulSet of collectors: the shard count from
// its spec.replicas, and which shards have a Ready pod, for the handover rule
// (discovery.Handover).
package shardset

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
)

// Watch follows one StatefulSet and its pods.
type Watch struct {
	Client          kubernetes.Interface
	Namespace, Name string
	// ReplicasPerShard pods make a shard: pod ordinal i belongs to shard i / ReplicasPerShard.
	ReplicasPerShard int
	Logger           *zap.Logger
}

// Count is the shard count for replicas pods, rounded up: a partly filled last shard still
// scrapes its nodes.
func Count(replicas, perShard int) int {
	perShard = max(perShard, 1)
	return max((replicas+perShard-1)/perShard, 1)
}

// Run reports the assignment after the first list and after every change to it, until ctx
// ends. It waits for the StatefulSet to exist.
func (w Watch) Run(ctx context.Context, update func(discovery.Assignment)) error {
	changed := make(chan struct{}, 1)
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke(changed) },
		UpdateFunc: func(any, any) { poke(changed) },
		DeleteFunc: func(any) { poke(changed) },
	}
	// list/watch with metadata.name: RBAC can then grant it on this StatefulSet alone
	// (resourceNames).
	setFactory := informers.NewSharedInformerFactoryWithOptions(w.Client, 0, informers.WithNamespace(w.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", w.Name).String()
		}))
	sets := setFactory.Apps().V1().StatefulSets().Informer()
	if _, err := sets.AddEventHandler(notify); err != nil {
		return fmt.Errorf("statefulset %s/%s: %w", w.Namespace, w.Name, err)
	}
	setFactory.Start(ctx.Done())
	defer setFactory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), sets.HasSynced) {
		return nil
	}
	f := follower{w: w, readySince: map[int]time.Time{}}
	defer f.stop()
	for {
		a, ok, err := f.assignment(ctx, sets, notify)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if ok && (a.Count != f.last.Count || !sameReady(a.ReadySince, f.last.ReadySince) || !f.reported) {
			f.last, f.reported = a, true
			update(a)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// Count reads the shard count from the API server now, not from the informer: a collector told
// to stop asks whether a scale-down removed it before the watch may have said so.
func (w Watch) Count(ctx context.Context) (int, error) {
	set, err := w.Client.AppsV1().StatefulSets(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
	if err != nil {
		return 0, fmt.Errorf("statefulset %s/%s: %w", w.Namespace, w.Name, err)
	}
	replicas := 1
	if set.Spec.Replicas != nil {
		replicas = int(*set.Spec.Replicas)
	}
	return Count(replicas, w.ReplicasPerShard), nil
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// follower is Run's state.
type follower struct {
	w          Watch
	podFactory informers.SharedInformerFactory
	pods       cache.SharedIndexInformer
	readySince map[int]time.Time
	last       discovery.Assignment
	reported   bool
	missing    bool // the StatefulSet was missing, and that was logged
}

func (f *follower) stop() {
	if f.podFactory != nil {
		f.podFactory.Shutdown()
	}
}

// assignment reads the current layout; ok is false while the StatefulSet does not exist.
func (f *follower) assignment(ctx context.Context, sets cache.SharedIndexInformer, notify cache.ResourceEventHandler) (discovery.Assignment, bool, error) {
	obj, exists, err := sets.GetStore().GetByKey(f.w.Namespace + "/" + f.w.Name)
	if err != nil {
		return discovery.Assignment{}, false, err
	}
	set, _ := obj.(*appsv1.StatefulSet)
	if !exists || set == nil {
		if !f.missing {
			f.missing = true
			f.w.Logger.Warn("kubeedge receiver: shard.statefulset not found; keeping the last shard count until it exists",
				zap.String("namespace", f.w.Namespace), zap.String("name", f.w.Name))
		}
		return discovery.Assignment{}, false, nil
	}
	f.missing = false
	if f.pods == nil {
		if err := f.startPods(ctx, set, notify); err != nil {
			return discovery.Assignment{}, false, err
		}
	}
	replicas := 1
	if set.Spec.Replicas != nil {
		replicas = int(*set.Spec.Replicas)
	}
	now := time.Now()
	ready := map[int]bool{}
	for _, o := range f.pods.GetStore().List() {
		p, ok := o.(*corev1.Pod)
		if !ok {
			continue
		}
		if i, ok := ordinal(f.w.Name, p.Name); ok && i < replicas && podReady(p) {
			ready[i/max(f.w.ReplicasPerShard, 1)] = true
		}
	}
	for s := range f.readySince {
		if !ready[s] {
			delete(f.readySince, s)
		}
	}
	since := make(map[int]time.Time, len(ready))
	for s := range ready {
		if _, ok := f.readySince[s]; !ok {
			f.readySince[s] = now
		}
		since[s] = f.readySince[s]
	}
	a := discovery.Assignment{Count: Count(replicas, f.w.ReplicasPerShard), Since: f.last.Since, ReadySince: since}
	if !f.reported || a.Count != f.last.Count {
		a.Since = now
	}
	return a, true, nil
}

// startPods starts the informer on the StatefulSet's pods, by its (immutable) selector.
func (f *follower) startPods(ctx context.Context, set *appsv1.StatefulSet, notify cache.ResourceEventHandler) error {
	sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil {
		return fmt.Errorf("statefulset %s/%s selector: %w", f.w.Namespace, f.w.Name, err)
	}
	f.podFactory = informers.NewSharedInformerFactoryWithOptions(f.w.Client, 0, informers.WithNamespace(f.w.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel.String() }))
	f.pods = f.podFactory.Core().V1().Pods().Informer()
	if err := f.pods.SetTransform(slimPod); err != nil {
		return err
	}
	if _, err := f.pods.AddEventHandler(notify); err != nil {
		return fmt.Errorf("statefulset %s/%s pods: %w", f.w.Namespace, f.w.Name, err)
	}
	f.podFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), f.pods.HasSynced) {
		return errors.New("statefulset pods: informer did not sync")
	}
	return nil
}

// slimPod keeps the name, deletion mark and Ready condition.
func slimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID,
		ResourceVersion: p.ResourceVersion, DeletionTimestamp: p.DeletionTimestamp}}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			out.Status.Conditions = []corev1.PodCondition{{Type: c.Type, Status: c.Status}}
		}
	}
	return out, nil
}

// podReady: Ready and not being deleted (a terminating pod is about to stop scraping).
func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ordinal is the index of a StatefulSet's pod, from its name <set>-<ordinal>.
func ordinal(set, pod string) (int, bool) {
	rest, ok := strings.CutPrefix(pod, set+"-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	return i, err == nil && i >= 0
}

func sameReady(a, b map[int]time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !w.Equal(v) {
			return false
		}
	}
	return true
}
