# bulkhead as a container: a static binary on an empty base, run as a
# non-root user, state in the /data volume.
#
#   make image                        # or: docker build -t bulkhead .
#   docker run -p 7070:7070 -e BULKHEAD_TOKEN=$(openssl rand -hex 16) \
#     -v bulkhead-data:/data bulkhead
#
# Put plugins in /data/plugins and workflows in /data/workflows (or mount
# them there). Listening beyond loopback needs a token: BULKHEAD_TOKEN, or
# BULKHEAD_TOKEN_FILE naming a mounted secret.

ARG GO_VERSION=1.26

FROM docker.io/library/golang:${GO_VERSION} AS build
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/bulkhead ./cmd/bulkhead \
 && mkdir -p /out/data/plugins /out/data/workflows

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/bulkhead /bulkhead
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV BULKHEAD_DATA=/data \
    BULKHEAD_PLUGINS=/data/plugins \
    BULKHEAD_WORKFLOWS=/data/workflows \
    BULKHEAD_LISTEN=0.0.0.0:7070 \
    XDG_CACHE_HOME=/data/cache
VOLUME /data
EXPOSE 7070
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/bulkhead", "ready", "--server", "http://127.0.0.1:7070"]
ENTRYPOINT ["/bulkhead"]
CMD ["serve"]
