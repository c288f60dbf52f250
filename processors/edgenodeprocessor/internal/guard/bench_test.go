package guard

import (
	"fmt"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

func BenchmarkSeriesHash(b *testing.B) {
	h := NewHasher()
	attrs := pcommon.NewMap()
	attrs.PutStr("namespace", "default")
	attrs.PutStr("pod", "app-7d9f8c-x2x9z")
	attrs.PutStr("container", "app")
	mh := h.Metric(1, "container_cpu_usage_seconds_total")
	b.ReportAllocs()
	var sink uint64
	defer cpuPerOp(b)()
	for b.Loop() {
		sink += h.Series(mh, attrs)
	}
	_ = sink
}

// BenchmarkAdmitKnown is the steady state: 1,000 nodes with 100 known series each.
func BenchmarkAdmitKnown(b *testing.B) {
	g := New(Limits{MaxSeriesPerNode: 10000, MaxSeriesPerMetric: 2000, Window: 1 << 62})
	nodes := make([]*Node, 1000)
	for i := range nodes {
		nodes[i] = g.Node(fmt.Sprintf("edge-%04d", i))
		for s := range 100 {
			nodes[i].Admit(0, "m", uint64(i*1000+s)*0x9e3779b97f4a7c15)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	defer cpuPerOp(b)()
	for b.Loop() {
		n := nodes[(i/100)%1000]
		if n.Admit(1, "m", uint64((i/100)%1000*1000+i%100)*0x9e3779b97f4a7c15) != Admitted {
			b.Fatal("not admitted")
		}
		i++
	}
}

// cpuPerOp reports this thread's CPU time per op: the machine is shared, so wall time mostly
// measures the neighbours.
func cpuPerOp(b *testing.B) func() {
	runtime.LockOSThread()
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	start := ru.Utime.Nano() + ru.Stime.Nano()
	return func() {
		unix.Getrusage(unix.RUSAGE_THREAD, &ru)
		b.ReportMetric(float64(ru.Utime.Nano()+ru.Stime.Nano()-start)/float64(b.N), "cpu-ns/op")
		runtime.UnlockOSThread()
	}
}

// BenchmarkRetainedPerSeries reports the heap the guard keeps per active series: 20 nodes of
// 6,000 series in 60 metrics, each admitted in two passes per metric as batches arrive. With
// the guard on (the chart's default), this adds to the receiver's own bytes per series.
func BenchmarkRetainedPerSeries(b *testing.B) {
	const nodes, metrics, perMetric = 20, 60, 100
	var before, after runtime.MemStats
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&before)
		g := New(Limits{MaxSeriesPerNode: 10000, MaxSeriesPerMetric: 2000, Window: 1 << 62})
		names := make([]string, metrics)
		for m := range names {
			names[m] = fmt.Sprintf("metric_%02d", m)
		}
		for pass := range 2 {
			for i := range nodes {
				n := g.Lock(fmt.Sprintf("edge-%04d", i))
				for m, name := range names {
					n.StartMetric(name)
					for s := range perMetric {
						id := uint64((i*metrics+m)*perMetric+s) * 0x9e3779b97f4a7c15
						if n.Admit(int64(pass), name, id) != Admitted {
							b.Fatal("not admitted")
						}
					}
					n.EndMetric()
				}
				n.Unlock()
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(nodes*metrics*perMetric), "B/series")
		runtime.KeepAlive(g)
	}
}
