# syntax=docker/dockerfile:1
# The phaseguard binary, for the GitHub Action (action.yml) and anywhere
# else a container is handier than `go install`.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The same command CI runs (.ci/run), so CI proves this build.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/phaseguard ./cmd/phaseguard

# Static binary on a minimal base that carries CA certificates
# (/etc/ssl/certs) and tzdata. No USER line: GitHub runs Docker actions as
# the image's default user, and the workspace it mounts belongs to root.
FROM gcr.io/distroless/static-debian12
COPY --from=build /out/phaseguard /phaseguard
ENTRYPOINT ["/phaseguard", "action"]
