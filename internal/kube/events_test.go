package kube

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func kubeEvent(name, rv, kind, object, host string, count int32) *corev1.Event {
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: "default", Name: name, ResourceVersion: rv, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}},
		InvolvedObject: corev1.ObjectReference{Kind: kind, Name: object},
		Reason:         "Evicted", Message: "The node was low on resource: memory.", Type: corev1.EventTypeWarning,
		Count: count, Source: corev1.EventSource{Component: "kubelet", Host: host},
		LastTimestamp: metav1.NewTime(time.Unix(1700000000, 0)),
	}
}

// Events already there when the handler starts are history; new ones and repeats (count up,
// new resourceVersion) reach the handler, a resync of the same object does not.
func TestEventsOnlyNews(t *testing.T) {
	client := fake.NewClientset(kubeEvent("old", "1", "Node", "edge-1", "", 1))
	reg := fakeRegistry(client)
	ev, err := reg.AcquireEvents(EventWatch{Resync: time.Second}) // the shortest client-go allows
	require.NoError(t, err)
	defer ev.Release()
	require.True(t, ev.WaitForSync(context.Background()))

	var mu sync.Mutex
	var got []Event
	sub, err := ev.OnEvent(func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e)
	})
	require.NoError(t, err)
	defer sub.Remove()
	require.True(t, sub.WaitForSync(context.Background()))

	ctx := context.Background()
	_, err = client.CoreV1().Events("default").Create(ctx, kubeEvent("new", "2", "Pod", "app-1", "edge-2", 1), metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = client.CoreV1().Events("default").Update(ctx, kubeEvent("new", "3", "Pod", "app-1", "edge-2", 2), metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 2
	}, 5*time.Second, 10*time.Millisecond)
	time.Sleep(1300 * time.Millisecond) // past a resync: it may not come through
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 2, "the old Event and resyncs are not news: %+v", got)
	assert.Equal(t, Event{Namespace: "default", Name: "new", Type: "Warning", Reason: "Evicted",
		Message: "The node was low on resource: memory.", Count: 2, Kind: "Pod", ObjectName: "app-1",
		Host: "edge-2", Time: time.Unix(1700000000, 0)}, got[1])
}
