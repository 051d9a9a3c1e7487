# syntax=docker/dockerfile:1
# Build: a static cgo binary (SQLite needs cgo), as in LIBRARY-NOTES.md.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0
RUN CGO_ENABLED=1 go build -trimpath \
      -tags 'osusergo,netgo,sqlite_omit_load_extension' \
      -ldflags "-s -w -X main.version=${VERSION} -linkmode external -extldflags -static" \
      -o /out/jarvis ./cmd/jarvis \
 && mkdir -p /out/data

# Run: distroless, no shell, non-root.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/jarvis /usr/local/bin/jarvis
COPY --from=build --chown=65532:65532 /out/data /data
ENV DB_PATH=/data/jarvis.db \
    JARVIS_LISTEN=0.0.0.0 \
    PORT=4000
EXPOSE 4000
VOLUME ["/data"]
USER 65532:65532
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/usr/local/bin/jarvis", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/jarvis"]
CMD ["serve"]
