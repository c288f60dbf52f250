{{/*
edgetel.serviceMonitor: a prometheus-operator ServiceMonitor for one component's Service, found by
the component's selector labels (edgetel.selectorLabels). The Service must name its metrics port.
  root: the chart's root context        name: the component, e.g. "query" or "onboard-controller"
  port: the Service's port name         path: the metrics path (default /metrics)
  values: {interval, scrapeTimeout, labels, relabelings, metricRelabelings}
  job: the job label (default: the Service's name)
The onboarding controller's is in onboard-servicemonitor.yaml.
*/}}
{{- define "edgetel.serviceMonitor" -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "edgetel.component" (dict "root" .root "name" .name) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "edgetel.labels" (dict "root" .root "name" .name) | nindent 4 }}
    {{- with .values.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- with .job }}
  # The Service's label edgetel.io/job becomes the job label.
  jobLabel: edgetel.io/job
  {{- end }}
  selector:
    matchLabels:
      {{- include "edgetel.selectorLabels" (dict "root" .root "name" .name) | nindent 6 }}
  namespaceSelector:
    matchNames: [{{ .root.Release.Namespace }}]
  endpoints:
    - port: {{ .port }}
      path: {{ .path | default "/metrics" }}
      {{- with .values.interval }}
      interval: {{ . }}
      {{- end }}
      {{- with .values.scrapeTimeout }}
      scrapeTimeout: {{ . }}
      {{- end }}
      {{- with .values.relabelings }}
      relabelings:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .values.metricRelabelings }}
      metricRelabelings:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
