#!/usr/bin/env bash
# The web speed figures of BENCHMARKS.md (## Web), on loopback only:
#
#   bash scripts/bench-web.sh
#
# Seeds a SQLite store with DOMAINS listed domains (default 100,000; each
# with its check history and decisions; kept under BENCH_DIR between runs),
# starts `starttls-preload serve` on it with a validator that can reach
# nothing (the resolver is a closed loopback port), and measures with
# cmd/loadgen, C clients for DURATION each:
#   1. the status page /domains/<domain>, random domains among all;
#   2. /api/v1/domains/<domain>, the same;
#   3. /policy-list.json as list fetchers ask for it (If-None-Match);
#      and one full download, for its size and time;
#   4. status pages for one client IP, 127.0.0.3, at RATE requests/s (open
#      loop), alone and then while FLOOD_C clients from 127.0.0.2 flood
#      /api/v1/check as fast as they are answered, and at FLOOD_RATE/s.
# Targets (issue 10): ≥ 5,000 req/s and p99 < 50 ms for 1–3; 429s for the
# flood and p99 < 50 ms for the other client in 4. Exit status 1 if missed.
#
# Environment: DOMAINS, DURATION (10s), WARMUP (5s), C (32), RATE (200), FLOOD_C (16), FLOOD_RATE (2000),
# BENCH_DIR (/var/tmp/starttls-preload-bench), PORT (18480).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
N=${DOMAINS:-100000}
D=${DURATION:-10s}
C=${C:-32}
RATE=${RATE:-200}
FLOOD_C=${FLOOD_C:-16}
FLOOD_RATE=${FLOOD_RATE:-2000}
DIR=${BENCH_DIR:-/var/tmp/starttls-preload-bench}
PORT=${PORT:-18480}
log() { printf 'bench-web: %s\n' "$*" >&2; }

mkdir -p "$DIR/bin"
go build -o "$DIR/bin/starttls-preload" ./cmd/starttls-preload
go build -o "$DIR/bin/loadgen" ./cmd/loadgen
data=$DIR/data-$N
# Seeded data is kept between runs; a change of what is seeded (this
# number) seeds again.
seed_version=2
if [ "$(cat "$data/seeded" 2>/dev/null)" != "$seed_version" ]; then
  rm -rf "$data"
  log "seeding $N domains into $data"
  "$DIR/bin/loadgen" seed -data-dir "$data" -domains "$N"
  echo "$seed_version" > "$data/seeded"
fi

# Nothing the service does may leave loopback: no resolver, no relay.
export STARTTLS_PRELOAD_VALIDATE_RESOLVER=127.0.0.1:9
export STARTTLS_PRELOAD_VALIDATE_TIMEOUT=2s
export STARTTLS_PRELOAD_LIST_ALLOW_TEST_TLD=true
export STARTTLS_PRELOAD_NOTIFY_SMTP_RELAY=
base=http://127.0.0.1:$PORT
(cd "$DIR" && exec "$DIR/bin/starttls-preload" serve --log-level warn --data-dir "$data" --listen "127.0.0.1:$PORT") &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  curl -fs -o /dev/null "$base/policy-list.json" && break
  kill -0 $pid 2>/dev/null || { log "serve exited"; exit 2; }
  sleep 0.1
done

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load average: $(cut -d' ' -f1-3 /proc/loadavg); $N domains; c=$C, $D each"
status=0
lg() { "$DIR/bin/loadgen" run -d "$D" "$@" || status=1; }
# Not measured: WARMUP (5s; 0 for none) of the same status requests first.
# A freshly started serve maps the database's pages into memory and parses
# the current list on first use, as a running service has done long before.
if [ "${WARMUP:-5s}" != 0 ]; then
  "$DIR/bin/loadgen" run -d "${WARMUP:-5s}" -c "$C" -range "$N" \
    -url "$base/domains/d{i}.bench.test" -url "$base/api/v1/domains/d{i}.bench.test" >/dev/null || true
fi
lg -c "$C" -min-rps 5000 -max-p99 50ms -range "$N" \
  -url "$base/domains/d{i}.bench.test" \
  -url "$base/api/v1/domains/d{i}.bench.test"
lg -c "$C" -min-rps 5000 -max-p99 50ms -conditional -url "$base/policy-list.json"
curl -s -o /dev/null -w 'full /policy-list.json: %{size_download} bytes in %{time_total} s\n' "$base/policy-list.json"
echo "status pages at $RATE/s from 127.0.0.3, alone:"
lg -c "$C" -rate "$RATE" -from 127.0.0.3 -range "$N" -url "$base/domains/d{i}.bench.test"
echo "the same while 127.0.0.2 floods /api/v1/check:"
lg -c "$C" -rate "$RATE" -from 127.0.0.3 -max-p99 50ms -range "$N" \
  -url "$base/domains/d{i}.bench.test" \
  -flood "$base/api/v1/check?domain=d{i}.bench.test" -flood-range "$N" -flood-from 127.0.0.2 -flood-c "$FLOOD_C"
# The flood above runs on the server's cores and takes their CPU for its own
# requests, as a remote flood would not: the same at a fixed flood rate.
echo "the same while 127.0.0.2 floods /api/v1/check at $FLOOD_RATE/s:"
lg -c "$C" -rate "$RATE" -from 127.0.0.3 -max-p99 50ms -range "$N" \
  -url "$base/domains/d{i}.bench.test" \
  -flood "$base/api/v1/check?domain=d{i}.bench.test" -flood-range "$N" -flood-from 127.0.0.2 -flood-c "$FLOOD_C" -flood-rate "$FLOOD_RATE"
exit $status
