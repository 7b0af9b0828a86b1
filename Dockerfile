# syntax=docker/dockerfile:1
# The phaseguard binary, for the GitHub Action (action.yml) and anywhere
# else a container is handier than `go install`.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The same command CI (.ci/run) and the release binaries
# (scripts/release.sh) build with: static, no paths, no VCS stamp (.git is
# not copied here, and is in CI), stripped. With the same Go and VERSION
# the three are byte-identical, which .ci/run and the release workflow check.
# VERSION is what `phaseguard version` prints (the release tag).
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags="-s -w -X main.version=${VERSION}" -o /out/phaseguard ./cmd/phaseguard

# The binary alone, for comparing with the release asset:
#   docker build --target binary --build-arg VERSION=... --output type=local,dest=DIR .
FROM scratch AS binary
COPY --from=build /out/phaseguard /phaseguard

# Static binary on a minimal base that carries CA certificates
# (/etc/ssl/certs) and tzdata. No USER line: GitHub runs Docker actions as
# the image's default user, and the workspace it mounts belongs to root.
FROM gcr.io/distroless/static-debian12
COPY --from=build /out/phaseguard /phaseguard
ENTRYPOINT ["/phaseguard", "action"]
