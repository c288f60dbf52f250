{{/* Names and labels, following the OpenTelemetry and prometheus-community charts. */}}
{{- define "edgetel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "edgetel.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* edgetel.component: the fullname of one component, e.g. (dict "root" . "name" "collector") */}}
{{- define "edgetel.component" -}}
{{- printf "%s-%s" (include "edgetel.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "edgetel.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "edgetel.labels" -}}
helm.sh/chart: {{ include "edgetel.chart" .root }}
{{ include "edgetel.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: edgetel
{{- end }}

{{- define "edgetel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edgetel.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "edgetel.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{ printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else -}}
{{ printf "%s:%s" .Values.image.repository $tag }}
{{- end -}}
{{- end }}

{{- define "edgetel.serviceAccountName" -}}
{{- if .root.Values.serviceAccount.create }}
{{- include "edgetel.component" . }}
{{- else }}
{{- default "default" .root.Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The bucket config: a Secret the user names, or one the chart makes from .Values.bucket.config. */}}
{{- define "edgetel.bucketSecretName" -}}
{{- if .Values.bucket.existingSecret }}
{{- .Values.bucket.existingSecret }}
{{- else }}
{{- include "edgetel.component" (dict "root" . "name" "bucket") }}
{{- end }}
{{- end }}
