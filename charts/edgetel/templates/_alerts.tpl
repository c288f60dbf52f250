{{- /*
edgetel.alertRules renders the groups of files/edgetel-alerts.yaml named in .groups, as a rule
file ("groups: ..."), with alerts.disabled left out and alerts.overrides applied; with .additional,
alerts.additionalRules are appended. Names in alerts.disabled / alerts.overrides that are no
shipped alert fail the render, so that a typo does not silently keep an alert on.
*/}}
{{- define "edgetel.alertRules" -}}
{{- $a := .root.Values.alerts -}}
{{- $file := .root.Files.Get "files/edgetel-alerts.yaml" | fromYaml -}}
{{- $known := list -}}
{{- range $g := $file.groups }}{{ range $r := $g.rules }}{{ $known = append $known $r.alert }}{{ end }}{{ end -}}
{{- range $name := $a.disabled }}{{ if not (has $name $known) }}{{ fail (printf "alerts.disabled: %s is not an alert of the chart (%s)" $name (join ", " $known)) }}{{ end }}{{ end -}}
{{- range $name, $_ := $a.overrides }}{{ if not (has $name $known) }}{{ fail (printf "alerts.overrides: %s is not an alert of the chart (%s)" $name (join ", " $known)) }}{{ end }}{{ end -}}
{{- $cmp := "(>=|<=|>|<|==|!=) *[-+]?[0-9][0-9.eE+-]*" -}}
{{- $groups := list -}}
{{- range $g := $file.groups -}}
{{- if has $g.name $.groups -}}
{{- $rules := list -}}
{{- range $r := $g.rules -}}
{{- if not (has $r.alert $a.disabled) -}}
{{- $r = deepCopy $r -}}
{{- $o := get $a.overrides $r.alert | default dict -}}
{{- with $o.for }}{{ $_ := set $r "for" . }}{{ end -}}
{{- if hasKey $o "threshold" -}}
{{- if not (kindIs "float64" $o.threshold) }}{{ fail (printf "alerts.overrides.%s.threshold: want a number, got %v" $r.alert $o.threshold) }}{{ end -}}
{{- $parts := regexSplit $cmp $r.expr 2 -}}
{{- if lt (len $parts) 2 }}{{ fail (printf "alerts.overrides.%s.threshold: its expression compares with no number" $r.alert) }}{{ end -}}
{{- $op := regexFind "^(>=|<=|>|<|==|!=)" (regexFind $cmp $r.expr) -}}
{{- $_ := set $r "expr" (printf "%s%s %v%s" (index $parts 0) $op $o.threshold (index $parts 1)) -}}
{{- end -}}
{{- $rules = append $rules $r -}}
{{- end -}}
{{- end -}}
{{- if $rules }}{{ $groups = append $groups (set (deepCopy $g) "rules" $rules) }}{{ end -}}
{{- end -}}
{{- end -}}
{{- if .additional }}{{ $groups = concat $groups $a.additionalRules }}{{ end -}}
{{- toYaml (dict "groups" $groups) -}}
{{- end -}}
