package remotewriteexporter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/edgetel/edgetel/internal/diskqueue"
	"github.com/edgetel/edgetel/internal/relabelconf"
	"github.com/edgetel/edgetel/internal/sampleconv"
)

// rwExporter converts each batch to remote-write records, stores them in the disk buffer before
// ConsumeMetrics returns, and leaves delivery to the sender.
type rwExporter struct {
	cfg *Config
	set exporter.Settings
	now func() time.Time

	mu   sync.Mutex // one conversion at a time: the converter and encoder reuse their buffers
	conv *sampleconv.Converter
	enc  *encoder

	q        *diskqueue.Queue
	acks     *ackTracker
	gate     *gate
	tel      *telemetry
	cancel   context.CancelFunc
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func newExporter(cfg *Config, set exporter.Settings) *rwExporter {
	if cfg.Retry != nil {
		set.Logger.Warn("edgeremotewrite: the retry block is deprecated and will be removed in the next release; " +
			"use retry_on_failure (initial_interval, max_interval, multiplier, randomization_factor) and sending.max_retry_after")
	}
	if cfg.BasicAuth != nil || cfg.BearerTokenFile != "" {
		set.Logger.Warn("edgeremotewrite: basic_auth and bearer_token_file are deprecated and will be removed in the next release; " +
			"use auth: {authenticator: basicauth/<name>} or {authenticator: bearertokenauth/<name>} with the Collector's auth extensions")
	}
	if w := cfg.Buffer.windowWarning(); w != "" {
		set.Logger.Warn(w)
	}
	return &rwExporter{
		cfg:  cfg,
		set:  set,
		now:  time.Now,
		conv: sampleconv.New(cfg.Options()),
		enc: newEncoder(cfg.Sending.Shards, cfg.ProtocolVersion == ProtocolV2, cfg.ExternalLabels,
			cfg.Sending.MaxSamplesPerSend, cfg.Sending.MaxBytesPerSend),
	}
}

// start compiles write_relabel_configs (Validate has checked them) into the encoder.

func (e *rwExporter) start(ctx context.Context, host component.Host) error {
	rc, err := relabelconf.Decode("write_relabel_configs", e.cfg.WriteRelabelConfigs)
	if err != nil {
		return fmt.Errorf("edgeremotewrite: %w", err)
	}
	e.enc.relabel = rc
	client, err := e.cfg.ToClient(ctx, host.GetExtensions(), e.set.TelemetrySettings)
	if err != nil {
		return fmt.Errorf("edgeremotewrite: http client: %w", err)
	}
	e.acks = &ackTracker{now: e.now}
	e.gate = newGate(e.cfg.retry())
	tel, err := newTelemetry(e.set.MeterProvider)
	if err != nil {
		return fmt.Errorf("edgeremotewrite: telemetry: %w", err)
	}
	e.tel = tel
	b := e.cfg.Buffer
	q, err := diskqueue.Open(diskqueue.Options{
		Dir:          b.Directory,
		SegmentSize:  b.SegmentSize,
		MaxBytes:     b.MaxBytes,
		MaxAge:       b.maxAge(),
		Sync:         b.Fsync,
		SyncInterval: b.FsyncInterval,
		Logger:       e.set.Logger,
		OnDrop:       tel.drop,
		Now:          e.now,
	})
	if err != nil {
		return fmt.Errorf("edgeremotewrite: buffer: %w", err)
	}
	e.q = q
	e.acks.q = q
	if err := tel.observe(e); err != nil {
		_ = q.Close()
		return fmt.Errorf("edgeremotewrite: telemetry: %w", err)
	}
	s := &sender{
		endpoint:   e.cfg.Endpoint,
		client:     client,
		q:          q,
		tel:        tel,
		log:        e.set.Logger,
		acks:       e.acks,
		userAgent:  "edgetel/" + e.set.BuildInfo.Version,
		maxSamples: e.cfg.Sending.MaxSamplesPerSend,
		maxBytes:   e.cfg.Sending.MaxBytesPerSend,
		gate:       e.gate,
		auth:       e.cfg.authFunc(),
		stop:       make(chan struct{}),
		refusals:   &refusalLog{log: e.set.Logger, every: refusalLogEvery},
	}
	e.stop = s.stop
	runCtx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	go func() {
		defer close(e.done)
		s.run(runCtx, e.cfg.Sending.Shards)
		client.CloseIdleConnections()
	}()
	return nil
}

// shutdownGrace is how long requests already on the wire may take to finish on Shutdown.
const shutdownGrace = 5 * time.Second

// shutdown stops the sender and closes the buffer; whatever was not acknowledged stays on disk
// for the next start. Requests in flight get up to shutdownGrace (or until ctx ends) to finish,
// so their data is acknowledged instead of sent again after the restart.
func (e *rwExporter) shutdown(ctx context.Context) error {
	if e.cancel != nil {
		e.stopOnce.Do(func() { close(e.stop) })
		grace := time.NewTimer(shutdownGrace)
		select {
		case <-e.done:
		case <-grace.C:
		case <-ctx.Done():
		}
		grace.Stop()
		e.cancel()
		<-e.done
	}
	var err error
	if e.q != nil {
		e.mu.Lock()
		err = e.q.Close()
		e.mu.Unlock()
	}
	if e.tel != nil {
		e.tel.shutdown()
	}
	return err
}

func (e *rwExporter) push(_ context.Context, md pmetric.Metrics) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.q == nil {
		return errors.New("edgeremotewrite: not started")
	}
	st, err := e.conv.Convert(md, e.enc)
	if err != nil {
		return consumererror.NewPermanent(fmt.Errorf("edgeremotewrite: convert: %w", err))
	}
	metas, payloads := e.enc.finish()
	if n := e.enc.relabeled; n > 0 {
		e.enc.relabeled = 0
		e.tel.drop(reasonRelabeled, 0, n)
		st.Samples -= n
	}
	if st.Unsupported > 0 {
		e.set.Logger.Debug("Skipping data points with no Prometheus form", zap.Int("points", st.Unsupported))
		e.tel.drop(reasonUnsupported, 0, st.Unsupported)
	}
	if len(metas) == 0 {
		return nil
	}
	if err := e.q.Append(metas, payloads); err != nil {
		if errors.Is(err, diskqueue.ErrTooLarge) {
			e.tel.drop(reasonTooLarge, len(metas), st.Samples)
			return consumererror.NewPermanent(fmt.Errorf("edgeremotewrite: %w", err))
		}
		// A full disk with nothing older left to drop (diskqueue.ErrDiskFull) refuses the batch:
		// the exporterhelper counts its points in otelcol_exporter_send_failed_metric_points and
		// the receiver counts the refused batch and logs it as a warning.
		return fmt.Errorf("edgeremotewrite: buffer: %w", err)
	}
	e.tel.buffered.Add(context.Background(), int64(st.Samples))
	return nil
}

func (e *rwExporter) bufferBytes() (pending, disk int64) {
	st := e.q.Stats()
	return st.PendingBytes, st.DiskBytes
}

func (e *rwExporter) oldestAgeSeconds() float64 { return e.acks.oldestAge() }

func (e *rwExporter) sendingHeld() bool { return e.gate.isHeld() }
