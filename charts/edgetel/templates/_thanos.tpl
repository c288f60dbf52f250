{{/* The collectors' heads and the Thanos scale path: helpers the collector, query and Thanos
templates share. */}}

{{/* edgetel.headAPI: non-empty when the collectors serve their heads (the objstore exporter's head_api). */}}
{{- define "edgetel.headAPI" -}}
{{- if and .Values.collector.enabled .Values.collector.objstore.enabled .Values.thanos.head.enabled }}true{{ end }}
{{- end }}

{{/* edgetel.headDNS: host:port of the collectors' head APIs, through the headless Service. */}}
{{- define "edgetel.headDNS" -}}
{{ include "edgetel.component" (dict "root" . "name" "collector") }}-headless.{{ .Release.Namespace }}.svc:{{ .Values.thanos.head.port }}
{{- end }}

{{/* edgetel.headTokenSecret: the Secret holding the head API's bearer token. */}}
{{- define "edgetel.headTokenSecret" -}}
{{- default (include "edgetel.component" (dict "root" . "name" "head-token")) .Values.thanos.head.tokenSecret }}
{{- end }}

{{/* edgetel.headServerName: the name the heads' certificate carries (clients dial pods by address). */}}
{{- define "edgetel.headServerName" -}}
{{ include "edgetel.component" (dict "root" . "name" "collector") }}-headless.{{ .Release.Namespace }}.svc
{{- end }}

{{/* edgetel.headAPIConfig: the objstore exporter's head_api: the bearer token and TLS when set. */}}
{{- define "edgetel.headAPIConfig" -}}
{{- $h := .Values.thanos.head -}}
{{- $api := dict "endpoint" (printf "${env:POD_IP}:%v" $h.port)
      "auth" (dict "authenticator" "bearertokenauth/head")
      "max_queries_per_request" (int $h.maxQueriesPerRequest)
      "max_samples_per_request" (int64 $h.maxSamplesPerRequest) -}}
{{- if $h.tlsSecret }}
{{- $_ := set $api "tls" (dict "cert_file" "/etc/edgetel/head-tls/tls.crt" "key_file" "/etc/edgetel/head-tls/tls.key") }}
{{- end }}
{{- toJson $api }}
{{- end }}

{{/* edgetel.headMounts: the head API's token and TLS, in the collector and its readers. */}}
{{- define "edgetel.headMounts" -}}
{{- if include "edgetel.headAPI" . }}
- name: head-token
  mountPath: /etc/edgetel/head-token
  readOnly: true
{{- if .Values.thanos.head.tlsSecret }}
- name: head-tls
  mountPath: /etc/edgetel/head-tls
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{- define "edgetel.headVolumes" -}}
{{- if include "edgetel.headAPI" . }}
- name: head-token
  secret:
    secretName: {{ include "edgetel.headTokenSecret" . }}
    items: [{key: token, path: token}]
{{- if .Values.thanos.head.tlsSecret }}
- name: head-tls
  secret:
    secretName: {{ .Values.thanos.head.tlsSecret }}
{{- end }}
{{- end }}
{{- end }}

{{/* edgetel.headScheme: how the readers dial the heads. */}}
{{- define "edgetel.headScheme" -}}
{{ ternary "https" "http" (not (empty .Values.thanos.head.tlsSecret)) }}
{{- end }}

{{/* edgetel.queryHeadArgs: edgetel-query's flags for the heads: found by the headless Service,
read with the token (and the CA and name of their certificate). */}}
{{- define "edgetel.queryHeadArgs" -}}
{{- if include "edgetel.headAPI" . }}
- --head.dns={{ include "edgetel.headDNS" . }}
- --head.scheme={{ include "edgetel.headScheme" . }}
- --head.bearer-token-file=/etc/edgetel/head-token/token
{{- if .Values.thanos.head.tlsSecret }}
- --head.tls-ca-file=/etc/edgetel/head-tls/ca.crt
- --head.tls-server-name={{ include "edgetel.headServerName" . }}
{{- end }}
{{- end }}
{{- end }}

{{/* edgetel.sidecarHTTPClient: the Thanos sidecar's client of the head (Thanos' HTTP client
configuration, --prometheus.http-client). */}}
{{- define "edgetel.sidecarHTTPClient" -}}
{{- $c := dict "bearer_token_file" "/etc/edgetel/head-token/token" -}}
{{- if .Values.thanos.head.tlsSecret }}
{{- $_ := set $c "tls_config" (dict "ca_file" "/etc/edgetel/head-tls/ca.crt" "server_name" (include "edgetel.headServerName" .)) }}
{{- end }}
{{- toJson $c }}
{{- end }}

{{/* edgetel.thanosCheck fails on thanos values that cannot work. */}}
{{- define "edgetel.thanosCheck" -}}
{{- if .Values.thanos.enabled }}
{{- if not (include "edgetel.headAPI" .) }}
{{- fail "thanos.enabled needs collector.enabled, collector.objstore.enabled and thanos.head.enabled: the sidecars serve the collectors' heads" }}
{{- end }}
{{- if and (not .Values.bucket.existingSecret) (eq (upper (toString .Values.bucket.config.type)) "FILESYSTEM") }}
{{- fail "thanos.enabled needs an object store bucket (bucket.existingSecret or bucket.config of type S3, GCS, AZURE...): the default FILESYSTEM bucket lives on the collector's volume, which the store gateway cannot reach" }}
{{- end }}
{{- end }}
{{- end }}

{{/* edgetel.collectorHeadPorts: the collector container's head port. */}}
{{- define "edgetel.collectorHeadPorts" -}}
{{- if include "edgetel.headAPI" . }}
- name: head
  containerPort: {{ .Values.thanos.head.port }}
  protocol: TCP
{{- end }}
{{- end }}

{{/* edgetel.collectorThanosServicePorts: the head and sidecar ports on the collectors' headless Service. */}}
{{- define "edgetel.collectorThanosServicePorts" -}}
{{- if include "edgetel.headAPI" . }}
- name: head
  port: {{ .Values.thanos.head.port }}
  targetPort: head
{{- end }}
{{- if .Values.thanos.enabled }}
# The querier finds the sidecars by this port's SRV records (_grpc._tcp).
- name: grpc
  port: 10901
  targetPort: thanos-grpc
{{- end }}
{{- end }}

{{/* edgetel.collectorThanosPolicyRules: the collector's NetworkPolicy rules for its head API
(edgetel-query, and with Thanos the collector pods, where the sidecar that reads it runs) and the
sidecar's StoreAPI (Thanos' querier). Nothing else reaches the head. */}}
{{- define "edgetel.collectorThanosPolicyRules" -}}
{{- if and (include "edgetel.headAPI" .) (or .Values.query.enabled .Values.thanos.enabled) }}
- ports:
    - port: {{ .Values.thanos.head.port }}
      protocol: TCP
  from:
    {{- if .Values.query.enabled }}
    - podSelector:
        matchLabels:
          {{- include "edgetel.selectorLabels" (dict "root" . "name" "query") | nindent 10 }}
    {{- end }}
    {{- if .Values.thanos.enabled }}
    - podSelector:
        matchLabels:
          {{- include "edgetel.selectorLabels" (dict "root" . "name" "collector") | nindent 10 }}
    {{- end }}
{{- end }}
{{- if .Values.thanos.enabled }}
- ports:
    - port: 10901
      protocol: TCP
  from:
    - podSelector:
        matchLabels:
          {{- include "edgetel.selectorLabels" (dict "root" . "name" "thanos-query") | nindent 10 }}
{{- end }}
{{- end }}

{{/* edgetel.thanosSidecar: the Thanos sidecar container beside the collector. No bucket
configuration: it does not ship (the exporter uploads), it serves the head to the querier. */}}
{{- define "edgetel.thanosSidecar" -}}
{{- if .Values.thanos.enabled }}
- name: thanos-sidecar
  image: {{ include "edgetel.image" (dict "root" . "image" .Values.thanos.image) }}
  imagePullPolicy: {{ .Values.thanos.image.pullPolicy }}
  args:
    - sidecar
    - --prometheus.url={{ include "edgetel.headScheme" . }}://$(POD_IP):{{ .Values.thanos.head.port }}
    - --prometheus.http-client={{ include "edgetel.sidecarHTTPClient" . }}
    - --tsdb.path=/var/thanos/sidecar
    - --http-address=0.0.0.0:10902
    - --grpc-address=0.0.0.0:10901
  env:
    - name: POD_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
  ports:
    - name: thanos-grpc
      containerPort: 10901
      protocol: TCP
    - name: thanos-http
      containerPort: 10902
      protocol: TCP
  livenessProbe:
    httpGet: {path: /-/healthy, port: thanos-http}
    periodSeconds: 30
  # Ready once it has read the head's external labels.
  readinessProbe:
    httpGet: {path: /-/ready, port: thanos-http}
    periodSeconds: 10
  resources:
    {{- toYaml .Values.thanos.sidecar.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.thanos.securityContext | nindent 4 }}
  volumeMounts:
    - name: thanos-sidecar
      mountPath: /var/thanos/sidecar
    {{- include "edgetel.headMounts" . | nindent 4 }}
{{- end }}
{{- end }}

{{- define "edgetel.thanosSidecarVolumes" -}}
{{- if .Values.thanos.enabled }}
- name: thanos-sidecar
  emptyDir: {}
{{- end }}
{{- end }}

{{/* edgetel.thanosServiceAccount: a ServiceAccount for one Thanos component, when the chart makes them. */}}
{{- define "edgetel.thanosServiceAccount" -}}
{{- if .root.Values.serviceAccount.create }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "edgetel.component" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "edgetel.labels" . | nindent 4 }}
  {{- with .root.Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* edgetel.datasourceURL: Grafana's default data source, Thanos' querier on the scale path, else edgetel-query. */}}
{{- define "edgetel.datasourceURL" -}}
{{- if .Values.thanos.enabled -}}
{{ printf "http://%s.%s.svc:%v" (include "edgetel.component" (dict "root" . "name" "thanos-query")) .Release.Namespace .Values.thanos.query.service.port }}
{{- else -}}
{{ printf "%s://%s.%s.svc:%v" (ternary "https" "http" (not (empty .Values.query.web.tls.secretName))) (include "edgetel.component" (dict "root" . "name" "query")) .Release.Namespace .Values.query.service.port }}
{{- end -}}
{{- end }}
