# The sluice engine (and campaignctl) in a small, static, non-root image.
#   docker build -t sluice-engine .
#   docker run --rm -v /etc/sluice:/etc/sluice:ro -e REDIS_URL=redis://redis:6379/0 \
#     -p 8025:8025 sluice-engine
#   docker run --rm --entrypoint campaignctl sluice-engine -redis redis://redis:6379/0 status
# Mount the configuration at /etc/sluice/engine.yaml; see docs/deploy.md.
#
# Pure Go (CGO_ENABLED=0, no -tags openssl): the image has no libc and no
# libcrypto, so DKIM RSA signatures are made by Go's crypto/rsa
# (dkim.Backend() is "go"; ~1 ms per RSA signature, Ed25519 is cheap). A
# build with the OpenSSL signer would need libssl-dev in the build stage
# and libcrypto.so.3 in a glibc runtime image (distroless/base), see
# README "DKIM signing".

# Keep in step with go.mod's go line: the golang images set
# GOTOOLCHAIN=local, so an older Go refuses to build the module.
ARG GO_VERSION=1.26.8
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/engine ./cmd/campaignctl

# static: CA certificates (STARTTLS to MX hosts, rediss://), tzdata and a
# nonroot user (65532), nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/engine /out/campaignctl /usr/local/bin/
COPY configs/engine.example.yaml /etc/sluice/engine.yaml
USER nonroot:nonroot
# HTTP API, metrics, health and one-click unsubscribe (set http.listen to
# 0.0.0.0:8025 in the mounted file); submission 587/465 and the inbound
# bounce/feedback listener 25 when configured. Ports below 1024 as nonroot:
# Docker allows them (net.ipv4.ip_unprivileged_port_start=0 in the
# container); elsewhere (Kubernetes) set that sysctl, or listen on a high
# port and map it.
EXPOSE 8025 587 465 25
# SIGTERM drains (delivery.drain_timeout, 30s): stop with a longer grace
# period, e.g. docker stop -t 60, Kubernetes terminationGracePeriodSeconds: 60.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/engine"]
CMD ["-config", "/etc/sluice/engine.yaml"]
