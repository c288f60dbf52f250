package edgenodeprocessor

import (
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/edgetel/edgetel/internal/kube"
)

// Node sources.
const (
	FromResourceAttribute = "resource_attribute"
	FromConnection        = "connection"
)

// Config is the edgenode processor's configuration.
type Config struct {
	// APIConfig says how to reach the Kubernetes API (auth_type, kubeconfig, context).
	kube.APIConfig `mapstructure:",squash"`
	// NodeSelector is a label selector choosing the nodes to watch.
	NodeSelector string `mapstructure:"node_selector"`
	// ResyncPeriod is the informer's resync period; 0 disables resync.
	ResyncPeriod time.Duration `mapstructure:"resync_period"`
	// WaitForMetadata makes Start wait, up to WaitForMetadataTimeout, for the first node list.
	WaitForMetadata        bool          `mapstructure:"wait_for_metadata"`
	WaitForMetadataTimeout time.Duration `mapstructure:"wait_for_metadata_timeout"`

	// NodeFrom lists, in order, where to find a resource's node.
	NodeFrom []NodeSource `mapstructure:"node_from"`
	// Attributes says which attributes to add.
	Attributes AttributesConfig `mapstructure:"attributes"`
	// Guard is the per-node cardinality guard.
	Guard GuardConfig `mapstructure:"cardinality_guard"`

	_ struct{}
}

// NodeSource is one way to find a resource's node.
type NodeSource struct {
	// From is resource_attribute or connection.
	From string `mapstructure:"from"`
	// Name is the resource attribute (for resource_attribute); its value is matched against
	// node names, then node addresses.
	Name string `mapstructure:"name"`
}

// AttributesConfig names the resource attributes the processor sets; an empty name leaves one out.
type AttributesConfig struct {
	NodeName  string `mapstructure:"node_name"`
	NodeGroup string `mapstructure:"node_group"`
	Ready     string `mapstructure:"ready"`
	// Labels copy node labels into attributes, in the vocabulary the kubeedge receiver shares;
	// Annotations do the same for node annotations.
	Labels      []kube.LabelMapping `mapstructure:"labels"`
	Annotations []kube.LabelMapping `mapstructure:"annotations"`
}

// GuardConfig configures the cardinality guard. A limit of 0 means no limit of that kind.
type GuardConfig struct {
	Enabled            bool          `mapstructure:"enabled"`
	MaxSeriesPerNode   int           `mapstructure:"max_series_per_node"`
	MaxSeriesPerMetric int           `mapstructure:"max_series_per_metric"`
	Window             time.Duration `mapstructure:"window"`
	LogInterval        time.Duration `mapstructure:"log_interval"`
}

// Validate checks the configuration and names the offending key.
func (c *Config) Validate() error {
	var errs []error
	errs = append(errs, c.APIConfig.Validate())
	if _, err := labels.Parse(c.NodeSelector); err != nil {
		errs = append(errs, fmt.Errorf("node_selector: %w", err))
	}
	if c.ResyncPeriod < 0 {
		errs = append(errs, fmt.Errorf("resync_period: must not be negative, got %v", c.ResyncPeriod))
	}
	if c.WaitForMetadata && c.WaitForMetadataTimeout <= 0 {
		errs = append(errs, fmt.Errorf("wait_for_metadata_timeout: must be positive, got %v", c.WaitForMetadataTimeout))
	}
	errs = append(errs, c.validateSources()...)
	errs = append(errs, c.Attributes.validate()...)
	errs = append(errs, c.Guard.validate()...)
	return errors.Join(errs...)
}

func (c *Config) validateSources() []error {
	if len(c.NodeFrom) == 0 {
		return []error{errors.New("node_from: at least one source is required")}
	}
	var errs []error
	for i, s := range c.NodeFrom {
		switch s.From {
		case FromResourceAttribute:
			if s.Name == "" {
				errs = append(errs, fmt.Errorf("node_from[%d].name: required with from %s", i, s.From))
			}
		case FromConnection:
			if s.Name != "" {
				errs = append(errs, fmt.Errorf("node_from[%d].name: not allowed with from %s", i, s.From))
			}
		default:
			errs = append(errs, fmt.Errorf("node_from[%d].from: must be %s or %s, got %q", i, FromResourceAttribute, FromConnection, s.From))
		}
	}
	return errs
}

func (a *AttributesConfig) validate() []error {
	var errs []error
	seen := map[string]string{}
	claim := func(attr, key string) {
		if attr == "" {
			return
		}
		if prev, ok := seen[attr]; ok {
			errs = append(errs, fmt.Errorf("%s: attribute %q is already set by %s", key, attr, prev))
			return
		}
		seen[attr] = key
	}
	claim(a.NodeName, "attributes.node_name")
	claim(a.NodeGroup, "attributes.node_group")
	claim(a.Ready, "attributes.ready")
	check := func(list []kube.LabelMapping, kind string) {
		for i, m := range list {
			key := fmt.Sprintf("attributes.%s[%d]", kind, i)
			if m.Key == "" {
				errs = append(errs, fmt.Errorf("%s.key: must not be empty", key))
			}
			if m.Attribute == "" {
				errs = append(errs, fmt.Errorf("%s.attribute: must not be empty", key))
			}
			claim(m.Attribute, key+".attribute")
		}
	}
	check(a.Labels, "labels")
	check(a.Annotations, "annotations")
	return errs
}

func (g *GuardConfig) validate() []error {
	if !g.Enabled {
		return nil
	}
	var errs []error
	if g.MaxSeriesPerNode < 0 {
		errs = append(errs, fmt.Errorf("cardinality_guard.max_series_per_node: must not be negative, got %d", g.MaxSeriesPerNode))
	}
	if g.MaxSeriesPerMetric < 0 {
		errs = append(errs, fmt.Errorf("cardinality_guard.max_series_per_metric: must not be negative, got %d", g.MaxSeriesPerMetric))
	}
	if g.MaxSeriesPerNode == 0 && g.MaxSeriesPerMetric == 0 {
		errs = append(errs, errors.New("cardinality_guard: enabled, but max_series_per_node and max_series_per_metric are both 0"))
	}
	if g.Window <= 0 {
		errs = append(errs, fmt.Errorf("cardinality_guard.window: must be positive, got %v", g.Window))
	}
	if g.LogInterval <= 0 {
		errs = append(errs, fmt.Errorf("cardinality_guard.log_interval: must be positive, got %v", g.LogInterval))
	}
	return errs
}
