package kubeedgereceiver

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
	"go.opentelemetry.io/collector/config/configtls"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/relabelconf"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/logs"
)

// Discovery modes.
const (
	DiscoveryKubernetes = "kubernetes"
	DiscoveryStatic     = "static"
	DiscoveryFile       = "file"
)

// Transport modes.
const (
	TransportCloudcore = "cloudcore"
	TransportAPIServer = "apiserver"
	TransportDirect    = "direct"
)

// Config is the kubeedge receiver's configuration.
type Config struct {
	CollectionInterval time.Duration `mapstructure:"collection_interval"`
	ScrapeTimeout      time.Duration `mapstructure:"scrape_timeout"`
	// Job is the job label (service.name) of every series.
	Job string `mapstructure:"job"`
	// MaxConcurrentScrapes bounds the scrapes in flight across all targets.
	MaxConcurrentScrapes int `mapstructure:"max_concurrent_scrapes"`
	// MaxBodyBytesInFlight bounds the bytes of response bodies held at once across all targets,
	// from the fetch to the end of their conversion (0: a tenth of GOMEMLIMIT, or 256 MiB
	// without one).
	MaxBodyBytesInFlight int64 `mapstructure:"max_body_bytes_in_flight"`
	// BodySizeLimit is the largest response body accepted, in bytes.
	BodySizeLimit int64 `mapstructure:"body_size_limit"`
	// SampleLimit is the largest number of samples one endpoint may expose after relabelling
	// (0: no limit).
	SampleLimit int `mapstructure:"sample_limit"`
	// NodeSeriesLimit is the largest number of series, counted before relabelling, one node's
	// endpoints may expose together in one round (0: no limit). It bounds the memory one node
	// can take, whatever relabelling drops.
	NodeSeriesLimit int `mapstructure:"node_series_limit"`
	// LabelLimit, LabelNameLengthLimit and LabelValueLengthLimit fail a scrape with a series
	// beyond them after relabelling, target labels included, as Prometheus' scrape options of
	// the same names (0: no limit).
	LabelLimit            int `mapstructure:"label_limit"`
	LabelNameLengthLimit  int `mapstructure:"label_name_length_limit"`
	LabelValueLengthLimit int `mapstructure:"label_value_length_limit"`
	// MaxFutureSkew refuses samples whose own timestamp is more than this after the scrape time
	// (a node with a fast clock), counted as dropped with reason clock_skew (0: no bound).
	MaxFutureSkew   time.Duration `mapstructure:"max_future_skew"`
	HonorTimestamps bool          `mapstructure:"honor_timestamps"`
	// HonorLabels keeps scraped labels that collide with target labels instead of renaming them
	// to exported_<name>.
	HonorLabels bool `mapstructure:"honor_labels"`

	Endpoints EndpointsConfig `mapstructure:"endpoints"`
	// Attributes says which node labels every series of a node carries.
	Attributes AttributesConfig `mapstructure:"attributes"`
	// NodeLabels is the deprecated series label → node label map that attributes.labels
	// replaces; read for one release and merged into attributes.labels (an empty node label
	// removes a mapping), with a warning at start.
	NodeLabels map[string]string `mapstructure:"node_labels"`
	Shard      ShardConfig       `mapstructure:"shard"`
	Discovery  DiscoveryConfig   `mapstructure:"discovery"`
	Transport  TransportConfig   `mapstructure:"transport"`

	// MetricRelabelConfigs are Prometheus metric_relabel_configs, in Prometheus' YAML shape.
	MetricRelabelConfigs []map[string]any `mapstructure:"metric_relabel_configs"`

	// Logs configures the logs signal (README "Container logs").
	Logs logs.Config `mapstructure:"logs"`
}

// AttributesConfig maps node labels to series labels, in the vocabulary the edgenode processor
// shares.
type AttributesConfig struct {
	// Labels copies node label key into series label attribute, when the node has it non-empty.
	Labels []kube.LabelMapping `mapstructure:"labels"`
	// TargetLabelsOn is deprecated and ignored: the target labels travel on the resource. Read
	// for one release, with a warning at start.
	TargetLabelsOn string `mapstructure:"target_labels_on"`
}

// EndpointsConfig selects the kubelet endpoints to scrape.
type EndpointsConfig struct {
	Metrics  EndpointConfig `mapstructure:"metrics"`
	Cadvisor EndpointConfig `mapstructure:"cadvisor"`
	Resource EndpointConfig `mapstructure:"resource"`
}

// EndpointConfig is one endpoint.
type EndpointConfig struct {
	Enabled bool   `mapstructure:"enabled"`
	Path    string `mapstructure:"path"`
}

// ShardConfig splits the fleet across replicas.
type ShardConfig struct {
	Index int `mapstructure:"index"`
	Count int `mapstructure:"count"`
	// ReplicasPerShard collectors scrape each shard, telling their copies apart by a replica
	// label. Index is then the collector's ordinal (a StatefulSet's pod index) in
	// [0, count·replicas_per_shard), and its shard Index / ReplicasPerShard: the Collector's
	// configuration cannot divide the pod index itself.
	ReplicasPerShard int `mapstructure:"replicas_per_shard"`
	// StatefulSet, when its name is set, follows the shard count live from the StatefulSet the
	// collectors run in (count = ceil(spec.replicas / replicas_per_shard)) and hands moved nodes
	// over without a gap (README "Resharding"); Count is then not used.
	StatefulSet ShardStatefulSetConfig `mapstructure:"statefulset"`
}

// ShardStatefulSetConfig names the collectors' StatefulSet. The receiver reads it, and its
// pods' Ready condition, through discovery.kubernetes' API settings.
type ShardStatefulSetConfig struct {
	Name string `mapstructure:"name"`
	// Namespace defaults to the pod's own (its service account's namespace file).
	Namespace string `mapstructure:"namespace"`
	// HandoverDelay is how long a shard keeps scraping a node that moved away after the node's
	// new shard has had a Ready pod (and the count has changed); 0: two collection intervals.
	HandoverDelay time.Duration `mapstructure:"handover_delay"`
}

// followsStatefulSet says whether the shard count comes from a StatefulSet.
func (s ShardConfig) followsStatefulSet() bool { return s.StatefulSet.Name != "" }

// handoverDelay is shard.statefulset.handover_delay with its default.
func (c *Config) handoverDelay() time.Duration {
	if d := c.Shard.StatefulSet.HandoverDelay; d > 0 {
		return d
	}
	return 2 * c.CollectionInterval
}

// shard is the shard this collector scrapes.
func (s ShardConfig) shard() int { return s.Index / max(s.ReplicasPerShard, 1) }

// DiscoveryConfig chooses how nodes are found.
type DiscoveryConfig struct {
	Mode       string                    `mapstructure:"mode"`
	Kubernetes KubernetesDiscoveryConfig `mapstructure:"kubernetes"`
	Static     StaticDiscoveryConfig     `mapstructure:"static"`
	File       FileDiscoveryConfig       `mapstructure:"file"`
}

// KubernetesDiscoveryConfig watches Node objects.
type KubernetesDiscoveryConfig struct {
	kube.APIConfig `mapstructure:",squash"`
	LabelSelector  string        `mapstructure:"label_selector"`
	ResyncPeriod   time.Duration `mapstructure:"resync_period"`
}

// StaticDiscoveryConfig lists nodes in the configuration.
type StaticDiscoveryConfig struct {
	Nodes []StaticNode `mapstructure:"nodes"`
}

// StaticNode is one statically configured node.
type StaticNode struct {
	Name   string            `mapstructure:"name"`
	IP     string            `mapstructure:"ip"`
	Port   int               `mapstructure:"port"`
	Labels map[string]string `mapstructure:"labels"`
}

// FileDiscoveryConfig reads a node file and re-reads it when it changes.
type FileDiscoveryConfig struct {
	Path            string        `mapstructure:"path"`
	RefreshInterval time.Duration `mapstructure:"refresh_interval"`
}

// TransportConfig chooses how node endpoints are reached.
type TransportConfig struct {
	Mode      string                   `mapstructure:"mode"`
	Cloudcore CloudcoreTransportConfig `mapstructure:"cloudcore"`
	APIServer APIServerTransportConfig `mapstructure:"apiserver"`
	Direct    DirectTransportConfig    `mapstructure:"direct"`
}

// CloudcoreTransportConfig talks HTTPS to cloudcore's stream server.
type CloudcoreTransportConfig struct {
	// Endpoints are host:port addresses of cloudcore stream servers, tried in turn. With Service
	// they are only used until the Service's endpoints are known.
	Endpoints []string `mapstructure:"endpoints"`
	// Service follows the cloudcore replicas of an HA cloudcore through the EndpointSlices of
	// its Service, so replicas that come and go are followed.
	Service CloudcoreServiceConfig `mapstructure:"service"`
	TLS     configtls.ClientConfig `mapstructure:"tls"`
}

// CloudcoreServiceConfig names cloudcore's Service; every ready endpoint's Port is a stream server.
type CloudcoreServiceConfig struct {
	kube.APIConfig `mapstructure:",squash"`
	// Name is the Service's name; empty: the static endpoints only.
	Name      string `mapstructure:"name"`
	Namespace string `mapstructure:"namespace"`
	// Port is the name of the Service's stream server port (KubeEdge's chart: cloudstream).
	Port string `mapstructure:"port"`
}

// APIServerTransportConfig goes through the API server's node proxy.
type APIServerTransportConfig struct {
	kube.APIConfig `mapstructure:",squash"`
}

// DirectTransportConfig talks to the node's own read-only kubelet endpoint.
type DirectTransportConfig struct {
	// Endpoint is host:port; a node's own deprecated direct address (node file) takes precedence.
	Endpoint string `mapstructure:"endpoint"`
	// Scheme is http (edged's read-only server) or https.
	Scheme string                 `mapstructure:"scheme"`
	TLS    configtls.ClientConfig `mapstructure:"tls"`
}

// Validate checks the configuration and names the offending key.
func (c *Config) Validate() error {
	var errs []error
	if c.CollectionInterval <= 0 {
		errs = append(errs, fmt.Errorf("collection_interval: must be positive, got %v", c.CollectionInterval))
	}
	if c.ScrapeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("scrape_timeout: must be positive, got %v", c.ScrapeTimeout))
	}
	if c.CollectionInterval > 0 && c.ScrapeTimeout > c.CollectionInterval {
		errs = append(errs, fmt.Errorf("scrape_timeout: must not exceed collection_interval (%v), got %v", c.CollectionInterval, c.ScrapeTimeout))
	}
	if c.Job == "" {
		errs = append(errs, errors.New("job: must not be empty"))
	}
	if c.MaxBodyBytesInFlight < 0 {
		errs = append(errs, fmt.Errorf("max_body_bytes_in_flight: must not be negative, got %d", c.MaxBodyBytesInFlight))
	}
	if c.MaxConcurrentScrapes <= 0 {
		errs = append(errs, fmt.Errorf("max_concurrent_scrapes: must be positive, got %d", c.MaxConcurrentScrapes))
	}
	if c.BodySizeLimit <= 0 {
		errs = append(errs, fmt.Errorf("body_size_limit: must be positive, got %d", c.BodySizeLimit))
	}
	if c.SampleLimit < 0 {
		errs = append(errs, fmt.Errorf("sample_limit: must not be negative, got %d", c.SampleLimit))
	}
	if c.NodeSeriesLimit < 0 {
		errs = append(errs, fmt.Errorf("node_series_limit: must not be negative, got %d", c.NodeSeriesLimit))
	}
	if c.LabelLimit < 0 || c.LabelNameLengthLimit < 0 || c.LabelValueLengthLimit < 0 {
		errs = append(errs, fmt.Errorf("label_limit, label_name_length_limit, label_value_length_limit: must not be negative, got %d, %d, %d", c.LabelLimit, c.LabelNameLengthLimit, c.LabelValueLengthLimit))
	}
	if c.MaxFutureSkew < 0 {
		errs = append(errs, fmt.Errorf("max_future_skew: must not be negative, got %v", c.MaxFutureSkew))
	}
	if c.Shard.followsStatefulSet() && c.Discovery.Mode != DiscoveryKubernetes {
		if err := c.Discovery.Kubernetes.APIConfig.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("discovery.kubernetes (the API settings shard.statefulset uses).%w", err))
		}
	}
	errs = append(errs, c.Endpoints.validate(), c.Shard.validate(), c.validateLabels(),
		c.Discovery.validate(), c.Transport.validate(), c.Logs.Validate())
	if _, err := c.relabelConfigs(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (e EndpointsConfig) validate() error {
	enabled := false
	for name, ep := range map[string]EndpointConfig{"metrics": e.Metrics, "cadvisor": e.Cadvisor, "resource": e.Resource} {
		if !ep.Enabled {
			continue
		}
		enabled = true
		if !strings.HasPrefix(ep.Path, "/") {
			return fmt.Errorf("endpoints.%s.path: must start with /, got %q", name, ep.Path)
		}
	}
	if !enabled {
		return errors.New("endpoints: at least one endpoint must be enabled")
	}
	return nil
}

// paths lists the enabled endpoints' paths in a stable order.
func (e EndpointsConfig) paths() []string {
	var out []string
	for _, ep := range []EndpointConfig{e.Metrics, e.Cadvisor, e.Resource} {
		if ep.Enabled {
			out = append(out, ep.Path)
		}
	}
	return out
}

func (s ShardConfig) validate() error {
	if s.followsStatefulSet() {
		return s.validateStatefulSet()
	}
	if s.Count < 1 {
		return fmt.Errorf("shard.count: must be at least 1, got %d", s.Count)
	}
	if s.ReplicasPerShard < 1 {
		return fmt.Errorf("shard.replicas_per_shard: must be at least 1, got %d", s.ReplicasPerShard)
	}
	if n := s.Count * s.ReplicasPerShard; s.Index < 0 || s.Index >= n {
		return fmt.Errorf("shard.index: must be in [0, %d), got %d", n, s.Index)
	}
	return nil
}

func (s ShardConfig) validateStatefulSet() error {
	if s.ReplicasPerShard < 1 {
		return fmt.Errorf("shard.replicas_per_shard: must be at least 1, got %d", s.ReplicasPerShard)
	}
	if s.Index < 0 {
		return fmt.Errorf("shard.index: must not be negative, got %d", s.Index)
	}
	if s.StatefulSet.HandoverDelay < 0 {
		return fmt.Errorf("shard.statefulset.handover_delay: must not be negative, got %v", s.StatefulSet.HandoverDelay)
	}
	for key, v := range map[string]string{"name": s.StatefulSet.Name, "namespace": s.StatefulSet.Namespace} {
		if v == "" {
			continue
		}
		if msgs := validation.IsDNS1123Subdomain(v); len(msgs) > 0 {
			return fmt.Errorf("shard.statefulset.%s: %q is not a valid name: %s", key, v, strings.Join(msgs, "; "))
		}
	}
	return nil
}

// reservedLabels are set by the receiver itself and cannot come from node labels.
var reservedLabels = map[string]bool{
	"job": true, "instance": true, "node": true, "metrics_path": true, model.MetricNameLabel: true,
}

// labelMappings is attributes.labels with the deprecated node_labels merged in.
func (c *Config) labelMappings() []kube.LabelMapping {
	return kube.MergeLabelMap(c.Attributes.Labels, c.NodeLabels)
}

func (c *Config) validateLabels() error {
	key := "attributes.labels"
	if c.NodeLabels != nil {
		key = "node_labels (deprecated) merged into attributes.labels"
	}
	list := c.labelMappings()
	errs := []error{kube.ValidateMappings(key, list)}
	for i, m := range list {
		if m.Attribute == "" {
			continue
		}
		if !model.UTF8Validation.IsValidLabelName(m.Attribute) || strings.HasPrefix(m.Attribute, "__") {
			errs = append(errs, fmt.Errorf("%s[%d].attribute: %q is not a valid series label name", key, i, m.Attribute))
		}
		if reservedLabels[m.Attribute] {
			errs = append(errs, fmt.Errorf("%s[%d].attribute: %q is set by the receiver and cannot be mapped", key, i, m.Attribute))
		}
	}
	return errors.Join(errs...)
}

func (d DiscoveryConfig) validate() error {
	switch d.Mode {
	case DiscoveryKubernetes:
		if err := d.Kubernetes.APIConfig.Validate(); err != nil {
			return fmt.Errorf("discovery.kubernetes.%w", err)
		}
		if _, err := labels.Parse(d.Kubernetes.LabelSelector); err != nil {
			return fmt.Errorf("discovery.kubernetes.label_selector: %w", err)
		}
		if d.Kubernetes.ResyncPeriod < 0 {
			return fmt.Errorf("discovery.kubernetes.resync_period: must not be negative, got %v", d.Kubernetes.ResyncPeriod)
		}
	case DiscoveryStatic:
		return d.Static.validate()
	case DiscoveryFile:
		if d.File.Path == "" {
			return errors.New("discovery.file.path: must be set")
		}
		if d.File.RefreshInterval <= 0 {
			return fmt.Errorf("discovery.file.refresh_interval: must be positive, got %v", d.File.RefreshInterval)
		}
	default:
		return fmt.Errorf("discovery.mode: must be one of %s, %s, %s, got %q", DiscoveryKubernetes, DiscoveryStatic, DiscoveryFile, d.Mode)
	}
	return nil
}

func (s StaticDiscoveryConfig) validate() error {
	if len(s.Nodes) == 0 {
		return errors.New("discovery.static.nodes: must list at least one node")
	}
	seen := map[string]bool{}
	for i, n := range s.Nodes {
		if err := n.node().Validate(); err != nil {
			return fmt.Errorf("discovery.static.nodes[%d]: %w", i, err)
		}
		if seen[n.Name] {
			return fmt.Errorf("discovery.static.nodes[%d]: node %q listed twice", i, n.Name)
		}
		seen[n.Name] = true
	}
	return nil
}

func (n StaticNode) node() kube.Node {
	return kube.Node{Name: n.Name, IP: n.IP, Addresses: []string{n.IP}, KubeletPort: n.Port, Labels: n.Labels}
}

func (t TransportConfig) validate() error {
	switch t.Mode {
	case TransportCloudcore:
		if len(t.Cloudcore.Endpoints) == 0 && t.Cloudcore.Service.Name == "" {
			return errors.New("transport.cloudcore.endpoints: must list at least one host:port, or transport.cloudcore.service.name name cloudcore's Service")
		}
		if svc := t.Cloudcore.Service; svc.Name != "" {
			if svc.Namespace == "" {
				return errors.New("transport.cloudcore.service.namespace: must be set with service.name")
			}
			if err := svc.APIConfig.Validate(); err != nil {
				return fmt.Errorf("transport.cloudcore.service.%w", err)
			}
		}
		for i, ep := range t.Cloudcore.Endpoints {
			if _, _, err := net.SplitHostPort(ep); err != nil {
				return fmt.Errorf("transport.cloudcore.endpoints[%d]: %w, got %q", i, err, ep)
			}
		}
		if err := t.Cloudcore.TLS.Validate(); err != nil {
			return fmt.Errorf("transport.cloudcore.tls: %w", err)
		}
	case TransportAPIServer:
		if err := t.APIServer.Validate(); err != nil {
			return fmt.Errorf("transport.apiserver.%w", err)
		}
	case TransportDirect:
		if t.Direct.Endpoint != "" {
			if _, _, err := net.SplitHostPort(t.Direct.Endpoint); err != nil {
				return fmt.Errorf("transport.direct.endpoint: %w, got %q", err, t.Direct.Endpoint)
			}
		}
		if t.Direct.Scheme != "http" && t.Direct.Scheme != "https" {
			return fmt.Errorf("transport.direct.scheme: must be http or https, got %q", t.Direct.Scheme)
		}
		if err := t.Direct.TLS.Validate(); err != nil {
			return fmt.Errorf("transport.direct.tls: %w", err)
		}
	default:
		return fmt.Errorf("transport.mode: must be one of %s, %s, %s, got %q", TransportCloudcore, TransportAPIServer, TransportDirect, t.Mode)
	}
	return nil
}

// relabelConfigs decodes metric_relabel_configs as Prometheus does.
func (c *Config) relabelConfigs() ([]*relabel.Config, error) {
	return relabelconf.Decode("metric_relabel_configs", c.MetricRelabelConfigs)
}
