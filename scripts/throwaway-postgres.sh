#!/usr/bin/env bash
# Start or stop a disposable PostgreSQL on 127.0.0.1:54329 from the binaries on this machine.
set -euo pipefail
DIR=${ENDURO_PG_DIR:-/tmp/enduro-throwaway-pg}
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$BIN" ] && command -v pg_ctl >/dev/null; then BIN=$(dirname "$(command -v pg_ctl)"); fi
if [ -z "$BIN" ]; then
  echo "FATAL: no PostgreSQL binaries found (install postgresql, or set ENDURO_TEST_DATABASE_URL)" >&2
  exit 1
fi
# initdb refuses to run as root; use the postgres account when there is one.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "${1:-start}" in
  start)
    rm -rf "$DIR"; mkdir -p "$DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$DIR"
    as_pg "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
    as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w \
      -o "-p 54329 -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
    ;;
  stop)
    as_pg "$BIN/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null 2>&1 || true
    ;;
esac
