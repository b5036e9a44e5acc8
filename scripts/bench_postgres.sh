#!/usr/bin/env bash
# Benchmark of the PostgreSQL engine against PostgreSQL's own tools.
#
# Starts a private source server, fills it with pgbench (SCALE) plus a poorly
# compressible table (NOISE_MB of random bytes, like real data), then prints:
#   - our backup step / plain `pg_dump -Fc`           (target <= 1.03x)
#   - our zstd backup step / plain `pg_dump -Fc`      (target <= 0.5x, similar size)
#   - our ephemeral restore step / plain `pg_restore -j JOBS` into a default server
#   - the throwaway cluster's cost: up (initdb + start) and a whole drill that restores
#     an empty dump (start, initdb, start, restore, stop, remove)
#
#   SCALE=35 NOISE_MB=200 scripts/bench_postgres.sh     # ~ 500 MB + 200 MB
#
# Needs: PostgreSQL server programs, jq, a release build (built if missing). As root the
# servers run as the `postgres` OS user.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench_lib.sh
. scripts/bench_lib.sh

JOBS=${JOBS:-2}
pg_bench_needs

pg_bench_server
size=$(psql_ -d bench -c "SELECT pg_size_pretty(pg_database_size('bench'))")
echo "bench: database size $size"
url="postgresql://postgres@127.0.0.1:$port/bench"


t0=$(now); "$BIN/pg_dump" -Fc -f "$work/plain.dump" "$url"; t1=$(now)
plain_dump=$(secs "$t0" "$t1"); plain_size=$(stat -c %s "$work/plain.dump")

backup() { # id, extra fields
  printf '[[steps]]\nid = "backup"\nkind = "backup"\nengine = "postgres"\nurl = "%s"\nformat = "custom"\noutput = "%s"\n%s\n' \
    "$url" "$work/$1.dump" "$2"
}
rec=$(drill ours "$(backup ours '')"); ours_dump=$(step_s "$rec" backup); ours_size=$(stat -c %s "$work/ours.dump")
rec=$(drill zstd "$(backup zstd 'compression = "zstd"')"); zstd_dump=$(step_s "$rec" backup); zstd_size=$(stat -c %s "$work/zstd.dump")

psql_ -d postgres -c "CREATE DATABASE plain_restore"
t0=$(now); "$BIN/pg_restore" -j "$JOBS" --no-owner -d "postgresql://postgres@127.0.0.1:$port/plain_restore" "$work/plain.dump"; t1=$(now)
plain_restore=$(secs "$t0" "$t1")

restore() { # dump
  printf '[[steps]]\nid = "restore"\nkind = "restore"\nengine = "postgres"\nfrom = "%s"\nisolation = "ephemeral"\njobs = %s\nos_user = "%s"\n' \
    "$1" "$JOBS" "$os_user"
}
rec=$(drill restore "$(restore "$work/plain.dump")")
ours_restore=$(step_s "$rec" restore)
ours_restore_only=$(jq -r '.steps[] | select(.id == "restore") | .metrics.restore_s * 100 | round / 100' <<<"$rec")
cluster_up=$(jq -r '.steps[] | select(.id == "restore") | .metrics.cluster_up_s * 100 | round / 100' <<<"$rec")

# Table digests (issue 14): the `table_digests` check over the source database (every row of
# every table hashed, in parallel per table) against a COPY of every table to /dev/null.
tables=$(psql_ -d bench -c "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public'")
t0=$(now)
for t in $tables; do psql_ -d bench -c "COPY $t TO '/dev/null'"; done
t1=$(now); copy_all=$(secs "$t0" "$t1")
rec=$(drill digests "$(backup digests 'digests = true')
[[steps]]
id = \"verify\"
kind = \"sql\"
engine = \"postgres\"
database = \"$url\"
[[steps.checks]]
name = \"digests\"
builtin = \"table_digests\"
compare_to = \"{{ steps.backup.table_digests }}\"")
digest_backup=$(step_s "$rec" backup); digest_check=$(step_s "$rec" verify)

psql_ -d postgres -c "CREATE DATABASE empty"
"$BIN/pg_dump" -Fc -f "$work/empty.dump" "postgresql://postgres@127.0.0.1:$port/empty"
t0=$(now); drill updown "$(restore "$work/empty.dump")" >/dev/null; t1=$(now)
updown=$(secs "$t0" "$t1")

echo
printf '%-44s %8s  %s\n' "" seconds "ratio / size"
printf '%-44s %8s  %s\n' "pg_dump -Fc" "$plain_dump" "$(mib "$plain_size")"
printf '%-44s %8s  %s  (target <= 1.03x)\n' "backup step (custom)" "$ours_dump" "$(ratio "$ours_dump" "$plain_dump") $(mib "$ours_size")"
printf '%-44s %8s  %s  (target <= 0.50x)\n' "backup step (compression = zstd)" "$zstd_dump" "$(ratio "$zstd_dump" "$plain_dump") $(mib "$zstd_size")"
printf '%-44s %8s\n' "pg_restore -j $JOBS into the default server" "$plain_restore"
printf '%-44s %8s  %s\n' "restore step, ephemeral (cluster up + restore)" "$ours_restore" "$(ratio "$ours_restore" "$plain_restore")"
printf '%-44s %8s  %s\n' "  of which pg_restore into the cluster" "$ours_restore_only" "$(ratio "$ours_restore_only" "$plain_restore")"
printf '%-44s %8s\n' "  of which cluster up (initdb + start)" "$cluster_up"
printf '%-44s %8s  %s\n' "whole drill restoring an empty dump" "$updown" "(process + cluster up + down)"
printf '%-44s %8s\n' "COPY of every table TO '/dev/null'" "$copy_all"
printf '%-44s %8s  %s  (target <= 1.2x)\n' "table_digests check over the database" "$digest_check" "$(ratio "$digest_check" "$copy_all")"
printf '%-44s %8s  %s\n' "backup step with digests = true" "$digest_backup" "$(ratio "$digest_backup" "$ours_dump") of the plain backup step"
