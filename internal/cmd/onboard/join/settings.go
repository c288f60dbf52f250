// Package join is the edge-node join service: an HTTP API compatible with KubeSphere
// edge-watcher's join endpoint that validates a requested node and returns the shell command that
// downloads keadm and joins the node to cloudcore.
package join

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// Flavor selects the keadm the command is written for.
type Flavor string

const (
	// FlavorUpstream is kubeedge/kubeedge's keadm.
	FlavorUpstream Flavor = "upstream"
	// FlavorKubeSphere is KubeSphere's keadm fork (--region, --quicport, --tunnelport, --edgenode-ip,
	// --with-edge-taint), what edge-watcher's command used.
	FlavorKubeSphere Flavor = "kubesphere"
)

// Settings are the operator's choices: from flags, overridden by the settings ConfigMap.
type Settings struct {
	Flavor Flavor
	// Version is the KubeEdge version, e.g. v1.23.0.
	Version string
	// Region is zh or en (KubeSphere flavor; picks the default mirror).
	Region string
	// Mirror is the keadm download URL; {version} and {arch} are replaced. A URL without
	// placeholders is a base: /{version}/keadm-{version}-linux-{arch}.tar.gz is appended.
	Mirror string
	// KeadmSHA512 pins the keadm tarball's SHA-512 (hex) per architecture (amd64, arm64, arm);
	// empty: the checksum file published next to the tarball is fetched and checked.
	KeadmSHA512 map[string]string
	// Labels are passed to keadm --labels.
	Labels map[string]string
	// ExtraFlags are appended to keadm join, each a single --flag or --flag=value.
	ExtraFlags []string
	// CloudcoreAddress overrides cloudcore's advertiseAddress[0] (e.g. a load balancer).
	CloudcoreAddress string
}

// Settings ConfigMap keys; version, region and uri are edge-watcher-config's.
const (
	KeyVersion    = "version"
	KeyRegion     = "region"
	KeyMirror     = "uri"
	KeyFlavor     = "flavor"
	KeyLabels     = "labels"
	KeyExtraFlags = "extraFlags"
	KeyAddress    = "cloudcoreAddress"
	KeySHA512     = "keadmSHA512"
)

// Overlay returns s with the ConfigMap's non-empty values on top.
func (s Settings) Overlay(data map[string]string) (Settings, error) {
	if v := data[KeyVersion]; v != "" {
		s.Version = v
	}
	if v := data[KeyRegion]; v != "" {
		s.Region = v
	}
	if v := data[KeyMirror]; v != "" {
		s.Mirror = v
	}
	if v := data[KeyFlavor]; v != "" {
		s.Flavor = Flavor(v)
	}
	if v := data[KeyAddress]; v != "" {
		s.CloudcoreAddress = v
	}
	if v := data[KeySHA512]; v != "" {
		l, err := ParseLabels(v)
		if err != nil {
			return s, fmt.Errorf("%s: %w", KeySHA512, err)
		}
		s.KeadmSHA512 = l
	}
	if v := data[KeyLabels]; v != "" {
		l, err := ParseLabels(v)
		if err != nil {
			return s, err
		}
		s.Labels = l
	}
	if v := data[KeyExtraFlags]; v != "" {
		s.ExtraFlags = strings.Fields(v)
	}
	return s, s.Validate()
}

// ParseLabels reads k=v,k2=v2.
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

var (
	versionRE = regexp.MustCompile(`^v?[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(-[0-9A-Za-z.]{1,32})?$`)
	flagRE    = regexp.MustCompile(`^--[a-z][a-z0-9-]{0,62}(=[A-Za-z0-9._:/,=@+\[\]-]{0,256})?$`)
	// urlRE admits no character a shell treats specially inside or around quotes.
	// Only https: the tarball's keadm runs as root on the edge node.
	urlRE    = regexp.MustCompile(`^https://[A-Za-z0-9._~:/%+,@{}=-]+$`)
	sha512RE = regexp.MustCompile(`^[0-9a-f]{128}$`)
	tokenRE  = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){1,3}$`)
)

// Validate checks every value that ends up in the command.
func (s Settings) Validate() error {
	var errs []error
	if s.Flavor != FlavorUpstream && s.Flavor != FlavorKubeSphere {
		errs = append(errs, fmt.Errorf("flavor %q: want %s or %s", s.Flavor, FlavorUpstream, FlavorKubeSphere))
	}
	if !versionRE.MatchString(s.Version) {
		errs = append(errs, fmt.Errorf("version %q: want a KubeEdge version like v1.23.0", s.Version))
	}
	if s.Flavor == FlavorKubeSphere && s.Region != "zh" && s.Region != "en" {
		errs = append(errs, fmt.Errorf("region %q: want zh or en", s.Region))
	}
	if s.Mirror != "" {
		if err := validateMirror(s.Mirror); err != nil {
			errs = append(errs, err)
		}
	}
	for _, a := range sortedKeys(s.KeadmSHA512) {
		if _, ok := Arches[a]; !ok {
			errs = append(errs, fmt.Errorf("keadm checksum for %q: want amd64, arm64 or arm", clip(a)))
		}
		if !sha512RE.MatchString(s.KeadmSHA512[a]) {
			errs = append(errs, fmt.Errorf("keadm checksum for %s: want 128 lower-case hex digits (sha512sum)", a))
		}
	}
	for _, k := range sortedKeys(s.Labels) {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, fmt.Errorf("label key %q: %s", k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(s.Labels[k]) {
			errs = append(errs, fmt.Errorf("label %q value %q: %s", k, s.Labels[k], msg))
		}
	}
	for _, f := range s.ExtraFlags {
		if !flagRE.MatchString(f) {
			errs = append(errs, fmt.Errorf("extra flag %q: want --name or --name=value of letters, digits and ._:/,=@+[]-", f))
		}
	}
	if s.CloudcoreAddress != "" {
		if err := validateHost(s.CloudcoreAddress); err != nil {
			errs = append(errs, fmt.Errorf("cloudcore address: %w", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("join settings: %w", errors.Join(errs...))
	}
	return nil
}

func validateMirror(m string) error {
	if len(m) > 256 || !urlRE.MatchString(m) {
		return fmt.Errorf("mirror %q: want an https URL of at most 256 letters, digits and ._~:/%%+,@=- with optional {version} and {arch}", clip(m))
	}
	u, err := url.Parse(strings.NewReplacer("{version}", "v", "{arch}", "a").Replace(m))
	if err != nil || u.Host == "" {
		return fmt.Errorf("mirror %q: not a URL with a host", m)
	}
	if strings.ContainsAny(strings.NewReplacer("{version}", "", "{arch}", "").Replace(m), "{}") {
		return fmt.Errorf("mirror %q: only {version} and {arch} may appear in braces", m)
	}
	return nil
}

// validateHost accepts an IP address or a DNS-1123 subdomain.
func validateHost(h string) error {
	if ip := net.ParseIP(h); ip != nil {
		return nil
	}
	if msgs := validation.IsDNS1123Subdomain(h); len(msgs) > 0 {
		return fmt.Errorf("%q is neither an IP address nor a DNS name: %s", h, strings.Join(msgs, "; "))
	}
	return nil
}

func validatePort(name string, p int) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("%s port %d out of range", name, p)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Cloudcore is what the command needs from cloudcore's own configuration.
type Cloudcore struct {
	Address    string
	Websocket  int
	Quic       int
	HTTPS      int
	TunnelPort int
}

// ParseCloudcoreConfig reads cloudcore.yaml from the kubeedge/cloudcore ConfigMap, with
// cloudcore's own defaults for absent ports (docs/kubeedge.md §1).
func ParseCloudcoreConfig(data string) (Cloudcore, error) {
	var cfg struct {
		Modules struct {
			CloudHub struct {
				AdvertiseAddress []string `json:"advertiseAddress"`
				Websocket        struct {
					Port int `json:"port"`
				} `json:"websocket"`
				Quic struct {
					Port int `json:"port"`
				} `json:"quic"`
				HTTPS struct {
					Port int `json:"port"`
				} `json:"https"`
			} `json:"cloudHub"`
			CloudStream struct {
				TunnelPort int `json:"tunnelPort"`
			} `json:"cloudStream"`
		} `json:"modules"`
	}
	if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
		return Cloudcore{}, fmt.Errorf("parsing cloudcore.yaml: %w", err)
	}
	ch := cfg.Modules.CloudHub
	cc := Cloudcore{Websocket: or(ch.Websocket.Port, 10000), Quic: or(ch.Quic.Port, 10001),
		HTTPS: or(ch.HTTPS.Port, 10002), TunnelPort: or(cfg.Modules.CloudStream.TunnelPort, 10004)}
	if len(ch.AdvertiseAddress) > 0 {
		cc.Address = ch.AdvertiseAddress[0]
	}
	return cc, nil
}

func (c Cloudcore) validate() error {
	var errs []error
	if c.Address == "" {
		errs = append(errs, errors.New("cloudcore.yaml has no modules.cloudHub.advertiseAddress"))
	} else if err := validateHost(c.Address); err != nil {
		errs = append(errs, fmt.Errorf("cloudcore advertise address: %w", err))
	}
	for _, p := range []struct {
		n string
		v int
	}{{"websocket", c.Websocket}, {"quic", c.Quic}, {"https", c.HTTPS}, {"tunnel", c.TunnelPort}} {
		if err := validatePort(p.n, p.v); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func or(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func itoa(i int) string { return strconv.Itoa(i) }
