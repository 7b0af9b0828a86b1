#!/usr/bin/env bash
# Builds phaseguard's release binaries into OUTDIR (default: the
# repository's dist/):
# phaseguard-linux-amd64, -linux-arm64 (what Argo Rollouts controllers
# install as a plugin), -darwin-amd64 and -darwin-arm64 (the CLI), and
# sha256sums.txt over them in sha256sum format (`sha256sum -c` checks it).
#
# Reproducible: every binary is built with the Dockerfile's build command
# (static, -trimpath, no VCS stamp, stripped), with the Dockerfile's Go
# version, so two builds of one commit are byte-identical, on any machine,
# and phaseguard-linux-amd64 is the image's /phaseguard byte for byte
# (.ci/run and the release workflow check both). The script refuses to
# build if the Dockerfile's command or Go version differs from its own.
#
# VERSION (default: `git describe --tags --always --dirty`, else "dev") is
# what `phaseguard version` prints; give the image's build the same value
# (--build-arg VERSION=...) for the same bytes.
#
# Usage: scripts/release.sh [OUTDIR]
#
# A relative OUTDIR is taken from the directory the script is run in; the
# default, dist, is the repository's dist/.
set -euo pipefail
out=${1:-}
if [[ -n $out && $out != /* ]]; then
	out=$PWD/$out
fi
cd "$(dirname "$0")/.."
out=${out:-$PWD/dist}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
if [[ ! $VERSION =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ ]]; then
	echo "release.sh: VERSION '$VERSION': want letters, digits and . _ + - only (it goes into -ldflags)" >&2
	exit 2
fi

# The image's build stage: its Go version and its build command.
want_go=$(sed -n 's/^FROM golang:\([0-9][0-9.]*\)-[a-z]* AS build$/go\1/p' Dockerfile)
have_go=$(go env GOVERSION)
if [[ -z $want_go || $have_go != "$want_go" ]]; then
	echo "release.sh: this is $have_go, the Dockerfile builds with ${want_go:-an unknown Go}: the binaries would not be the image's bytes" >&2
	exit 1
fi
# shellcheck disable=SC2016 # the Dockerfile's line, ${VERSION} unexpanded
build='go build -trimpath -buildvcs=false -ldflags="-s -w -X main.version=${VERSION}" -o /out/phaseguard ./cmd/phaseguard'
if ! grep -qxF "RUN CGO_ENABLED=0 $build" Dockerfile; then
	echo "release.sh: the Dockerfile's build command is not 'CGO_ENABLED=0 $build'; keep them one command" >&2
	exit 1
fi

mkdir -p "$out"
rm -f "$out"/phaseguard-linux-* "$out"/phaseguard-darwin-* "$out/sha256sums.txt"
assets=()
for target in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64; do
	goos=${target%/*} goarch=${target#*/}
	asset="phaseguard-$goos-$goarch"
	echo "release.sh: $asset ($VERSION)" >&2
	# The Dockerfile's command; the environment pinned to what the
	# golang image has (no GOFLAGS, default GOAMD64/GOARM64).
	GOFLAGS='' GOEXPERIMENT='' GOAMD64=v1 GOARM64=v8.0 CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch \
		go build -trimpath -buildvcs=false -ldflags="-s -w -X main.version=${VERSION}" -o "$out/$asset" ./cmd/phaseguard
	assets+=("$asset")
done
(cd "$out" && sha256sum "${assets[@]}" >sha256sums.txt)
cat "$out/sha256sums.txt"
