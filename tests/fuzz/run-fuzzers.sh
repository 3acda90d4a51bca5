#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Build the libFuzzer fuzzers of tests/fuzz with clang (ASan + UBSan) in a
# build directory of their own, run each for SECONDS, and fail on any
# crash, leak, timeout, sanitizer report or broken invariant.
#
#   tests/fuzz/run-fuzzers.sh [--merge] SECONDS [TARGET...]
#
# TARGET: names config record plugin mountinfo sendstream engined csi
# (default: all).  Each
# fuzzer starts from its committed corpus (tests/fuzz/corpus/TARGET) and
# writes what it finds to a scratch directory; --merge then adds the
# inputs that reach new coverage to the committed corpus (libFuzzer's
# -merge=1).  Crash inputs are kept in BUILDDIR/fuzz-artifacts/TARGET/.
#
# Environment: FUZZ_BUILDDIR (default: SRCDIR/build-fuzz), CC (default
# clang).  Needs clang and its sanitizer runtimes (Debian: clang
# libclang-rt-14-dev) and the build dependencies of volmgr.
set -eu

usage() {
	echo "usage: $0 [--merge] SECONDS [TARGET...]" >&2
	exit 2
}

merge=false
if [ "${1:-}" = --merge ]; then
	merge=true
	shift
fi
[ $# -ge 1 ] || usage
secs=$1
shift
case $secs in '' | *[!0-9]*) usage ;; esac
all="names config record plugin mountinfo sendstream engined csi"
targets=${*:-$all}
for t in $targets; do
	case " $all " in *" $t "*) ;; *) echo "$0: unknown target $t (known: $all)" >&2; exit 2 ;; esac
done

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILDDIR:-$src/build-fuzz}
export CC="${CC:-clang}"
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "$0: $CC not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
	exit 1
fi

if [ -f "$build/build.ninja" ]; then
	meson configure "$build" -Dfuzzing=true >/dev/null
else
	meson setup "$build" "$src" -Dfuzzing=true -De2e=false -Dstatic_cli=false \
		-Dbuildtype=debugoptimized >/dev/null
fi
meson compile -C "$build" fuzzers >/dev/null

# A finding must stop the run, whatever the sanitizer: UBSan is built
# with -fno-sanitize-recover, and this is for the case it is not.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT INT TERM
failed=""
printf '%-10s %12s %8s %6s %6s %7s  %s\n' target execs exec/s cov ft corpus result
for t in $targets; do
	bin=$build/tests/fuzz/fuzz-$t
	corpus=$src/tests/fuzz/corpus/$t
	work=$scratch/$t
	art=$build/fuzz-artifacts/$t
	log=$build/fuzz-artifacts/$t.log
	mkdir -p "$work" "$art"
	rm -f "$art"/*
	rc=0
	"$bin" -max_total_time="$secs" -timeout=25 -rss_limit_mb=4096 -max_len=65536 \
		-print_final_stats=1 -artifact_prefix="$art/" "$work" "$corpus" \
		>"$log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	cov=$(sed -n 's/^#[0-9]*.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\).*/\1 \2 \3/p' "$log" | tail -n 1)
	# shellcheck disable=SC2086 # three numbers, split on purpose
	set -- ${cov:-- - -}
	result=ok
	if [ "$rc" -ne 0 ] ||
		grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:|invariant failed' "$log"; then
		result="FAILED (exit $rc)"
		failed="$failed $t"
	elif $merge; then
		before=$(find "$corpus" -type f | wc -l)
		"$bin" -merge=1 -max_len=65536 "$corpus" "$work" >>"$log" 2>&1
		result="ok, +$(($(find "$corpus" -type f | wc -l) - before)) to the corpus"
	fi
	printf '%-10s %12s %8s %6s %6s %7s  %s\n' "$t" "${execs:--}" "${rate:--}" "$1" "$2" "$3" "$result"
done

for t in $failed; do
	echo
	echo "==== fuzz-$t failed; log: $build/fuzz-artifacts/$t.log"
	grep -E -A 12 'invariant failed|ERROR: |runtime error:' "$build/fuzz-artifacts/$t.log" | head -n 40 || true
	for a in "$build/fuzz-artifacts/$t"/*; do
		[ -e "$a" ] || continue
		echo "input: $a"
		echo "  reproduce: $build/tests/fuzz/fuzz-$t $a"
		echo "  minimise:  $build/tests/fuzz/fuzz-$t -minimize_crash=1 -runs=10000 $a"
	done
done
[ -z "$failed" ] || exit 1
