package sampleconv

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

type collectPairs struct{ collect }

// AppendPairs records the pairs as given: unsorted or duplicate names show in the string.
func (c *collectPairs) AppendPairs(ls []labels.Label, t int64, v float64) error {
	b := labels.NewBuilder(labels.EmptyLabels())
	var names []string
	for _, l := range ls {
		names = append(names, l.Name)
	}
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		c.got = append(c.got, sample{"unsorted or repeated: " + strings.Join(names, ","), t, v})
		return nil
	}
	for _, l := range ls {
		b.Set(l.Name, l.Value)
	}
	return c.Append(b.Labels(), t, v)
}

// reference builds a sample's labels the plain way: everything appended in order, one stable
// sort, duplicates joined, empties dropped.
func reference(name string, attrs pcommon.Map, extraName, extraValue string, res []labels.Label) string {
	pairs := []labels.Label{{Name: MetricName, Value: name}}
	attrs.Range(func(k string, v pcommon.Value) bool {
		pairs = append(pairs, labels.Label{Name: SanitizeLabelName(k), Value: v.AsString()})
		return true
	})
	if extraName != "" {
		pairs = append(pairs, labels.Label{Name: extraName, Value: extraValue})
	}
	for _, l := range res {
		if attrs.Len() > 0 && slices.ContainsFunc(pairs, func(p labels.Label) bool { return p.Name == l.Name }) {
			continue
		}
		pairs = append(pairs, l)
	}
	slices.SortStableFunc(pairs, func(a, b labels.Label) int { return strings.Compare(a.Name, b.Name) })
	b := labels.NewScratchBuilder(len(pairs))
	for i := 0; i < len(pairs); i++ {
		l := pairs[i]
		for i+1 < len(pairs) && pairs[i+1].Name == l.Name {
			i++
			if pairs[i].Value != "" {
				l.Value = joinNonEmpty(l.Value, pairs[i].Value)
			}
		}
		if l.Value != "" {
			b.Add(l.Name, l.Value)
		}
	}
	return b.Labels().String()
}

// Whatever the order of the attributes (sorted, as the kubeedge receiver writes them, or not),
// with names that sanitize alike, empty values, names that collide with le, job and instance,
// and resource attributes turned into labels or not, both appender kinds get what one stable
// sort of everything gives.
func TestLabelOrderMatchesAFullSort(t *testing.T) {
	names := []string{"a", "a.b", "a_b", "A", "_x", "le", "job", "instance", "zone", "pod", "container", "id", "image"}
	values := []string{"", "v", "w"}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		rattrs := rm.Resource().Attributes()
		rattrs.PutStr("service.name", "kubelet")
		rattrs.PutStr("service.instance.id", "edge-1")
		res := []labels.Label{{Name: JobLabel, Value: "kubelet"}, {Name: InstanceLabel, Value: "edge-1"}}
		toLabels := i%3 == 0
		for _, n := range []string{"job", "a.b", "zone", "le", "k8s.node.name"} {
			if rng.IntN(2) == 0 {
				v := values[rng.IntN(len(values))]
				rattrs.PutStr(n, v)
				if toLabels {
					res = append(res, labels.Label{Name: SanitizeLabelName(n), Value: v})
				}
			}
		}
		h := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		h.SetName("h")
		h.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dp := h.Histogram().DataPoints().AppendEmpty()
		dp.SetCount(1)
		dp.ExplicitBounds().FromRaw([]float64{1})
		dp.BucketCounts().FromRaw([]uint64{1, 0})
		picked := slices.Clone(names)
		rng.Shuffle(len(picked), func(a, b int) { picked[a], picked[b] = picked[b], picked[a] })
		picked = picked[:rng.IntN(len(picked))]
		if i%2 == 0 {
			slices.Sort(picked)
		}
		for _, n := range picked {
			dp.Attributes().PutStr(n, values[rng.IntN(len(values))])
		}
		want := []string{
			reference("h_bucket", dp.Attributes(), BucketLabel, "1", res),
			reference("h_bucket", dp.Attributes(), BucketLabel, "+Inf", res),
			reference("h_count", dp.Attributes(), "", "", res),
		}
		for _, app := range []interface {
			Appender
			labelSets() []string
		}{&collect{}, &collectPairs{}} {
			_, err := New(Options{WithoutSuffixes: true, ResourceToLabels: toLabels}).Convert(md, app)
			require.NoError(t, err)
			require.Equal(t, want, app.labelSets(), "attributes %v", dp.Attributes().AsRaw())
		}
	}
}

func (c *collect) labelSets() []string {
	var out []string
	for _, s := range c.got {
		out = append(out, s.ls)
	}
	return out
}
