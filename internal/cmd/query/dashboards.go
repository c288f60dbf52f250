package query

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// DashboardQuery is one PromQL expression of a Grafana dashboard: a panel target or the
// expression inside a query variable's label_values(...) / query_result(...).
type DashboardQuery struct {
	File  string // dashboard file name
	Where string // panel title and refId, or variable name
	Expr  string // as written, with Grafana variables
}

// DefaultDashboardVars are values for Grafana's built-in variables, for checking expressions
// outside Grafana.
var DefaultDashboardVars = map[string]string{
	"__rate_interval": "1m", "__interval": "1m", "__interval_ms": "60000",
	"__range": "1h", "__range_s": "3600", "__range_ms": "3600000",
}

// DashboardQueries reads every *.json Grafana dashboard in dir and returns its PromQL
// expressions.
func DashboardQueries(dir string) ([]DashboardQuery, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no dashboards in %s", dir)
	}
	var out []DashboardQuery
	for _, f := range files {
		qs, err := fileQueries(f)
		if err != nil {
			return nil, err
		}
		out = append(out, qs...)
	}
	return out, nil
}

type grafanaDashboard struct {
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // inside collapsed rows
}

func fileQueries(file string) ([]DashboardQuery, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("dashboard %s: %w", file, err)
	}
	name := filepath.Base(file)
	var out []DashboardQuery
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				out = append(out, DashboardQuery{File: name, Where: p.Title + " / " + t.RefID, Expr: t.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, err := variableQuery(v.Query)
		if err != nil {
			return nil, fmt.Errorf("dashboard %s variable %s: %w", name, v.Name, err)
		}
		if expr := variableExpr(q); expr != "" {
			out = append(out, DashboardQuery{File: name, Where: "variable " + v.Name, Expr: expr})
		}
	}
	return out, nil
}

// variableQuery reads a query variable's query: a string, or an object with a query field.
func variableQuery(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var o struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return "", err
	}
	return o.Query, nil
}

var (
	labelValuesRe = regexp.MustCompile(`^\s*label_values\(\s*(.+)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)
	queryResultRe = regexp.MustCompile(`^\s*query_result\(\s*(.+)\s*\)\s*$`)
)

// variableExpr is the PromQL inside Grafana's variable functions; "" for label_values(label)
// and label_names(), which carry none.
func variableExpr(q string) string {
	if m := labelValuesRe.FindStringSubmatch(q); m != nil {
		return m[1]
	}
	if m := queryResultRe.FindStringSubmatch(q); m != nil {
		return m[1]
	}
	return ""
}

var grafanaVarRe = regexp.MustCompile(`\$\{([a-zA-Z0-9_]+)(?::[^}]*)?\}|\[\[([a-zA-Z0-9_]+)\]\]|\$([a-zA-Z0-9_]+)`)

// Substitute replaces Grafana variables ($name, ${name}, ${name:fmt}, [[name]]) with values from
// vars, then DefaultDashboardVars. A variable with no value is an error.
func Substitute(expr string, vars map[string]string) (string, error) {
	var missing []string
	out := grafanaVarRe.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVarRe.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		if v, ok := vars[name]; ok {
			return v
		}
		if v, ok := DefaultDashboardVars[name]; ok {
			return v
		}
		if !slices.Contains(missing, name) {
			missing = append(missing, name)
		}
		return m
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("no value for Grafana variable(s) %s in %q", strings.Join(missing, ", "), expr)
	}
	return out, nil
}
