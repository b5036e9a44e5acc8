#!/usr/bin/env bash
# Table digests on PostgreSQL (issue 14) against `COPY <table> TO '/dev/null'` of every
# table (one after another, in the server: no client, no network): a private server with
# pgbench (SCALE) and a poorly compressible table (NOISE_MB) like scripts/bench_postgres.sh,
# then, ROUNDS times, side by side: the COPYs; the backup step without digests; for each
# build in DRILLS the backup with `digests = true` and the table_digests check over the
# source against it. Prints best and median of ROUNDS and the ratios (check target: 1.2).
#
#   scripts/bench_digests_pg.sh                     # ~ 109 MB
#   SCALE=20 NOISE_MB=150 DRILLS="/tmp/rd-before target/release/restore-drill" scripts/bench_digests_pg.sh
#
# Needs: PostgreSQL server programs, jq, a release build. As root the server runs as `postgres`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench_lib.sh
. scripts/bench_lib.sh

SCALE=${SCALE:-5}
NOISE_MB=${NOISE_MB:-20}
ROUNDS=${ROUNDS:-3}
pg_bench_needs
DRILLS=${DRILLS:-$DRILL}

work=$(mktemp -d /tmp/rd-bench-XXXXXX)
as_pg() { "$@"; }
if [ "$(id -u)" = 0 ]; then chown postgres "$work"; as_pg() { runuser -u postgres -- "$@"; }; fi
port=$(( 20000 + RANDOM % 20000 ))
cleanup() {
  as_pg "$BIN/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql_() { "$BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$work" -p "$port" -U postgres "$@"; }
as_pg "$BIN/initdb" -D "$work/data" -U postgres -A trust -N --no-instructions >/dev/null
as_pg "$BIN/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
  -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work" start >/dev/null
psql_ -d postgres -c "CREATE DATABASE bench"
"$BIN/pgbench" -i -q -s "$SCALE" -h "$work" -p "$port" -U postgres bench >/dev/null 2>&1
psql_ -d bench -c "CREATE TABLE noise AS
  SELECT i AS id, md5(i::text) AS label,
         decode(string_agg(md5(random()::text), ''), 'hex') AS payload
  FROM generate_series(1, $(( NOISE_MB * 1024 * 1024 / 256 ))) i, generate_series(1, 16) j GROUP BY i"
psql_ -d bench -c "VACUUM ANALYZE"
url="postgresql://postgres@127.0.0.1:$port/bench"
tables=$(psql_ -d bench -c "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public'")
echo "bench: PostgreSQL $(psql_ -d bench -c 'SHOW server_version'), database of $(psql_ -d bench -c "SELECT pg_size_pretty(pg_database_size('bench'))"), load $(cut -d' ' -f1 /proc/loadavg)"

backup() { # digests = true/false (a new dump each time: a backup never overwrites)
  rm -f "$work/dump"
  printf '[[steps]]\nid = "backup"\nkind = "backup"\nengine = "postgres"\nurl = "%s"\nformat = "custom"\noutput = "%s"\ndigests = %s\n' \
    "$url" "$work/dump" "$1"
}
check='[[steps]]
id = "verify"
kind = "sql"
engine = "postgres"
database = "'"$url"'"
[[steps.checks]]
name = "digests"
builtin = "table_digests"
compare_to = "{{ steps.backup.table_digests }}"'
scan() { for t in $tables; do psql_ -d bench -c "COPY $t TO '/dev/null'"; done; }
digest_rounds "COPY of every table TO '/dev/null'"
