{{- /*
edgetel.collectorLogs adds the logs signal to the collector configuration being built in
collector-config.yaml: the receiver's logs key, file_storage/logs on the persistence volume (the
streams' positions and the exporter's persistent queue), an otlp_http/logs exporter and the logs
pipeline. It sets keys in the dicts it is given.
*/}}
{{- define "edgetel.collectorLogs" -}}
{{- $l := .root.Values.collector.logs -}}
{{- if not (or $l.namespaces $l.lifecycleEvents) }}
{{- fail "collector.logs: list namespaces to follow, or enable lifecycleEvents" }}
{{- end }}
{{- if and $l.kubernetesEvents (not $l.lifecycleEvents) }}
{{- fail "collector.logs.kubernetesEvents needs collector.logs.lifecycleEvents" }}
{{- end }}
{{- $_ := set .receiver "logs" (dict
      "namespaces" $l.namespaces
      "label_selector" $l.labelSelector
      "split_streams" $l.splitStreams
      "lifecycle_events" $l.lifecycleEvents
      "kubernetes_events" (and $l.lifecycleEvents $l.kubernetesEvents)
      "storage" "file_storage/logs"
      "max_streams" (int $l.maxStreams)
      "node_bytes_per_second" (int $l.nodeBytesPerSecond)) }}
{{- $g := .generated -}}
{{- $_ := set $g.extensions "file_storage/logs" (dict "directory" "/var/lib/edgetel/logs" "create_directory" true) }}
{{- $_ := set $g.service "extensions" (append $g.service.extensions "file_storage/logs") }}
{{- $_ := set $g.exporters "otlp_http/logs" (dict
      "logs_endpoint" (required "collector.logs.endpoint is required when collector.logs is enabled" $l.endpoint)
      "headers" $l.headers
      "retry_on_failure" (dict "enabled" true "max_elapsed_time" "0s")
      "sending_queue" (dict "enabled" true "storage" "file_storage/logs" "queue_size" (int $l.queueSize))) }}
{{- $_ := set $g.service.pipelines "logs" (dict "receivers" (list "kubeedge") "processors" (list "memory_limiter") "exporters" (list "otlp_http/logs")) }}
{{- end -}}
