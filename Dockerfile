# One image with every edgetel binary. Build the binaries first (make build-cross), then:
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/edgetel/edgetel:0.1.0 .
# TARGETARCH is set by buildx per platform and picks ./bin/linux-<arch>.

# The onboarding agent needs iptables (nft and legacy backends) next to edgetel-onboard:
#   docker buildx build --target agent --platform linux/amd64,linux/arm64 -t ghcr.io/edgetel/edgetel-agent:0.1.0 .
FROM debian:bookworm-slim AS agent
ARG TARGETARCH
RUN apt-get update && apt-get install -y --no-install-recommends iptables && rm -rf /var/lib/apt/lists/*
COPY bin/linux-${TARGETARCH}/edgetel-onboard /
ENTRYPOINT ["/edgetel-onboard"]

# Every other edgetel binary, distroless and non-root (the default target).
FROM gcr.io/distroless/static-debian12:nonroot AS edgetel
ARG TARGETARCH
COPY bin/linux-${TARGETARCH}/edgetelcol bin/linux-${TARGETARCH}/edgetel-query bin/linux-${TARGETARCH}/edgetel-onboard /
USER 10001:10001
ENTRYPOINT ["/edgetelcol"]
