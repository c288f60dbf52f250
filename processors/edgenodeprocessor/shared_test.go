package edgenodeprocessor

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func watches(c *fake.Clientset) int {
	n := 0
	for _, a := range c.Actions() {
		if a.GetVerb() == "watch" && a.GetResource().Resource == "nodes" {
			n++
		}
	}
	return n
}

// The metrics and logs instances of one component share one informer, which runs until the last
// of them shuts down.
func TestSignalsOfOneComponentShareTheInformer(t *testing.T) {
	nodes := edgeFleet(1)
	client := fake.NewClientset(kubeNode(nodes[0], corev1.ConditionTrue))
	f := newFactory(fakeRegistry(client))
	cfg := testConfig()
	ctx := context.Background()
	set, _, _ := settings(t)
	host := componenttest.NewNopHost()

	mp, err := f.CreateMetrics(ctx, set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	logSink := new(consumertest.LogsSink)
	lp, err := f.CreateLogs(ctx, set, cfg, logSink)
	require.NoError(t, err)
	require.NoError(t, mp.Start(ctx, host))
	require.NoError(t, lp.Start(ctx, host))
	assert.Equal(t, 1, watches(client))

	// The logs instance keeps the cache current after the metrics one is gone.
	require.NoError(t, mp.Shutdown(ctx))
	changed := nodes[0]
	changed.Labels = map[string]string{"topology.kubernetes.io/region": "moon"}
	_, err = client.CoreV1().Nodes().Update(ctx, kubeNode(changed, corev1.ConditionTrue), metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		logSink.Reset()
		ld := plog.NewLogs()
		ld.ResourceLogs().AppendEmpty().Resource().Attributes().PutStr("k8s.node.name", nodes[0].Name)
		if lp.ConsumeLogs(ctx, ld) != nil {
			return false
		}
		v, _ := logSink.AllLogs()[0].ResourceLogs().At(0).Resource().Attributes().Get("region")
		return v.Str() == "moon"
	}, 5*time.Second, 20*time.Millisecond)
	require.NoError(t, lp.Shutdown(ctx))

	// Started again after everything stopped: a fresh informer.
	mp2, err := f.CreateMetrics(ctx, set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, mp2.Start(ctx, host))
	assert.Equal(t, 2, watches(client))
	require.NoError(t, mp2.Shutdown(ctx))
}
