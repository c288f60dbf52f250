# The onboarding agent's image only: edgetel-onboard next to iptables (nft and legacy backends),
# which `make release` cannot build from files yet (it needs Debian's iptables and its libraries).
# edgetelcol, edgetel-query and edgetel-onboard's own images come from `make release-snapshot`
# (tools/release, no container engine). Build the binaries first (make build-cross), then:
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 -t ghcr.io/edgetel/edgetel-agent:<version> .
# TARGETARCH and TARGETVARIANT are set by buildx per platform and pick ./dist/bin/linux_<arch><variant>.
FROM debian:bookworm-slim AS agent
ARG TARGETARCH
ARG TARGETVARIANT
RUN apt-get update && apt-get install -y --no-install-recommends iptables && rm -rf /var/lib/apt/lists/*
COPY dist/bin/linux_${TARGETARCH}${TARGETVARIANT}/edgetel-onboard /
ENTRYPOINT ["/edgetel-onboard"]
