# roomcast container image: a static binary on a minimal, non-root base.
# .ci/test runs the same `go build` line, so a broken build fails CI.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/roomcast .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/roomcast /roomcast
USER nonroot:nonroot
ENV ADDR=:8080
EXPOSE 8080
# No shell or curl in this image: probe over HTTP from the orchestrator,
# GET /healthz (liveness) and GET /readyz (readiness).
ENTRYPOINT ["/roomcast"]
