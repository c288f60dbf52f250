# One image with every edgetel binary. Build the binaries first (make build-cross), then:
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/edgetel/edgetel:0.1.0 .
# TARGETARCH is set by buildx per platform and picks ./bin/linux-<arch>.
FROM gcr.io/distroless/static-debian12:nonroot
ARG TARGETARCH
COPY bin/linux-${TARGETARCH}/edgetelcol bin/linux-${TARGETARCH}/edgetel-query bin/linux-${TARGETARCH}/edgetel-onboard /
USER 10001:10001
ENTRYPOINT ["/edgetelcol"]
