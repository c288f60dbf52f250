#!/usr/bin/env bash
# make demo: edgesim → edgetelcol → bucket → edgetel-query, all on loopback, until Ctrl-C.
# Data lives under $EDGETEL_DEMO_DATA (default ./data) and is kept between runs.
# The loopback ports can be moved with EDGETEL_DEMO_{CLOUDCORE,ADMIN,HEALTH,TELEMETRY,QUERY,HEAD,COMPACT}_PORT
# (defaults 10003, 10090, 13133, 8888, 9090, 9095, 10912); examples/local/config.yaml reads the same variables.
# With Thanos built ($EDGETEL_THANOS, default $BIN/thanos: `make tool-thanos`), Thanos' compactor
# runs on the bucket too, as the chart's thanos.compactor does (EDGETEL_DEMO_COMPACT=0 leaves it out).
# edgesim serves the kubelet captures built into it; EDGETEL_FIXTURES names a directory of your own.
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${NODES:-100}
BIN=${BIN:-./bin}
export EDGETEL_DEMO_DATA=${EDGETEL_DEMO_DATA:-$PWD/data}
export EDGETEL_DEMO_CLOUDCORE_PORT=${EDGETEL_DEMO_CLOUDCORE_PORT:-10003}
export EDGETEL_DEMO_ADMIN_PORT=${EDGETEL_DEMO_ADMIN_PORT:-10090}
export EDGETEL_DEMO_HEALTH_PORT=${EDGETEL_DEMO_HEALTH_PORT:-13133}
export EDGETEL_DEMO_TELEMETRY_PORT=${EDGETEL_DEMO_TELEMETRY_PORT:-8888}
export EDGETEL_DEMO_QUERY_PORT=${EDGETEL_DEMO_QUERY_PORT:-9090}
export EDGETEL_DEMO_HEAD_PORT=${EDGETEL_DEMO_HEAD_PORT:-9095}
export EDGETEL_DEMO_COMPACT_PORT=${EDGETEL_DEMO_COMPACT_PORT:-10912}
THANOS=${EDGETEL_THANOS:-$BIN/thanos}
QUERY_ADDR=127.0.0.1:$EDGETEL_DEMO_QUERY_PORT
LOGS=$EDGETEL_DEMO_DATA/logs

pids=() names=()
# stop <status>: stops every process still running, reports those that did not exit cleanly, and
# exits with <status>, or 1 when a process failed.
stop() {
	local status=$1 i rc
	trap - INT TERM EXIT
	if [ ${#pids[@]} -gt 0 ]; then
		echo; echo "stopping ${#pids[@]} processes..."
		kill -TERM "${pids[@]}" 2>/dev/null || true
		for i in "${!pids[@]}"; do
			rc=0
			wait "${pids[$i]}" 2>/dev/null || rc=$?
			# A process that exited while this trap interrupted `wait -n` may be reported by bash
			# as -1 or 127 (already reaped, status unknown): that is a stop, not a failure.
			if [ "$rc" -ne 0 ] && [ "$rc" -ne -1 ] && [ "$rc" -ne 127 ]; then
				echo "${names[$i]} exited with status $rc; see $LOGS/${names[$i]}.log" >&2
				status=1
			fi
		done
	fi
	echo "stopped; the data stays in $EDGETEL_DEMO_DATA (make clean removes it)"
	exit "$status"
}
trap 'stop 0' INT TERM
trap 'stop $?' EXIT

start() { # start <name> <command...>: runs it in the background, output in $LOGS/<name>.log
	local name=$1; shift
	"$@" >"$LOGS/$name.log" 2>&1 &
	pids+=($!) names+=("$name")
}

wait_for() { # wait_for <what> <seconds> <command...>
	local what=$1 secs=$2; shift 2
	for _ in $(seq "$secs"); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 1
	done
	echo "$what did not come up in ${secs}s; see $LOGS" >&2
	exit 1
}

mkdir -p "$EDGETEL_DEMO_DATA"/{edgesim/tls,bucket,tsdb,query-cache} "$LOGS"

start edgesim "$BIN/edgesim" --nodes "$NODES" \
	--listen "127.0.0.1:$EDGETEL_DEMO_CLOUDCORE_PORT" --admin-listen "127.0.0.1:$EDGETEL_DEMO_ADMIN_PORT" \
	--fleet-file "$EDGETEL_DEMO_DATA/edgesim/fleet.json" --tls-dir "$EDGETEL_DEMO_DATA/edgesim/tls"
wait_for edgesim 60 test -s "$EDGETEL_DEMO_DATA/edgesim/fleet.json"
# One site loses its uplink, so that the alerts have something to say: every node of it is
# disconnected (edgesim's admin API) before the collector starts. EDGETEL_DEMO_DOWN_SITE= keeps
# every site up.
DOWN_SITE=${EDGETEL_DEMO_DOWN_SITE-us-east-site-05}
down="no site is down (EDGETEL_DEMO_DOWN_SITE is empty)"
if [ -n "$DOWN_SITE" ]; then
	wait_for "edgesim's admin API" 60 curl -sf "http://127.0.0.1:$EDGETEL_DEMO_ADMIN_PORT/api/stats"
	if out=$(curl -sf -X POST "http://127.0.0.1:$EDGETEL_DEMO_ADMIN_PORT/api/disconnect?site=$DOWN_SITE"); then
		down="site $DOWN_SITE is down: $out"
	else
		down="site $DOWN_SITE is not in this fleet of $NODES nodes: every site is up"
	fi
fi

configs=(--config examples/local/config.yaml)
if [ -n "${EDGETEL_REMOTE_WRITE_URL:-}" ]; then
	configs+=(--config examples/local/remote-write.yaml)
fi
start edgetelcol "$BIN/edgetelcol" "${configs[@]}"
wait_for edgetelcol 60 curl -sf "http://127.0.0.1:$EDGETEL_DEMO_HEALTH_PORT/"

# The chart's alerting rules, evaluated by edgetel-query's ruler over the bucket and the head,
# with every `for` shortened (EDGETEL_DEMO_ALERT_FOR, default 1m) so that the demo's alerts fire
# within minutes; the demo has no Alertmanager, the alerts are listed at /api/v1/alerts.
sed -E "s/^( +for:) .*/\1 ${EDGETEL_DEMO_ALERT_FOR:-1m}/" charts/edgetel/files/edgetel-alerts.yaml >"$EDGETEL_DEMO_DATA/alerts.yaml"
start edgetel-query "$BIN/edgetel-query" --listen "$QUERY_ADDR" --bucket-dir "$EDGETEL_DEMO_DATA/bucket" \
	--cache-dir "$EDGETEL_DEMO_DATA/query-cache" --sync-interval 10s \
	--head.endpoint "http://127.0.0.1:$EDGETEL_DEMO_HEAD_PORT" \
	--rule-file "$EDGETEL_DEMO_DATA/alerts.yaml" --rule.evaluation-interval 15s
wait_for edgetel-query 60 curl -sf "http://$QUERY_ADDR/api/v1/status/buildinfo"

# Thanos' compactor, as the chart runs it (vertical compaction for the out-of-order blocks,
# downsampling, retention per resolution), with the demo's short delays: it merges each past
# two-hour window's one-minute blocks into one block once they are a minute old, and marks the
# replaced blocks for deletion an hour later.
compactor="not running (make tool-thanos builds Thanos in about 7 minutes; then make demo again)"
if [ "${EDGETEL_DEMO_COMPACT:-1}" != 0 ] && [ -x "$THANOS" ]; then
	printf 'type: FILESYSTEM\nconfig:\n  directory: %s\n' "$EDGETEL_DEMO_DATA/bucket" >"$EDGETEL_DEMO_DATA/bucket.yaml"
	mkdir -p "$EDGETEL_DEMO_DATA/compact"
	start thanos-compact "$THANOS" compact --wait --wait-interval=1m \
		--objstore.config-file="$EDGETEL_DEMO_DATA/bucket.yaml" --data-dir="$EDGETEL_DEMO_DATA/compact" \
		--http-address="127.0.0.1:$EDGETEL_DEMO_COMPACT_PORT" --compact.enable-vertical-compaction \
		--consistency-delay=1m --delete-delay=1h \
		--retention.resolution-raw="${EDGETEL_DEMO_RETENTION_RAW:-0d}" \
		--retention.resolution-5m="${EDGETEL_DEMO_RETENTION_5M:-0d}" \
		--retention.resolution-1h="${EDGETEL_DEMO_RETENTION_1H:-0d}"
	wait_for thanos-compact 60 curl -sf "http://127.0.0.1:$EDGETEL_DEMO_COMPACT_PORT/-/ready"
	compactor="compacts, downsamples and applies retention; its metrics http://127.0.0.1:$EDGETEL_DEMO_COMPACT_PORT/metrics"
fi

cat <<INFO

edgetel demo is running (Ctrl-C stops it):
  edgesim        $NODES simulated edge nodes behind a cloudcore-compatible endpoint, https://127.0.0.1:$EDGETEL_DEMO_CLOUDCORE_PORT
                 fault injection: http://127.0.0.1:$EDGETEL_DEMO_ADMIN_PORT (see cmd/edgesim/README.md)
  edgetelcol     kubeedge receiver → objstore exporter; own metrics http://127.0.0.1:$EDGETEL_DEMO_TELEMETRY_PORT/metrics
  edgetel-query  Prometheus HTTP API over the bucket and the collector's head, http://$QUERY_ADDR
  thanos compact $compactor
  alerts         $down
                 firing alerts (the site-down alert lists its nodes; it fires about two minutes in):
                 http://$QUERY_ADDR/api/v1/alerts
data:            $EDGETEL_DEMO_DATA (bucket: $EDGETEL_DEMO_DATA/bucket, logs: $LOGS)

Answers reach the last scrape (the collector's head); blocks are cut every minute, so the
bucket holds history after a few minutes.
Try:
  curl -s 'http://$QUERY_ADDR/api/v1/query' --data-urlencode 'query=count(count by (node) (up{job="kubeedge"} == 1))'
  curl -s 'http://$QUERY_ADDR/api/v1/query' --data-urlencode 'query=topk(5, sum by (node) (rate(container_cpu_usage_seconds_total{container!=""}[5m])))'
  curl -s 'http://$QUERY_ADDR/api/v1/query' --data-urlencode 'query=sum by (site) (container_memory_working_set_bytes{container!=""})'
The collector scrapes its own telemetry into the same pipeline (job "edgetelcol"), which the
pipeline-health dashboard shows:
  curl -s 'http://$QUERY_ADDR/api/v1/query' --data-urlencode 'query=sum by (job) (rate(otelcol_exporter_objstore_samples_appended{job="edgetelcol"}[5m]))'
Or point Grafana at http://$QUERY_ADDR (cmd/edgetel-query/README.md) and import examples/dashboards/.
INFO

# Until Ctrl-C or SIGTERM (the trap stops everything and exits 0), or until a process exits.
# Ctrl-C reaches every process of the demo, and each stops cleanly (status 0) on its own; when
# this script was started with SIGINT ignored (a background job of a non-interactive shell), its
# INT trap cannot be set and that is how the demo stops. A process that exits with status 0 is
# therefore a stop, not a failure.
rc=0 exited=
wait -n -p exited "${pids[@]}" || rc=$?
for i in "${!pids[@]}"; do
	if [ "${pids[$i]}" = "$exited" ]; then
		[ "$rc" -eq 0 ] || echo "${names[$i]} exited with status $rc; see $LOGS/${names[$i]}.log" >&2
		unset 'pids[i]' 'names[i]'
	fi
done
[ "$rc" -eq 0 ] || stop 1
stop 0
