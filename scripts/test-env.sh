#!/usr/bin/env bash
# Prepares this machine for the full test suite: installs, only when missing,
# the real components the tests drive (Postfix, Exim, PostgreSQL, OpenSSL,
# OpenSSH, Chromium), and starts a private PostgreSQL on loopback. Prints the
# environment variables the tests read, as shell assignments:
#
#   eval "$(bash scripts/test-env.sh)"
#
# Needs root for apt-get; without root it installs nothing and the tests that
# need a missing component fail with a message that names it.
set -Eeuo pipefail
log() { printf 'test-env: %s\n' "$*" >&2; }

ROOT=${STARTTLS_PRELOAD_TEST_ROOT:-/var/tmp/starttls-preload-test}
mkdir -p "$ROOT"; chmod 755 "$ROOT"

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v postfix >/dev/null || need+=(postfix)
command -v posttls-finger >/dev/null || need+=(postfix)
# The compiled policy-map types the fetch client offers besides hash/btree.
for pkg in postfix-lmdb postfix-cdb; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v unshare >/dev/null || need+=(util-linux)
# Chromium, driven headless by chromedp in the web pages' browser tests, and a
# font so that its screenshots show text.
command -v chromium >/dev/null || need+=(chromium)
dpkg-query -W -f='${Status}' fonts-dejavu-core 2>/dev/null | grep -q "ok installed" || need+=(fonts-dejavu-core)
command -v mount >/dev/null || need+=(mount)
# Exim's shared libraries (the binary itself is unpacked, see below).
for lib in libgnutls-dane0 libgnutls30 libidn12 libidn2-0 libpcre2-8-0 libdb5.3 libnsl2 libcrypt1; do
  dpkg-query -W -f='${Status}' "$lib" 2>/dev/null | grep -q "ok installed" || need+=("$lib")
done

if [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  if [ ${#need[@]} -gt 0 ]; then
    log "installing: ${need[*]}"
    apt-get update -qq >&2
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    echo "postfix postfix/mailname string mta.lab.test" | debconf-set-selections
    apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
  fi
  # Debian's postfix and exim4-daemon-light conflict: Exim is unpacked beside
  # Postfix instead of installed, and run with -C.
  EXIM_ROOT=$ROOT/exim-root
  if [ ! -x "$EXIM_ROOT/usr/sbin/exim4" ]; then
    log "unpacking exim4"
    mkdir -p "$ROOT/debs"; chmod 777 "$ROOT/debs"
    if ! ls "$ROOT"/debs/exim4-daemon-light_*.deb >/dev/null 2>&1; then
      (cd "$ROOT/debs" && apt-get download -qq exim4-daemon-light exim4-base exim4-config >&2 2>/dev/null) ||
        { apt-get update -qq >&2; (cd "$ROOT/debs" && apt-get download -qq exim4-daemon-light exim4-base exim4-config >&2); }
    fi
    mkdir -p "$EXIM_ROOT"
    for d in "$ROOT"/debs/exim4-*.deb; do dpkg-deb -x "$d" "$EXIM_ROOT"; done
  fi
  getent passwd Debian-exim >/dev/null ||
    useradd --system --user-group --home-dir /var/spool/exim4 --no-create-home \
      --shell /usr/sbin/nologin Debian-exim
  echo "STARTTLS_PRELOAD_TEST_EXIM=$EXIM_ROOT/usr/sbin/exim4"
fi

CHROMIUM=$(command -v chromium || true)
if [ -n "$CHROMIUM" ]; then echo "STARTTLS_PRELOAD_TEST_CHROMIUM=$CHROMIUM"; fi

# A private PostgreSQL cluster on loopback, owned by the postgres user.
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
PGPORT=${STARTTLS_PRELOAD_TEST_PGPORT:-55432}
if [ -n "$PGBIN" ] && [ "$(id -u)" = 0 ]; then
  PGDATA=$ROOT/pg
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    log "initdb $PGDATA"
    mkdir -p "$PGDATA"; chown postgres:postgres "$PGDATA"
    su postgres -s /bin/sh -c "$PGBIN/initdb -D $PGDATA -A trust -U postgres" >/dev/null
  fi
  if ! su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $PGDATA status" >/dev/null 2>&1; then
    log "starting postgresql on 127.0.0.1:$PGPORT"
    su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $PGDATA -l $PGDATA/log -w -o '-c listen_addresses=127.0.0.1 -p $PGPORT -k /tmp -c max_connections=200 -c fsync=off' start" >/dev/null
  fi
  echo "STARTTLS_PRELOAD_TEST_POSTGRES='postgres://postgres@127.0.0.1:$PGPORT/postgres?sslmode=disable'"
fi
