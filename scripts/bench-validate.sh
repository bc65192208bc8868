#!/usr/bin/env bash
# Validator benchmarks on the in-process lab (127.0.0.0/8 only): each round
# runs the shared-MX benchmark next to its posttls-finger baseline and the
# distinct-MX benchmark next to its bare-handshake floor, then prints the
# ratios per wall second and per CPU second; finally the 100,000-domain
# bulk run of `starttls-preload check` (peak memory).
#
#   bash scripts/bench-validate.sh [ROUNDS]     (default 3)
#
# posttls-finger must be installed (scripts/test-env.sh installs postfix).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

bench() { # PATTERN BENCHTIME PKG [TEST ARGS]
	go test -count=1 -run '^$' -bench "$1" -benchtime "$2" "$3" ${4:+-args "$4"} | grep '^Benchmark' |
		sed "s|^\(Benchmark[A-Za-z]*\)|\1${4:+/certperhost}|" | tee -a "$out"
}

go test -c -o /dev/null ./validate # build once before timing anything
for r in $(seq "$rounds"); do
	echo "# round $r"
	bench 'SharedMX$' 3x ./validate
	bench 'SharedMXPosttlsFinger$' 1x ./validate
	bench 'DistinctMX$' 2x ./validate
	bench 'DistinctMXBareHandshakes$' 2x ./validate
	# the same with a certificate of its own on every MX host
	bench 'DistinctMX$' 2x ./validate -bench.cert-per-host
	bench 'DistinctMXBareHandshakes$' 2x ./validate -bench.cert-per-host
done

# Lines look like: BenchmarkX-2  N  ns/op  V1 unit1  V2 unit2
awk '
function metric(unit,   i) { for (i = 4; i < NF; i++) if ($(i+1) == unit) return $i; return 0 }
/^BenchmarkSharedMX-/                  { sw = metric("domains/s"); sc = metric("domains/cpu-s") }
/^BenchmarkSharedMXPosttlsFinger-/     { printf "shared MX:   %7.0f domains/s = %5.0fx posttls-finger (%.1f/s); per CPU-s %5.0fx\n", sw, sw / metric("domains/s"), metric("domains/s"), sc / metric("domains/cpu-s") }
/^BenchmarkDistinctMX(\/certperhost)?-/               { dw = metric("checks/s"); dc = metric("checks/cpu-s") }
/^BenchmarkDistinctMXBareHandshakes(\/certperhost)?-/ { printf "distinct MX%s: %7.0f checks/s = %.2fx bare handshakes (%.0f/s); per CPU-s %.2fx\n", ($1 ~ /certperhost/ ? ", cert per host" : ""), dw, dw / metric("checks/s"), metric("checks/s"), dc / metric("checks/cpu-s") }
' "$out"

echo "# 100,000-domain bulk run"
go test -count=1 -run '^$' -bench 'CheckCommandBulk' -benchtime 1x ./cmd/starttls-preload | grep -E '^Benchmark|domains in'
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
