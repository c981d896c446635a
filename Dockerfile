# The sluice engine (and campaignctl) in a small, non-root image.
#   docker build -t sluice-engine .
#   docker run --rm -v /etc/sluice:/etc/sluice:ro -e REDIS_URL=redis://redis:6379/0 \
#     -p 8025:8025 sluice-engine
# Mount the configuration at /etc/sluice/engine.yaml; see docs/deploy.md.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/engine ./cmd/campaignctl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/engine /out/campaignctl /usr/local/bin/
COPY configs/engine.example.yaml /etc/sluice/engine.yaml
USER nonroot:nonroot
# HTTP API, metrics, health and one-click unsubscribe (set http.listen to
# 0.0.0.0:8025 in the mounted file); submission 587/465 when configured.
EXPOSE 8025 587 465
# SIGTERM drains (delivery.drain_timeout, 30s): stop with a longer grace
# period, e.g. docker stop -t 60, Kubernetes terminationGracePeriodSeconds: 60.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/engine"]
CMD ["-config", "/etc/sluice/engine.yaml"]
