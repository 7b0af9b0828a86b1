#!/usr/bin/env bash
# Runs the Go native fuzz targets (func FuzzXxx(f *testing.F) in each
# package's fuzz_test.go) one after the other, each for $FUZZTIME, and
# fails if any fails. Each run starts with the target's seed corpus (its
# f.Add seeds and testdata/fuzz/<target>/), so a regression there fails at
# once; an input that fails is written to testdata/fuzz/<target>/, where,
# committed, it stays a regression test of `go test`.
#
#   scripts/fuzz.sh                      every target, 5 s each (CI)
#   FUZZTIME=1000000x scripts/fuzz.sh    the long run: a million executions each
#   scripts/fuzz.sh FuzzQuery policies   only the targets named, or of the packages named
#
# FUZZTIME is go test's -fuzztime (a duration, or a count such as 1000000x);
# FUZZPARALLEL its -parallel, the fuzzing processes per target (default 1:
# the machine running it is shared). Each run starts from the seed corpus
# alone, with a fuzz cache of its own (a temporary directory): Go's shared
# cache ($GOCACHE/fuzz) grows with every long run, and replaying it used up
# a short run's time. FUZZCACHE=go keeps Go's cache (a long run that should
# build on the last one). A target that fails only with Go's own
# "context deadline exceeded" at the end of -fuzztime, writing no failing
# input, is Go's coordinator race (golang/go#75804, Go <= 1.26), not a
# finding: it is reported and not counted.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-5s}
parallel=${FUZZPARALLEL:-1}

args=("$@")

cachedir=""
if [[ ${FUZZCACHE:-fresh} != go ]]; then
	cachedir=$(mktemp -d)
	trap 'rm -rf "$cachedir"' EXIT
fi

# wanted reports whether target, of the package in directory dir, is asked
# for: every target when no argument names one.
wanted() {
	local dir=$1 target=$2 arg
	((${#args[@]} == 0)) && return 0
	for arg in "${args[@]}"; do
		arg=${arg#./}
		[[ $arg == "$target" || ${arg%/} == "$dir" ]] && return 0
	done
	return 1
}

# inputs counts the failing inputs written under a target's corpus
# directory (0 when it does not exist).
inputs() {
	if [[ -d $1 ]]; then find "$1" -type f | wc -l; else echo 0; fi
}

ran=0
failed=()
while IFS= read -r file; do
	dir=$(dirname "${file#./}")
	while IFS= read -r target; do
		wanted "$dir" "$target" || continue
		ran=$((ran + 1))
		echo "== fuzz $target ./$dir/ ($fuzztime)"
		cache=()
		[[ -n $cachedir ]] && cache=(-args -test.fuzzcachedir="$cachedir/$dir/$target")
		corpus="$dir/testdata/fuzz/$target"
		before=$(inputs "$corpus")
		out=$(mktemp)
		if go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -parallel "$parallel" "./$dir/" "${cache[@]}" 2>&1 | tee "$out"; then
			:
		elif [[ $(inputs "$corpus") -eq $before ]] &&
			grep -qx -- '--- FAIL: '"$target"' ([0-9.]*s)' "$out" &&
			[[ $(grep -A1 -- '--- FAIL: '"$target" "$out" | tail -1 | tr -d '[:space:]') == contextdeadlineexceeded ]]; then
			# Go's fuzz coordinator, up to 1.26, can report its own
			# -fuzztime deadline as a failure, with no failing input
			# (golang/go#75804, fixed in Go 1.27): not a finding.
			echo "fuzz: $target: Go's fuzztime deadline race (golang/go#75804), no failing input written: not counted" >&2
		else
			failed+=("$target ./$dir/")
		fi
		rm -f "$out"
	done < <(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(f \*testing\.F).*/\1/p' "$file")
done < <(find . -name fuzz_test.go -not -path './.git/*' | sort)

if ((ran == 0)); then
	echo "fuzz: no target matches: $*" >&2
	exit 1
fi
if ((${#failed[@]})); then
	echo "fuzz: ${#failed[@]} of $ran targets failed:" >&2
	printf '  %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "fuzz: $ran targets passed ($fuzztime each)"
