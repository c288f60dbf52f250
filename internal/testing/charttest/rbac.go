package charttest

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"
)

// Permission is one (API group, resource[/subresource], verb) the code needs or a role grants.
type Permission struct{ Group, Resource, Verb, Name string }

func (p Permission) String() string {
	group := p.Group
	if group == "" {
		group = "core"
	}
	if p.Name != "" {
		return fmt.Sprintf("%s %s/%s %s", p.Verb, group, p.Resource, p.Name)
	}
	return fmt.Sprintf("%s %s/%s", p.Verb, group, p.Resource)
}

// Recorder turns the requests an API-server stand-in receives into the permissions they need,
// with the API server's own request parser.
type Recorder struct {
	mu    sync.Mutex
	seen  map[Permission]bool
	infos request.RequestInfoFactory
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{
		seen:  map[Permission]bool{},
		infos: request.RequestInfoFactory{APIPrefixes: sets.NewString("api", "apis"), GrouplessAPIPrefixes: sets.NewString("api")},
	}
}

// Record notes the permission r needs.
func (rec *Recorder) Record(r *http.Request) error {
	info, err := rec.infos.NewRequestInfo(r)
	if err != nil {
		return err
	}
	if !info.IsResourceRequest {
		return nil
	}
	resource := info.Resource
	if info.Subresource != "" {
		resource += "/" + info.Subresource
	}
	rec.mu.Lock()
	rec.seen[Permission{Group: info.APIGroup, Resource: resource, Verb: info.Verb}] = true
	rec.mu.Unlock()
	return nil
}

// Used returns what was recorded, sorted.
func (rec *Recorder) Used() []Permission {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := make([]Permission, 0, len(rec.seen))
	for p := range rec.seen {
		out = append(out, p)
	}
	return sortPermissions(out)
}

// Granted expands policy rules into permissions (no wildcards are allowed: a least-privilege
// role names everything it grants).
func Granted(rules []rbacv1.PolicyRule) ([]Permission, error) {
	var out []Permission
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					if g == "*" || res == "*" || v == "*" {
						return nil, fmt.Errorf("wildcard in rule %v", r)
					}
					if len(r.ResourceNames) == 0 {
						out = append(out, Permission{g, res, v, ""})
					}
					for _, n := range r.ResourceNames {
						out = append(out, Permission{g, res, v, n})
					}
				}
			}
		}
	}
	return sortPermissions(out), nil
}

func sortPermissions(ps []Permission) []Permission {
	sort.Slice(ps, func(i, j int) bool { return ps[i].String() < ps[j].String() })
	return ps
}

// Format lists permissions one per line, for test failure messages.
func Format(ps []Permission) string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}
