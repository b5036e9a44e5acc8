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

pg_bench_needs
DRILLS=${DRILLS:-$DRILL}
ROUNDS=${ROUNDS:-3}

pg_bench_server
psql_ -d bench -c "VACUUM ANALYZE"
url="postgresql://postgres@127.0.0.1:$port/bench"
tables=$(psql_ -d bench -c "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public'")
echo "bench: PostgreSQL $(psql_ -d bench -c 'SHOW server_version'), database of $(psql_ -d bench -c "SELECT pg_size_pretty(pg_database_size('bench'))"), load $(cut -d' ' -f1 /proc/loadavg)"

engine=postgres
backup() { digest_backup postgres "$url" "$work/dump" "$1"; printf 'format = "custom"\n'; }
scan() { for t in $tables; do psql_ -d bench -c "COPY $t TO '/dev/null'"; done; }
digest_rounds "COPY of every table TO '/dev/null'"
