# edgetel build, test and tooling. Every tool a target needs is installed here, at a pinned
# version, into ./bin: nothing is installed by hand.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

ROOT := $(CURDIR)
BIN := $(ROOT)/bin
GO ?= go
export GOBIN := $(BIN)

# Pinned versions (docs/versions.md says why each): move the Collector train together.
OCB_VERSION := v0.165.0
STATICCHECK_VERSION := v0.8.2
PROMETHEUS_VERSION := v0.316.0
HELM_VERSION := v3.22.0
# Alertmanager of the ruler test: v0.31.1 is the newest whose module builds with `go install`
# (from v0.32 its UI is a go:embed of a built directory the module zip does not hold).
ALERTMANAGER_VERSION := v0.31.1
# kube-apiserver of internal/testing/testcluster: tools/kube-apiserver/go.mod pins it (its own module).
KUBE_VERSION := v1.37.2
# Thanos of the bucket tests: tools/thanos/go.mod pins it (its own module, for Thanos' replaces).
THANOS_VERSION := v0.42.4
# VictoriaLogs of the logs tests (OTLP in, LogsQL out): tools/victorialogs/go.mod pins it.
VICTORIALOGS_VERSION := v1.52.1
# The S3 server of the object-storage tests (Versity S3 Gateway, Apache-2.0, posix backend):
# tools/versitygw/go.mod pins it.
VERSITYGW_VERSION := v1.8.0
# etcd comes from the system (Debian/Ubuntu: apt-get install etcd-server; .ci/run installs it).
ETCD ?= $(shell command -v etcd 2>/dev/null)

COMMANDS := $(notdir $(wildcard cmd/*))
comma := ,
GO_TEST_FLAGS ?= -timeout 30m

.PHONY: build build-cross release release-snapshot release-artifacts release-publish test-release dashboards tool-release test test-race lint check-standalone generate check-generated demo bench soak clean tools \
	tool-vmagent tool-otelcol-upstream \
	tool-builder tool-staticcheck tool-prometheus tool-helm tool-kube-apiserver tool-etcd tool-thanos tool-victorialogs \
	tool-versitygw tool-alertmanager tool-cortex

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(COMMANDS))

# Releases (README "Releases"): binaries for the edge's architectures, archives with an SBOM each
# and checksums, multi-platform OCI images built without a container engine (tools/release, on
# go-containerregistry), and the chart as an OCI artifact pinned to those images' digests.
# `make release-snapshot` builds them all into ./dist at <builder-config version>-snapshot.g<commit>;
# `make release VERSION=x.y.z` at a tag (builder-config.yaml's dist.version must say x.y.z, since
# edgetelcol reports it); `make release-publish` pushes what ./dist holds.
DIST := $(ROOT)/dist
RELEASE_BASE := $(shell awk '$$1 == "version:" {print $$2; exit}' builder-config.yaml)
GIT_REVISION := $(shell git rev-parse HEAD 2>/dev/null)
SNAPSHOT_VERSION := $(RELEASE_BASE)-snapshot.g$(shell git rev-parse --short=12 HEAD 2>/dev/null)
# Times inside archives, images and SBOMs: the commit's, so that a rebuild is byte-identical.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
IMAGE_PREFIX ?= ghcr.io/edgetel
CHART_REPO ?= oci://ghcr.io/edgetel/charts
RELEASE_SOURCE := https://github.com/edgetel/edgetel
RELEASE_LICENSES := Apache-2.0
RELEASE_COMMANDS := edgetelcol edgetel-query edgetel-onboard
# The images' base layer (CA roots from Go's x509roots bundle pinned in tools/release/go.mod, a
# passwd with the non-root user 10001, /tmp): built from files, pinned by its diff ID (the digest of
# its uncompressed tar). `bin/edgetel-release base-diffid` prints it after a deliberate change.
BASE_DIFFID := sha256:9b5ef7b77f62f2f9e7187d956107fdbe975f072a44a54dfcb9bfc15a573f34ed
RELEASE_GOFLAGS := -trimpath -tags timetzdata -ldflags '-s -w -buildid='
RELEASE_META = -version $(VERSION) -revision $(GIT_REVISION) -source $(RELEASE_SOURCE) \
	-licenses $(RELEASE_LICENSES) -created $(SOURCE_DATE_EPOCH)

# $(1) GOOS, $(2) GOARCH, $(3) GOARM, $(4) dist/bin directory, $(5) commands.
define release_go_build
	CGO_ENABLED=0 GOOS=$(1) GOARCH=$(2) GOARM=$(3) $(GO) build $(RELEASE_GOFLAGS) -o $(DIST)/bin/$(4)/ $(addprefix ./cmd/,$(5))

endef

# Every command for each Linux platform of the images; edgetel-query also for macOS.
build-cross:
	$(call release_go_build,linux,amd64,,linux_amd64,$(RELEASE_COMMANDS))
	$(call release_go_build,linux,arm64,,linux_arm64,$(RELEASE_COMMANDS))
	$(call release_go_build,linux,arm,7,linux_armv7,$(RELEASE_COMMANDS))
	$(call release_go_build,darwin,amd64,,darwin_amd64,edgetel-query)
	$(call release_go_build,darwin,arm64,,darwin_arm64,edgetel-query)

tool-release:
	cd tools/release && $(GO) build -o $(BIN)/edgetel-release .

release-snapshot:
	$(MAKE) release-artifacts VERSION=$(SNAPSHOT_VERSION)

release:
	@test -n "$(VERSION)" || { echo "VERSION=x.y.z is required (release-snapshot needs none)"; exit 1; }
	@test "$(VERSION)" = "$(RELEASE_BASE)" || { echo "VERSION=$(VERSION) but builder-config.yaml says $(RELEASE_BASE): edgetelcol would report that; bump it, make generate, commit and tag"; exit 1; }
	$(MAKE) release-artifacts VERSION=$(VERSION)

release-artifacts: tool-release tool-helm
	@test -n "$(VERSION)" || { echo "VERSION is required"; exit 1; }
	rm -rf $(DIST)
	$(MAKE) build-cross
	$(BIN)/edgetel-release dist $(RELEASE_META) -bin $(DIST)/bin -out $(DIST) -readme README.md -license LICENSE
	$(BIN)/edgetel-release images $(RELEASE_META) -bin $(DIST)/bin -out $(DIST) \
		-names $(subst $(eval) ,$(comma),$(RELEASE_COMMANDS)) -base-diffid $(BASE_DIFFID)
	mkdir -p $(DIST)/chart && cp -R charts/edgetel $(DIST)/chart/
	$(BIN)/edgetel-release chart-values -images $(DIST)/images.json -prefix $(IMAGE_PREFIX) \
		-values $(DIST)/chart/edgetel/values.yaml
	$(BIN)/helm package $(DIST)/chart/edgetel --version $(VERSION) --app-version $(VERSION) -d $(DIST)
	cd $(DIST) && sha256sum edgetel-$(VERSION).tgz >>checksums.txt

# Pushes ./dist's images and chart (credentials: ~/.docker/config.json for the images, `helm
# registry login` for the chart); the release workflow signs what it prints.
release-publish: tool-release tool-helm
	@test -f $(DIST)/images.json || { echo "no $(DIST)/images.json: make release first"; exit 1; }
	$(BIN)/edgetel-release push -dist $(DIST) -prefix $(IMAGE_PREFIX) | tee $(DIST)/pushed.txt
	$(BIN)/helm push $(DIST)/edgetel-*.tgz $(CHART_REPO) 2>&1 | tee $(DIST)/chart-pushed.txt

# The release's own test: pushes ./dist's images and chart to a registry in the test process, pulls
# them back and checks them, renders the chart from its OCI reference, and runs the arm64 and
# armv7 binaries under qemu-user (Debian's qemu-user-static; .ci/run installs it).
QEMU_AARCH64 ?= $(shell command -v qemu-aarch64-static 2>/dev/null)
QEMU_ARM ?= $(shell command -v qemu-arm-static 2>/dev/null)
# With VERSION on the command line (the release workflow) it tests `make release`'s artifacts.
ifeq ($(origin VERSION),command line)
TEST_RELEASE_BUILD := release
else
TEST_RELEASE_BUILD := release-snapshot
endif
test-release: $(TEST_RELEASE_BUILD) tool-prometheus tool-staticcheck
	@test -n "$(QEMU_AARCH64)" -a -n "$(QEMU_ARM)" || { echo "qemu-user-static is missing (apt-get install qemu-user-static)"; exit 1; }
	$(GO) build -o $(BIN)/ ./cmd/edgesim
	cd tools/release && $(GO) vet ./... && $(BIN)/staticcheck ./... && $(TEST_ENV) EDGETEL_BIN=$(BIN) EDGETEL_DIST=$(DIST) \
		EDGETEL_QEMU_AARCH64=$(QEMU_AARCH64) EDGETEL_QEMU_ARM=$(QEMU_ARM) EDGETEL_REPO=$(ROOT) \
		$(GO) test -count=1 -timeout 15m -v ./...


# Keeps the chart's dashboards (real files: a chart holds no symlinks) equal to examples/dashboards;
# internal/testing/charttest fails when they differ.
dashboards:
	rm -f charts/edgetel/dashboards/*.json
	cp examples/dashboards/*.json charts/edgetel/dashboards/

# Test-time programs (real Prometheus, promtool, helm...) are passed to the tests by path.
# The kubelet captures are embedded (internal/testing/edgesim/captures); EDGETEL_FIXTURES, when set in the
# environment, replaces them with a directory of one's own.
TEST_ENV := EDGETEL_PROMETHEUS=$(BIN)/prometheus EDGETEL_PROMTOOL=$(BIN)/promtool EDGETEL_HELM=$(BIN)/helm \
	EDGETEL_KUBE_APISERVER=$(BIN)/kube-apiserver EDGETEL_ETCD=$(ETCD) EDGETEL_THANOS=$(BIN)/thanos \
	EDGETEL_VICTORIALOGS=$(BIN)/victoria-logs EDGETEL_VERSITYGW=$(BIN)/versitygw EDGETEL_ALERTMANAGER=$(BIN)/alertmanager \
	EDGETEL_CORTEX=$(BIN)/cortex

# scripts/demotest runs the demo with the commands `build` puts in $(BIN).
test: tools build
	$(TEST_ENV) EDGETEL_BIN=$(BIN) $(GO) test $(GO_TEST_FLAGS) ./...

# The race detector on the packages whose concurrency matters; the rest run without it in `test`.
RACE_PKGS ?= ./internal/... ./cmd/... ./receivers/... ./processors/... ./exporters/...
test-race: tools
	$(TEST_ENV) $(GO) test -race $(GO_TEST_FLAGS) $(RACE_PKGS)

lint: tool-staticcheck check-standalone
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

# The repository stands alone: no tracked file may point at documents or captures outside it (the
# pattern is spelled so that this Makefile does not match it).
STANDALONE_PATTERN := shar[e]d/
check-standalone:
	@if git grep -n '$(STANDALONE_PATTERN)' -- . ; then \
		echo "tracked files above refer to a directory outside the repository: write the fact into docs/ instead"; exit 1; fi

tools: tool-builder tool-staticcheck tool-prometheus tool-helm tool-kube-apiserver tool-etcd tool-thanos tool-victorialogs \
	tool-versitygw tool-alertmanager tool-cortex

tool-builder:
	@test -x $(BIN)/builder && $(BIN)/builder version 2>/dev/null | grep -q $(OCB_VERSION) || \
		$(GO) install go.opentelemetry.io/collector/cmd/builder@$(OCB_VERSION)

tool-staticcheck:
	@test -x $(BIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

tool-prometheus:
	@test -x $(BIN)/prometheus -a -x $(BIN)/promtool || \
		$(GO) install github.com/prometheus/prometheus/cmd/prometheus@$(PROMETHEUS_VERSION) \
			github.com/prometheus/prometheus/cmd/promtool@$(PROMETHEUS_VERSION)

tool-alertmanager:
	@test -x $(BIN)/alertmanager || $(GO) install github.com/prometheus/alertmanager/cmd/alertmanager@$(ALERTMANAGER_VERSION)

tool-helm:
	@test -x $(BIN)/helm || $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

# The control-plane tests (internal/testing/testcluster) run kube-apiserver built from its pinned module
# (about 85 MB of modules beyond the project's and ~1,300 CPU-seconds the first time) and the system's etcd.
KUBE_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 \
	-X k8s.io/client-go/pkg/version.gitVersion=$(KUBE_VERSION)
tool-kube-apiserver:
	@test -x $(BIN)/kube-apiserver || { cd tools/kube-apiserver && \
		$(GO) build -o $(BIN)/kube-apiserver -ldflags "$(KUBE_LDFLAGS)" k8s.io/kubernetes/cmd/kube-apiserver; }

# Thanos builds with its release tags: without slicelabels its zero-copy label code corrupts
# Prometheus' default string labels.
tool-thanos:
	@test -x $(BIN)/thanos || { cd tools/thanos && $(GO) build -tags netgo,slicelabels -o $(BIN)/thanos \
		-ldflags "-X github.com/prometheus/common/version.Version=$(THANOS_VERSION:v%=%) -X github.com/prometheus/common/version.Branch=edgetel" \
		github.com/thanos-io/thanos/cmd/thanos; }

# Cortex (Apache-2.0), the second real remote-write store of the tests; pinned in tools/cortex/go.mod.
# Tags as in Cortex's own Makefile: built without slicelabels its ingester panics decoding labels.
tool-cortex:
	@test -x $(BIN)/cortex || { cd tools/cortex && $(GO) build -tags netgo,slicelabels -o $(BIN)/cortex \
		github.com/cortexproject/cortex/cmd/cortex; }

tool-victorialogs:
	@test -x $(BIN)/victoria-logs || { cd tools/victorialogs && $(GO) build -o $(BIN)/victoria-logs \
		-ldflags "-X github.com/VictoriaMetrics/VictoriaMetrics/lib/buildinfo.Version=victoria-logs-$(VICTORIALOGS_VERSION)" \
		github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs; }

# About 2 CPU-minutes the first time (SeaweedFS, the other candidate, has no semver tags and links
# far more); MinIO is AGPL and not used.
tool-versitygw:
	@test -x $(BIN)/versitygw || { cd tools/versitygw && $(GO) build -o $(BIN)/versitygw \
		-ldflags "-X main.Version=$(VERSITYGW_VERSION) -X main.Build=edgetel" \
		github.com/versity/versitygw/cmd/versitygw; }

tool-etcd:
	@test -n "$(ETCD)" || echo "etcd not found: the control-plane tests will skip (apt-get install etcd-server)"

# OCB writes main.go, main_others.go, main_windows.go and components.go (gofmt'd here: OCB's
# templates are not). They are copied into the root module (one module for the whole repo), whose go.mod pins the components' modules.
GENERATED := components.go main.go main_others.go main_windows.go
GEN_DIR := $(BIN)/.generated

define ocb_generate
	rm -rf $(1) && mkdir -p $(1)
	$(BIN)/builder --skip-compilation --skip-get-modules --skip-strict-versioning=false \
		--config builder-config.yaml --output-path $(1) >$(1).log 2>&1 || { cat $(1).log; exit 1; }
	gofmt -w $(1)/*.go
endef

generate: tool-builder
	$(call ocb_generate,$(GEN_DIR))
	cp $(addprefix $(GEN_DIR)/,$(GENERATED)) cmd/edgetelcol/
	$(GO) get $$(awk '/^ *- gomod:/ && $$3 !~ /edgetel/ {print $$3"@"$$4}' builder-config.yaml)
	$(GO) mod tidy

check-generated: tool-builder
	$(call ocb_generate,$(GEN_DIR))
	@for f in $(GENERATED); do \
		if ! diff -u cmd/edgetelcol/$$f $(GEN_DIR)/$$f; then \
			echo "cmd/edgetelcol/$$f differs from builder-config.yaml: run 'make generate'"; exit 1; \
		fi; \
	done
	@echo "cmd/edgetelcol matches builder-config.yaml"

# The whole pipeline on loopback until Ctrl-C (NODES=100 by default); data kept in ./data.
demo:
	$(GO) build -o $(BIN)/ ./cmd/edgetelcol ./cmd/edgesim ./cmd/edgetel-query
	./scripts/demo.sh

# Peers side by side on one edgesim fleet (see BENCHMARKS.md): 1,000 nodes at 30 s is what two
# cores can scrape for every peer; the outage run buffers 10 minutes of it (16 GiB bound).
BENCH_NODES ?= 1000
BENCH_INTERVAL ?= 30s
BENCH_DURATION ?= 2m
BENCH_OUTAGE ?= 10m
BENCH_BUFFER ?= 17179869184
SOAK_SYSTEMS ?= edgetelcol-cloudcore,vmagent
SOAK_SIGKILL ?= yes

tool-vmagent:
	bench/install.sh vmagent

tool-otelcol-upstream: tool-builder
	bench/install.sh otelcol

bench: tool-prometheus tool-vmagent tool-otelcol-upstream tool-helm
	$(GO) build -o $(BIN)/edgetelcol ./cmd/edgetelcol
	$(TEST_ENV) $(GO) test -run '^$$' -bench . -benchtime 20x ./internal/testing/edgesim ./internal/diskqueue \
		./exporters/remotewriteexporter ./exporters/objstoreexporter ./processors/edgenodeprocessor \
		./receivers/kubeedgereceiver/... ./internal/sampleconv
	$(TEST_ENV) $(GO) run ./bench/cmd/peerbench -bin $(BIN) -nodes $(BENCH_NODES) -interval $(BENCH_INTERVAL) \
		-warmup 75s -duration $(BENCH_DURATION) -out BENCHMARKS.md

soak: tool-prometheus tool-vmagent tool-otelcol-upstream
	$(GO) build -o $(BIN)/edgetelcol ./cmd/edgetelcol
	EDGETEL_SOAK=1 EDGETEL_EDGETELCOL=$(BIN)/edgetelcol $(TEST_ENV) $(GO) test -count=1 -timeout 60m ./bench/reliability/
	$(TEST_ENV) $(GO) run ./bench/cmd/peerbench -bin $(BIN) -nodes $(BENCH_NODES) -interval 60s -warmup 90s \
		-outage $(BENCH_OUTAGE) -live 2m -buffer-bytes $(BENCH_BUFFER) -systems $(SOAK_SYSTEMS) -sigkill $(SOAK_SIGKILL) \
		-out BENCHMARKS.md

clean:
	rm -rf $(BIN) data $(DIST)
