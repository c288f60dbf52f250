#!/usr/bin/env bash
# Installs the benchmark peers at pinned versions into ./bin (idempotent: an installed peer at the
# right version is kept). Usage: bench/install.sh [vmagent|otelcol|prometheus|all]...
#   vmagent     github.com/VictoriaMetrics/VictoriaMetrics/app/vmagent (go install)
#   otelcol     upstream Collector built by OCB from bench/peers/otelcol/builder-config.yaml
#               (its own module, compiled in a scratch dir; ~5 min on 2 cores)
#   prometheus  prometheus + promtool (go install; the Makefile's tool-prometheus does the same)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/bin}
GO=${GO:-go}
VMAGENT_VERSION=v1.151.0 # newest that builds with Go 1.26 (docs/versions.md)
OCB_VERSION=v0.165.0
PROMETHEUS_VERSION=v0.316.0
mkdir -p "$BIN"
export GOBIN=$BIN

# has_version BIN MODULE VERSION: the binary exists and was built from MODULE at VERSION.
has_version() {
	[ -x "$1" ] && $GO version -m "$1" 2>/dev/null | grep -Eq "^[[:space:]]+(mod|dep)[[:space:]]+$2[[:space:]]+$3([[:space:]]|$)"
}

install_vmagent() {
	if has_version "$BIN/vmagent" github.com/VictoriaMetrics/VictoriaMetrics "$VMAGENT_VERSION"; then return; fi
	echo "installing vmagent $VMAGENT_VERSION"
	$GO install "github.com/VictoriaMetrics/VictoriaMetrics/app/vmagent@$VMAGENT_VERSION"
}

install_prometheus() {
	if has_version "$BIN/prometheus" github.com/prometheus/prometheus "$PROMETHEUS_VERSION" && [ -x "$BIN/promtool" ]; then return; fi
	echo "installing prometheus $PROMETHEUS_VERSION"
	$GO install "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION" \
		"github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
}

install_otelcol() {
	local manifest=$ROOT/bench/peers/otelcol/builder-config.yaml
	if has_version "$BIN/otelcol-upstream" github.com/open-telemetry/opentelemetry-collector-contrib/receiver/prometheusreceiver "$OCB_VERSION" \
		&& [ "$BIN/otelcol-upstream" -nt "$manifest" ]; then return; fi
	if ! { [ -x "$BIN/builder" ] && "$BIN/builder" version 2>/dev/null | grep -q "$OCB_VERSION"; }; then
		$GO install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION"
	fi
	echo "building the upstream collector with OCB $OCB_VERSION (a few minutes)"
	local work
	work=$(mktemp -d "${TMPDIR:-/tmp}/otelcol-upstream.XXXXXX")
	trap 'rm -rf "$work"' RETURN
	# The generated module lives in the scratch dir, never in the repo's module.
	"$BIN/builder" --config="$manifest" --output-path="$work/otelcol-upstream" \
		--skip-strict-versioning=false >"$work/builder.log" 2>&1 || { cat "$work/builder.log"; return 1; }
	cp "$work/otelcol-upstream/otelcol-upstream" "$BIN/otelcol-upstream"
}

[ $# -gt 0 ] || set -- all
for what in "$@"; do
	case "$what" in
	vmagent) install_vmagent ;;
	otelcol) install_otelcol ;;
	prometheus) install_prometheus ;;
	all) install_prometheus; install_vmagent; install_otelcol ;;
	*) echo "usage: $0 [vmagent|otelcol|prometheus|all]..." >&2; exit 2 ;;
	esac
done
