#!/usr/bin/env bash
# Speed of the policy list (listgen) for a generated list of 1,000,000
# domains, as recorded in BENCHMARKS.md (section "listgen"):
#   - Go benchmarks, one process each, with CPU time and peak RSS;
#   - the commands themselves (sign, verify, list lint, list render) under
#     /usr/bin/time, for elapsed time and peak RSS of a whole process.
# Usage: bash scripts/bench-listgen.sh   (COUNT=3 runs of each benchmark)
set -Eeuo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load average: $(cut -d' ' -f1-3 /proc/loadavg)"

go test -c -o "$tmp/listgen.test" ./listgen
go build -o "$tmp/starttls-preload" ./cmd/starttls-preload

for b in Publish1M LintVerify1M; do
  "$tmp/listgen.test" -test.run='^$' -test.bench="^Benchmark$b\$" -test.benchtime=1x -test.count="${COUNT:-3}" | grep '^Benchmark'
done
"$tmp/listgen.test" -test.run='^$' -test.bench='^BenchmarkSteps1M$' -test.benchtime=1x | grep '^Benchmark'
# Signature checks with 1, 2 and 16 trusted keys, the list signed by the last.
"$tmp/listgen.test" -test.run='^$' -test.bench='^BenchmarkVerifyKeys1M$' -test.benchtime=3x | grep '^Benchmark'

# The commands, on the same generated list.
STARTTLS_PRELOAD_BENCH_LIST=$tmp/policy-list.json "$tmp/listgen.test" -test.run='^TestWriteBenchList$' >/dev/null
ls -l "$tmp/policy-list.json" | awk '{printf "# list: %.1f MB\n", $5/1e6}'
"$tmp/starttls-preload" keygen --out "$tmp/keys" >/dev/null
t() { /usr/bin/time -f "%e s elapsed, %U s user, %S s sys, %M KiB peak RSS: $*" "$@" >/dev/null; }
t "$tmp/starttls-preload" --log-level error sign --key "$tmp/keys/signing-key.pem" "$tmp/policy-list.json"
t "$tmp/starttls-preload" --log-level error verify --pubkey "$tmp/keys/public-key.pem" "$tmp/policy-list.json"
# The same list, its signing key second in a two-key file (a rotation).
"$tmp/starttls-preload" keygen --out "$tmp/keys-old" >/dev/null
cat "$tmp/keys-old/allowed_signers" "$tmp/keys/allowed_signers" > "$tmp/two-keys"
t "$tmp/starttls-preload" --log-level error verify --pubkey "$tmp/two-keys" "$tmp/policy-list.json"
t "$tmp/starttls-preload" --log-level error list lint "$tmp/policy-list.json"
t "$tmp/starttls-preload" --log-level error list render --now 2026-11-24T00:00:00Z \
  --postfix "$tmp/postfix" --exim "$tmp/exim" "$tmp/policy-list.json"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
