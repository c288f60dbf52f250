package kube

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// LabelMapping copies the node label Key into the attribute Attribute. The kubeedge receiver
// and the edgenode processor both take a list of them under attributes.labels.
type LabelMapping struct {
	Key       string `mapstructure:"key"`
	Attribute string `mapstructure:"attribute"`
}

// DefaultLabelMappings is the one default mapping: region and site from the standard topology
// labels. A configured list replaces it.
func DefaultLabelMappings() []LabelMapping {
	return []LabelMapping{
		{Key: LabelRegion, Attribute: "region"},
		{Key: LabelSite, Attribute: "site"},
	}
}

// ValidateMappings checks that every mapping names a label and an attribute and that no
// attribute is set twice; key is the config key of the list, for the messages.
func ValidateMappings(key string, list []LabelMapping) error {
	var errs []error
	seen := map[string]int{}
	for i, m := range list {
		if m.Key == "" {
			errs = append(errs, fmt.Errorf("%s[%d].key: must not be empty", key, i))
		}
		if m.Attribute == "" {
			errs = append(errs, fmt.Errorf("%s[%d].attribute: must not be empty", key, i))
			continue
		}
		if j, ok := seen[m.Attribute]; ok {
			errs = append(errs, fmt.Errorf("%s[%d].attribute: %q is already set by %s[%d]", key, i, m.Attribute, key, j))
			continue
		}
		seen[m.Attribute] = i
	}
	return errors.Join(errs...)
}

// MergeLabelMap applies a deprecated series-label → node-label map (the kubeedge receiver's old
// node_labels) to list: a mapping to "" removes that attribute, any other replaces or adds it.
// Attributes are visited in sorted order so the result does not depend on map iteration.
func MergeLabelMap(list []LabelMapping, old map[string]string) []LabelMapping {
	out := append([]LabelMapping(nil), list...)
	for _, attr := range slices.Sorted(maps.Keys(old)) {
		label := old[attr]
		i := indexOfAttribute(out, attr)
		switch {
		case label == "" && i >= 0:
			out = append(out[:i], out[i+1:]...)
		case label == "":
		case i >= 0:
			out[i].Key = label
		default:
			out = append(out, LabelMapping{Key: label, Attribute: attr})
		}
	}
	return out
}

func indexOfAttribute(list []LabelMapping, attr string) int {
	for i, m := range list {
		if m.Attribute == attr {
			return i
		}
	}
	return -1
}
