#!/usr/bin/env bash
# Runs phaseguard's whole test suite on a fresh machine: installs the real
# components the tests run against (Debian's prometheus, with promtool),
# then `go test -race ./...`. Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
if ((${#need[@]})); then
	echo "test.sh: installing ${need[*]} (Debian package) for the real-Prometheus tests" >&2
	sudo=""
	[[ $(id -u) -ne 0 ]] && sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The real Prometheus tests must not skip when they are what CI is for.
export CI="${CI:-true}"
go test -race -count=1 -timeout 30m "$@" ./...
