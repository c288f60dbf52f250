package kube

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// EventWatch says which Kubernetes Events to watch: those of every namespace (a Node's Events
// are in "default", its pods' in theirs). Two components share an informer when their
// EventWatch values are equal.
type EventWatch struct {
	API    APIConfig
	Resync time.Duration
}

// Event is what a lifecycle record needs of a Kubernetes Event (core/v1).
type Event struct {
	Namespace, Name, UID  string
	Type, Reason, Message string
	Count                 int32
	// The object the Event is about.
	Kind, ObjectName, ObjectNamespace, ObjectUID, FieldPath string
	// Host is source.host: the node whose kubelet reported the Event.
	Host string
	// Time is when it last happened: lastTimestamp, else eventTime, else firstTimestamp, else
	// when the Event object was created.
	Time time.Time
}

// Events is a shared Event informer, acquired from a Registry. Release it exactly once.
type Events struct{ *lease }

// AcquireEvents returns the informer for w, starting it if no one holds it yet.
func (r *Registry) AcquireEvents(w EventWatch) (*Events, error) {
	key := watchKey{resource: "events", NodeWatch: NodeWatch{API: w.API, Resync: w.Resync}}
	l, err := r.acquire(key, func(client kubernetes.Interface) (*shared, error) {
		factory := informers.NewSharedInformerFactoryWithOptions(client, w.Resync)
		return startShared(factory, factory.Core().V1().Events().Informer(), slimEvent)
	})
	if err != nil {
		return nil, err
	}
	return &Events{l}, nil
}

// slimEvent keeps what Event needs: managed fields and annotations are most of an Event's size.
func slimEvent(obj any) (any, error) {
	e, ok := obj.(*corev1.Event)
	if !ok {
		return obj, nil
	}
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: e.Name, Namespace: e.Namespace, UID: e.UID,
			ResourceVersion: e.ResourceVersion, CreationTimestamp: e.CreationTimestamp},
		InvolvedObject: e.InvolvedObject, Reason: e.Reason, Message: e.Message, Type: e.Type,
		Count: e.Count, Source: e.Source, FirstTimestamp: e.FirstTimestamp, LastTimestamp: e.LastTimestamp,
		EventTime: e.EventTime,
	}, nil
}

func fromKubeEvent(e *corev1.Event) Event {
	ev := Event{Namespace: e.Namespace, Name: e.Name, UID: string(e.UID), Type: e.Type, Reason: e.Reason,
		Message: e.Message, Count: e.Count, Kind: e.InvolvedObject.Kind, ObjectName: e.InvolvedObject.Name,
		ObjectNamespace: e.InvolvedObject.Namespace, ObjectUID: string(e.InvolvedObject.UID),
		FieldPath: e.InvolvedObject.FieldPath, Host: e.Source.Host}
	for _, t := range []time.Time{e.LastTimestamp.Time, e.EventTime.Time, e.FirstTimestamp.Time, e.CreationTimestamp.Time} {
		if !t.IsZero() {
			ev.Time = t
			break
		}
	}
	return ev
}

// OnEvent calls fn for every Event created or updated (a repeated Event counts up) after the
// handler was added. The Events listed when it starts are history, not news: fn does not see them.
func (e *Events) OnEvent(fn func(Event)) (*Subscription, error) {
	call := func(obj any) {
		if ke, ok := obj.(*corev1.Event); ok {
			fn(fromKubeEvent(ke))
		}
	}
	reg, err := e.s.informer.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			if !initial {
				call(obj)
			}
		},
		UpdateFunc: func(old, obj any) {
			// A resync hands over the same object again.
			if o, ok := old.(*corev1.Event); ok {
				if n, ok := obj.(*corev1.Event); ok && o.ResourceVersion == n.ResourceVersion {
					return
				}
			}
			call(obj)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("adding event handler: %w", err)
	}
	return &Subscription{informer: e.s.informer, reg: reg}, nil
}
