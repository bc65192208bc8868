#!/usr/bin/env bash
# Every benchmark that BENCHMARKS.md records, one area after another, with
# the machine's load printed first (figures taken under load are noisy: read
# ratios and CPU seconds). Loopback only. PostgreSQL figures need
# scripts/test-env.sh (run as root) for the loopback server.
#
#   bash scripts/bench.sh [AREA...]   AREA: validate listgen publish store admission service prdoor web (default: all)
set -Eeuo pipefail
cd "$(dirname "$0")/.."
eval "$(bash scripts/test-env.sh 2>/dev/null)" || true
export STARTTLS_PRELOAD_TEST_POSTGRES STARTTLS_PRELOAD_TEST_EXIM
areas=${*:-validate listgen publish store admission service prdoor web}
echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for a in $areas; do
  echo "## $a"
  case $a in
    validate) bash scripts/bench-validate.sh 2 ;;
    listgen) COUNT=2 bash scripts/bench-listgen.sh ;;
    publish)
      go test -count=1 -run '^$' -bench 'NotModified|ConditionalGET' -benchtime 3s ./publish | grep '^Benchmark'
      go test -count=1 -run '^$' -bench 'FetchMillion' -benchtime 1x -timeout 30m ./publish | grep '^Benchmark'
      go test -count=1 -run '^$' -bench 'MillionSig' -benchtime 3s -timeout 20m ./publish | grep '^Benchmark' ;;
    store) go test -count=1 -run '^$' -bench . -benchtime 2s ./store/sqlite ./store/postgres | grep '^Benchmark' ;;
    admission) go test -count=1 -run '^$' -bench Round -benchtime 1x -timeout 30m ./admission | grep -E '^Benchmark|round' ;;
    service) go test -count=2 -run '^$' -bench IdleWake -benchtime 3s ./service | grep '^Benchmark' ;;
    prdoor) go test -count=1 -run '^$' -bench 'PR100|Refuse10000' -benchtime 3x -count 3 ./prdoor | grep '^Benchmark' ;;
    web) bash scripts/bench-web.sh || true ;;
    *) echo "unknown area $a" >&2; exit 2 ;;
  esac
done
