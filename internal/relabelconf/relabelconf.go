// Package relabelconf decodes Prometheus relabel configs given in a Collector configuration
// (a list of maps, as mapstructure leaves them) through Prometheus' own YAML unmarshalling, so
// that defaults and validation are exactly Prometheus'.
package relabelconf

import (
	"fmt"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"
	"go.yaml.in/yaml/v2"
)

// Decode decodes raw, naming key (e.g. metric_relabel_configs) and the index in errors.
func Decode(key string, raw []map[string]any) ([]*relabel.Config, error) {
	out := make([]*relabel.Config, 0, len(raw))
	for i, r := range raw {
		data, err := yaml.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", key, i, err)
		}
		rc := &relabel.Config{}
		if err := yaml.UnmarshalStrict(data, rc); err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", key, i, err)
		}
		if err := rc.Validate(model.UTF8Validation); err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", key, i, err)
		}
		out = append(out, rc)
	}
	return out, nil
}
