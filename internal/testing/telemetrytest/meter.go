package telemetrytest

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// meter records each instrument's declaration and hands out a no-op instrument.
type meter struct {
	noop.Meter
	r     *Recorder
	scope string
}

func (m *meter) Int64Counter(name string, opts ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	c := metric.NewInt64CounterConfig(opts...)
	m.r.add(m.scope, name, "sum", "int", c.Description(), c.Unit())
	return m.Meter.Int64Counter(name, opts...)
}

func (m *meter) Int64UpDownCounter(name string, opts ...metric.Int64UpDownCounterOption) (metric.Int64UpDownCounter, error) {
	c := metric.NewInt64UpDownCounterConfig(opts...)
	m.r.add(m.scope, name, "updown", "int", c.Description(), c.Unit())
	return m.Meter.Int64UpDownCounter(name, opts...)
}

func (m *meter) Int64Histogram(name string, opts ...metric.Int64HistogramOption) (metric.Int64Histogram, error) {
	c := metric.NewInt64HistogramConfig(opts...)
	m.r.add(m.scope, name, "histogram", "int", c.Description(), c.Unit())
	return m.Meter.Int64Histogram(name, opts...)
}

func (m *meter) Int64Gauge(name string, opts ...metric.Int64GaugeOption) (metric.Int64Gauge, error) {
	c := metric.NewInt64GaugeConfig(opts...)
	m.r.add(m.scope, name, "gauge", "int", c.Description(), c.Unit())
	return m.Meter.Int64Gauge(name, opts...)
}

func (m *meter) Int64ObservableCounter(name string, opts ...metric.Int64ObservableCounterOption) (metric.Int64ObservableCounter, error) {
	c := metric.NewInt64ObservableCounterConfig(opts...)
	m.r.add(m.scope, name, "sum", "int", c.Description(), c.Unit())
	return m.Meter.Int64ObservableCounter(name, opts...)
}

func (m *meter) Int64ObservableUpDownCounter(name string, opts ...metric.Int64ObservableUpDownCounterOption) (metric.Int64ObservableUpDownCounter, error) {
	c := metric.NewInt64ObservableUpDownCounterConfig(opts...)
	m.r.add(m.scope, name, "updown", "int", c.Description(), c.Unit())
	return m.Meter.Int64ObservableUpDownCounter(name, opts...)
}

func (m *meter) Int64ObservableGauge(name string, opts ...metric.Int64ObservableGaugeOption) (metric.Int64ObservableGauge, error) {
	c := metric.NewInt64ObservableGaugeConfig(opts...)
	m.r.add(m.scope, name, "gauge", "int", c.Description(), c.Unit())
	return m.Meter.Int64ObservableGauge(name, opts...)
}

func (m *meter) Float64Counter(name string, opts ...metric.Float64CounterOption) (metric.Float64Counter, error) {
	c := metric.NewFloat64CounterConfig(opts...)
	m.r.add(m.scope, name, "sum", "double", c.Description(), c.Unit())
	return m.Meter.Float64Counter(name, opts...)
}

func (m *meter) Float64UpDownCounter(name string, opts ...metric.Float64UpDownCounterOption) (metric.Float64UpDownCounter, error) {
	c := metric.NewFloat64UpDownCounterConfig(opts...)
	m.r.add(m.scope, name, "updown", "double", c.Description(), c.Unit())
	return m.Meter.Float64UpDownCounter(name, opts...)
}

func (m *meter) Float64Histogram(name string, opts ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	c := metric.NewFloat64HistogramConfig(opts...)
	m.r.add(m.scope, name, "histogram", "double", c.Description(), c.Unit())
	return m.Meter.Float64Histogram(name, opts...)
}

func (m *meter) Float64Gauge(name string, opts ...metric.Float64GaugeOption) (metric.Float64Gauge, error) {
	c := metric.NewFloat64GaugeConfig(opts...)
	m.r.add(m.scope, name, "gauge", "double", c.Description(), c.Unit())
	return m.Meter.Float64Gauge(name, opts...)
}

func (m *meter) Float64ObservableCounter(name string, opts ...metric.Float64ObservableCounterOption) (metric.Float64ObservableCounter, error) {
	c := metric.NewFloat64ObservableCounterConfig(opts...)
	m.r.add(m.scope, name, "sum", "double", c.Description(), c.Unit())
	return m.Meter.Float64ObservableCounter(name, opts...)
}

func (m *meter) Float64ObservableUpDownCounter(name string, opts ...metric.Float64ObservableUpDownCounterOption) (metric.Float64ObservableUpDownCounter, error) {
	c := metric.NewFloat64ObservableUpDownCounterConfig(opts...)
	m.r.add(m.scope, name, "updown", "double", c.Description(), c.Unit())
	return m.Meter.Float64ObservableUpDownCounter(name, opts...)
}

func (m *meter) Float64ObservableGauge(name string, opts ...metric.Float64ObservableGaugeOption) (metric.Float64ObservableGauge, error) {
	c := metric.NewFloat64ObservableGaugeConfig(opts...)
	m.r.add(m.scope, name, "gauge", "double", c.Description(), c.Unit())
	return m.Meter.Float64ObservableGauge(name, opts...)
}
