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

{{/* An image reference from {repository, tag, digest}: pinned by digest when one is given,
else by tag (default: the chart's appVersion). Call with (dict "root" $ "image" <values>). */}}
{{- define "edgetel.image" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag -}}
{{- if .image.digest -}}
{{ printf "%s@%s" .image.repository .image.digest }}
{{- else -}}
{{ printf "%s:%s" .image.repository $tag }}
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

{{/* edgetel.goMemLimit: GOMEMLIMIT in bytes, percent of a memory limit such as 2Gi or 512M, e.g.
(dict "limit" .Values.collector.resources.limits.memory "percent" 80). Empty without a limit. */}}
{{- define "edgetel.goMemLimit" -}}
{{- with .limit }}
{{- $s := toString . }}
{{- $units := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "K" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 }}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $s }}
{{- $unit := trimPrefix $num $s }}
{{- if or (not $num) (and $unit (not (hasKey $units $unit))) }}
{{- fail (printf "resources.limits.memory %q: want a number with an optional Ki, Mi, Gi, Ti, K, M, G or T suffix" $s) }}
{{- end }}
{{- $bytes := mulf (float64 $num) (float64 (default 1 (get $units $unit))) }}
{{- printf "%d" (int64 (divf (mulf $bytes (float64 $.percent)) 100)) }}
{{- end }}
{{- end }}

{{/* edgetel.selfScrapeJob: the job of the collector's own telemetry, wherever it is scraped. */}}
{{- define "edgetel.selfScrapeJob" -}}
edgetelcol
{{- end }}

{{/* edgetel.cloudcoreCAMessage: what to do when the cloudcore CA Secret is missing. */}}
{{- define "edgetel.cloudcoreCAMessage" -}}
{{- $s := .Values.collector.cloudcore.caSecret -}}
The collector needs cloudcore's stream CA in Secret {{ $s.name }} (key {{ $s.key }}) in namespace {{ .Release.Namespace }}.
Create it from streamCA.crt alone (cloudcore's own Secret also holds its private key: do not copy that Secret):
  kubectl -n {{ .Release.Namespace }} create secret generic {{ $s.name }} --from-file={{ $s.key }}=<(kubectl -n {{ .Values.onboard.kubeedgeNamespace }} get secret cloudcore -o jsonpath='{.data.streamCA\.crt}' | base64 -d)
{{- end }}

{{/* edgetel.checkCloudcoreCA: at install or upgrade against a cluster (not helm template, where
lookup finds nothing, not even the release namespace), fail early when the CA Secret is missing. */}}
{{- define "edgetel.checkCloudcoreCA" -}}
{{- $c := .Values.collector -}}
{{- if and $c.enabled (eq $c.transport "cloudcore") $c.cloudcore.caSecret.checkAtInstall (lookup "v1" "Namespace" "" .Release.Namespace) }}
{{- $secret := lookup "v1" "Secret" .Release.Namespace $c.cloudcore.caSecret.name }}
{{- if not (and $secret (hasKey (default (dict) $secret.data) $c.cloudcore.caSecret.key)) }}
{{- fail (printf "\nSecret %s (key %s) is missing in namespace %s.\n%s\n(collector.cloudcore.caSecret.checkAtInstall=false skips this check.)" $c.cloudcore.caSecret.name $c.cloudcore.caSecret.key .Release.Namespace (include "edgetel.cloudcoreCAMessage" .)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* edgetel.queryWebSecret: the Secret holding edgetel-query's web config (TLS, basic auth
users), or empty when it serves plain HTTP without users. */}}
{{- define "edgetel.queryWebSecret" -}}
{{- $w := .Values.query.web -}}
{{- if $w.existingSecret -}}
{{ $w.existingSecret }}
{{- else if or $w.basicAuthUsers $w.tls.secretName -}}
{{ include "edgetel.component" (dict "root" . "name" "query") }}-web
{{- end -}}
{{- end }}

{{/* edgetel.queryMaxSamples: query.queryMaxSamples, or when 0 half the memory limit shared by
query.maxConcurrency queries at 32 bytes a sample (a point is 16 bytes; the engine's slices grow
by doubling). Prometheus' 50,000,000 without a memory limit. */}}
{{- define "edgetel.queryMaxSamples" -}}
{{- $q := .Values.query -}}
{{- if $q.queryMaxSamples -}}
{{ int64 $q.queryMaxSamples }}
{{- else -}}
{{- $half := include "edgetel.goMemLimit" (dict "limit" (dig "limits" "memory" "" $q.resources) "percent" 50) -}}
{{- if $half -}}
{{ max 1 (div (int64 $half) (mul 32 (int64 $q.maxConcurrency))) }}
{{- else -}}
50000000
{{- end -}}
{{- end -}}
{{- end }}

{{/* edgetel.rwCredentials: for a remote-write values block (collector.remoteWrite, one of its
  extraDestinations, edgeAgent) given as (dict "v" <block> "n" <suffix: "" or "-<name>">), the
  YAML of {exporter: keys to merge into its edgeremotewrite, extensions: auth extensions to add}.
  Credentials are files of mounted Secrets (edgetel.rwVolumes): nothing secret is rendered. */}}
{{- define "edgetel.rwCredentials" -}}
{{- $v := .v -}}
{{- $n := .n -}}
{{- $exp := dict -}}
{{- $ext := dict -}}
{{- $a := $v.auth | default dict -}}
{{- $bt := $a.bearerToken | default dict -}}
{{- $ba := $a.basicAuth | default dict -}}
{{- if and $bt.secretName $ba.secretName }}
{{- fail "remote write: set auth.bearerToken or auth.basicAuth, not both" }}
{{- end }}
{{- range $k, $_ := $v.headers }}
{{- if has (lower $k) (list "authorization" "proxy-authorization" "x-api-key") }}
{{- fail (printf "remote write: headers.%s would put a credential into a ConfigMap: use auth.bearerToken or auth.basicAuth (a Secret)" $k) }}
{{- end }}
{{- end }}
{{- $dir := printf "/etc/edgetel/remote-write-auth%s" $n -}}
{{- if $bt.secretName }}
{{- $_ := set $ext (printf "bearertokenauth/remotewrite%s" $n) (dict "filename" (printf "%s/token" $dir)) }}
{{- $_ := set $exp "auth" (dict "authenticator" (printf "bearertokenauth/remotewrite%s" $n)) }}
{{- else if $ba.secretName }}
{{- $_ := set $ext (printf "basicauth/remotewrite%s" $n) (dict "client_auth" (dict "username_file" (printf "%s/username" $dir) "password_file" (printf "%s/password" $dir))) }}
{{- $_ := set $exp "auth" (dict "authenticator" (printf "basicauth/remotewrite%s" $n)) }}
{{- end }}
{{- if ($v.caSecret | default dict).name }}
{{- $_ := set $exp "tls" (dict "ca_file" (printf "/etc/edgetel/remote-write-ca%s/ca.crt" $n)) }}
{{- end }}
{{- with $v.writeRelabelConfigs }}
{{- $_ := set $exp "write_relabel_configs" . }}
{{- end }}
{{- toYaml (dict "exporter" $exp "extensions" $ext) }}
{{- end }}

{{/* edgetel.rwExporter: the edgeremotewrite exporter of (dict "v" <block> "n" <suffix>
  "cluster" <clusterName>) with its credentials, as YAML of {exporter: ..., extensions: ...}. */}}
{{- define "edgetel.rwExporter" -}}
{{- $v := .v -}}
{{- $headers := deepCopy ($v.headers | default dict) -}}
{{- if $v.tenant }}
{{- $_ := set $headers "X-Scope-OrgID" $v.tenant }}
{{- $_ := set $headers "THANOS-TENANT" $v.tenant }}
{{- end }}
{{- $b := dict "directory" (printf "/var/lib/edgetel/buffer%s" .n) "max_bytes" (int64 $v.maxBufferBytes) -}}
{{- if $v.maxBufferAge }}{{- $_ := set $b "max_age" $v.maxBufferAge }}{{- end }}
{{- if $v.storeOutOfOrderWindow }}{{- $_ := set $b "store_out_of_order_window" $v.storeOutOfOrderWindow }}{{- end }}
{{- $creds := include "edgetel.rwCredentials" (dict "v" $v "n" .n) | fromYaml -}}
{{- $exp := merge (dict "endpoint" $v.endpoint "headers" $headers "external_labels" (dict "cluster" .cluster) "buffer" $b) $creds.exporter -}}
{{- toYaml (dict "exporter" $exp "extensions" $creds.extensions) }}
{{- end }}

{{/* edgetel.rwVolumeMounts / edgetel.rwVolumes: the credential and CA Secrets of
  (dict "v" <block> "n" <suffix>), mounted read-only where edgetel.rwCredentials points. */}}
{{- define "edgetel.rwVolumeMounts" -}}
{{- $v := .v -}}
{{- $a := $v.auth | default dict -}}
{{- if or ($a.bearerToken | default dict).secretName ($a.basicAuth | default dict).secretName }}
- name: remote-write-auth{{ .n }}
  mountPath: /etc/edgetel/remote-write-auth{{ .n }}
  readOnly: true
{{- end }}
{{- if ($v.caSecret | default dict).name }}
- name: remote-write-ca{{ .n }}
  mountPath: /etc/edgetel/remote-write-ca{{ .n }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "edgetel.rwVolumes" -}}
{{- $v := .v -}}
{{- $a := $v.auth | default dict -}}
{{- $bt := $a.bearerToken | default dict -}}
{{- $ba := $a.basicAuth | default dict -}}
{{- if $bt.secretName }}
- name: remote-write-auth{{ .n }}
  secret:
    secretName: {{ $bt.secretName }}
    items:
      - {key: {{ $bt.key | default "token" }}, path: token}
{{- else if $ba.secretName }}
- name: remote-write-auth{{ .n }}
  secret:
    secretName: {{ $ba.secretName }}
    items:
      - {key: {{ $ba.usernameKey | default "username" }}, path: username}
      - {key: {{ $ba.passwordKey | default "password" }}, path: password}
{{- end }}
{{- if ($v.caSecret | default dict).name }}
- name: remote-write-ca{{ .n }}
  secret:
    secretName: {{ $v.caSecret.name }}
    items:
      - {key: {{ $v.caSecret.key | default "ca.crt" }}, path: ca.crt}
{{- end }}
{{- end }}

{{/* edgetel.rwDestinations: the collector's remote-write destinations as a list of
  (dict "v" <block> "n" <suffix> "name" <exporter name>): collector.remoteWrite itself, then each
  of its extraDestinations (suffix "-<name>"), each with its own buffer and credentials. */}}
{{- define "edgetel.rwDestinations" -}}
{{- $rw := .Values.collector.remoteWrite -}}
{{- $out := list -}}
{{- if $rw.enabled }}
{{- $main := omit $rw "extraDestinations" "enabled" -}}
{{- $out = append $out (dict "v" $main "n" "" "name" "edgeremotewrite") -}}
{{- range $rw.extraDestinations }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$" (.name | default "")) }}
{{- fail (printf "collector.remoteWrite.extraDestinations: name %q must be a short DNS label (a-z, 0-9, -; at most 22 characters)" (.name | default "")) }}
{{- end }}
{{- $d := mergeOverwrite (dict "maxBufferBytes" $rw.maxBufferBytes) (deepCopy .) -}}
{{- $out = append $out (dict "v" $d "n" (printf "-%s" .name) "name" (printf "edgeremotewrite/%s" .name)) -}}
{{- end }}
{{- end }}
{{- toYaml (dict "items" $out) }}
{{- end }}

{{/* The collector's external labels: the cluster, and `replica` = the pod's ordinal, for every
collector whatever the shard count. The ordinal names the writer, not a set of nodes: a shard's
nodes change on a reshard, and replicas of a shard scrape the same nodes. Had the block's identity
carried the shard (the label's name before replicasPerShard), a node scraped by shard 0 and then
by shard 2 would be two series to any reader that does not drop it. One name for one meaning:
every reader and the compactor deduplicate on it (edgetel.replicaLabels), so a node's series is
one series across restarts, replicas and reshards. `shard` stays a replica label for the blocks
written before. */}}
{{- define "edgetel.collectorExternalLabels" -}}
{{- dict "cluster" .Values.clusterName "replica" "${env:SHARD_INDEX}" | toJson -}}
{{- end }}

{{/* The labels that tell the writers of one series apart, which readers (--query.replica-label)
and the compactor (--deduplication.replica-label) remove and merge over: `replica`, the collector
pod's ordinal (and Thanos Ruler's pod name), and `shard`, the same ordinal under its older name. */}}
{{- define "edgetel.replicaLabels" -}}
{{- list "replica" "shard" | toJson -}}
{{- end }}

{{/* More than one collector pod writes: replicas of a shard, or shards that overlap during a
reshard. */}}
{{- define "edgetel.collectorWriters" -}}
{{- mul (int .Values.collector.shards) (int .Values.collector.replicasPerShard) -}}
{{- end }}
