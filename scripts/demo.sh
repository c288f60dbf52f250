#!/usr/bin/env bash
# make demo: edgesim → edgetelcol → bucket → edgetel-query, all on loopback, until Ctrl-C.
# Data lives under $EDGETEL_DEMO_DATA (default ./data) and is kept between runs.
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${NODES:-100}
BIN=${BIN:-./bin}
export EDGETEL_DEMO_DATA=${EDGETEL_DEMO_DATA:-$PWD/data}
FIXTURES=${EDGETEL_FIXTURES:-$PWD/../shared/fixtures}
QUERY_ADDR=127.0.0.1:9090
LOGS=$EDGETEL_DEMO_DATA/logs

pids=()
stop() {
	trap - INT TERM EXIT
	if [ ${#pids[@]} -gt 0 ]; then
		echo; echo "stopping ${#pids[@]} processes..."
		kill -TERM "${pids[@]}" 2>/dev/null || true
		wait "${pids[@]}" 2>/dev/null || true
	fi
	echo "stopped; the data stays in $EDGETEL_DEMO_DATA (make clean removes it)"
}
trap stop INT TERM EXIT

wait_for() { # wait_for <what> <seconds> <command...>
	local what=$1 secs=$2; shift 2
	for _ in $(seq "$secs"); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 1
	done
	echo "$what did not come up in ${secs}s; see $LOGS" >&2
	exit 1
}

[ -d "$FIXTURES/kubelet" ] || { echo "kubelet captures not found in $FIXTURES (set EDGETEL_FIXTURES)" >&2; exit 1; }
mkdir -p "$EDGETEL_DEMO_DATA"/{edgesim/tls,bucket,tsdb,query-cache} "$LOGS"

"$BIN/edgesim" --nodes "$NODES" --listen 127.0.0.1:10003 --admin-listen 127.0.0.1:10090 \
	--fleet-file "$EDGETEL_DEMO_DATA/edgesim/fleet.json" --tls-dir "$EDGETEL_DEMO_DATA/edgesim/tls" \
	--fixtures "$FIXTURES" >"$LOGS/edgesim.log" 2>&1 &
pids+=($!)
wait_for edgesim 60 test -s "$EDGETEL_DEMO_DATA/edgesim/fleet.json"

configs=(--config examples/local/config.yaml)
if [ -n "${EDGETEL_REMOTE_WRITE_URL:-}" ]; then
	configs+=(--config examples/local/remote-write.yaml)
fi
"$BIN/edgetelcol" "${configs[@]}" >"$LOGS/edgetelcol.log" 2>&1 &
pids+=($!)
wait_for edgetelcol 60 curl -sf http://127.0.0.1:13133/

"$BIN/edgetel-query" --listen "$QUERY_ADDR" --bucket-dir "$EDGETEL_DEMO_DATA/bucket" \
	--cache-dir "$EDGETEL_DEMO_DATA/query-cache" --sync-interval 10s >"$LOGS/edgetel-query.log" 2>&1 &
pids+=($!)
wait_for edgetel-query 60 curl -sf "http://$QUERY_ADDR/api/v1/status/buildinfo"

cat <<INFO

edgetel demo is running (Ctrl-C stops it):
  edgesim        $NODES simulated edge nodes behind a cloudcore-compatible endpoint, https://127.0.0.1:10003
                 fault injection: http://127.0.0.1:10090 (see cmd/edgesim/README.md)
  edgetelcol     kubeedge receiver → objstore exporter; own metrics http://127.0.0.1:8888/metrics
  edgetel-query  Prometheus HTTP API over the bucket, http://$QUERY_ADDR
data:            $EDGETEL_DEMO_DATA (bucket: $EDGETEL_DEMO_DATA/bucket, logs: $LOGS)

Blocks are cut every minute, so history shows up in the query API after a few minutes.
Try:
  curl -s 'http://$QUERY_ADDR/api/v1/query' --data-urlencode 'query=count(count by (node) (up{job="kubeedge"} == 1))'
  curl -s 'http://$QUERY_ADDR/api/v1/query' --data-urlencode 'query=topk(5, sum by (node) (rate(container_cpu_usage_seconds_total{container!=""}[5m])))'
  curl -s 'http://$QUERY_ADDR/api/v1/query' --data-urlencode 'query=sum by (site) (container_memory_working_set_bytes{container!=""})'
Or point Grafana at http://$QUERY_ADDR (cmd/edgetel-query/README.md) and import examples/dashboards/.
INFO

wait -n "${pids[@]}" || true
echo "a demo process exited; see $LOGS" >&2
