#!/usr/bin/env bash
# Benchmark of the physical backup and restore paths against the bare tools, in one run.
#
# PostgreSQL: a private source server archiving its WAL into a directory, filled with
# pgbench (about SIZE_MB), then:
#   - our base backup step (method = "basebackup") / bare `pg_basebackup`      (target <= 1.05x)
#   - writes after the backup (10% of the rows updated), archived
#   - our physical restore to "consistent and promoted" (pg_verifybackup, copy, WAL
#     replay of the whole archive, promotion, counts) / `cp -a` of the backup + the same
#     WAL replay by hand, promoted                                             (target <= 1.3x)
#   - the same database restored logically (pg_dump -Fc, then our ephemeral restore), for
#     comparison: the physical path should be several times faster
# MariaDB (skipped without mariadbd / mariabackup): a private server with about SIZE_MB of
# rows, then our backup step (method = "mariabackup": backup + prepare) / bare
# `mariabackup --backup` + `--prepare`, and our ephemeral restore / `cp -a` + mariadbd up.
#
#   scripts/bench_pitr.sh                  # SIZE_MB=256
#   SIZE_MB=1024 scripts/bench_pitr.sh     # ~1 GiB, the issue's size
#
# Needs: PostgreSQL server programs, jq, a release build (built if missing). As root the
# servers run as the `postgres` and `mysql` OS users.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench_lib.sh
. scripts/bench_lib.sh

SIZE_MB=${SIZE_MB:-256}
BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
DRILL=${DRILL:-target/release/restore-drill}
[ -x "$BIN/initdb" ] || { echo "bench: no PostgreSQL server programs (set PG_BIN)" >&2; exit 2; }
command -v jq >/dev/null || { echo "bench: needs jq" >&2; exit 2; }
[ -x "$DRILL" ] || cargo build --release --quiet
DRILL=$(realpath "$DRILL")

work=$(mktemp -d /tmp/rd-bench-pitr-XXXXXX)
chmod 755 "$work"
pg_user="" my_user=""
as_pg() { "$@"; }
as_my() { "$@"; }
if [ "$(id -u)" = 0 ]; then
  pg_user=postgres my_user=mysql
  as_pg() { runuser -u postgres -- "$@"; }
  as_my() { runuser -u mysql -- "$@"; }
fi
own() { [ -z "$1" ] || chown -R "$1" "${@:2}"; }
port=$(( 20000 + RANDOM % 20000 ))
pids=()
cleanup() {
  as_pg "$BIN/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill -9 -- "-$p" 2>/dev/null || kill -9 "$p" 2>/dev/null || true; done
  sleep 0.5
  rm -rf "$work"
}
trap cleanup EXIT

psql_() { "$BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$work/pg" -U postgres "$@"; }

row() { printf '%-58s %8s  %s\n' "$@"; }

# --- PostgreSQL -----------------------------------------------------------------------
mkdir -p "$work/pg/archive"
own "$pg_user" "$work/pg"
echo "bench: PostgreSQL source on port $port, about $SIZE_MB MB, WAL archived into $work/pg/archive"
as_pg "$BIN/initdb" -D "$work/pg/data" -U postgres -A trust -N --no-instructions >/dev/null
as_pg "$BIN/pg_ctl" -D "$work/pg/data" -l "$work/pg/server.log" -w -o "-p $port \
  -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work/pg -c archive_mode=on \
  -c wal_level=replica -c max_wal_size=4GB -c archive_command='cp %p $work/pg/archive/%f'" start >/dev/null
export PGPORT=$port
psql_ -d postgres -c "CREATE DATABASE bench"
"$BIN/pgbench" -i -q -s $(( SIZE_MB / 15 + 1 )) -h "$work/pg" -U postgres bench >/dev/null 2>&1
echo "bench: database size $(psql_ -d bench -c "SELECT pg_size_pretty(pg_database_size('bench'))")"
url="postgresql://postgres@127.0.0.1:$port/bench"

t0=$(now)
"$BIN/pg_basebackup" -d "$url" -D "$work/pg/bare" -Fp -Xs -c fast --manifest-checksums=CRC32C
t1=$(now); bare_base=$(secs "$t0" "$t1")
rec=$(drill base "$(printf '[[steps]]\nid = "base"\nkind = "backup"\nengine = "postgres"\nurl = "%s"\nmethod = "basebackup"\noutput = "%s"\n' "$url" "$work/pg/ours")")
ours_base=$(step_s "$rec" base)
base_size=$(du -sb "$work/pg/ours" | cut -f1)

# Writes after both backups (a tenth of the accounts), archived.
wal_before=$(du -sb "$work/pg/archive" | cut -f1)
psql_ -d bench -c "UPDATE pgbench_accounts SET abalance = abalance + 1
  WHERE aid <= (SELECT max(aid) / 10 FROM pgbench_accounts)"
seg=$(psql_ -d postgres -c "SELECT pg_walfile_name(pg_switch_wal())")
until [ -f "$work/pg/archive/$seg" ]; do sleep 0.2; done
wal=$(( $(du -sb "$work/pg/archive" | cut -f1) - wal_before ))

rec=$(drill pitr "$(printf '[[steps]]\nid = "restore"\nkind = "restore"\nengine = "postgres"\nfrom = "%s"\nwal_archive = "%s"\ntarget = "latest"\nisolation = "ephemeral"\nos_user = "%s"\n' \
  "$work/pg/ours" "$work/pg/archive" "$pg_user")")
ours_pitr=$(step_s "$rec" restore)
ours_copy=$(jq -r '.steps[] | select(.id == "restore") | .metrics.copy_s * 100 | round / 100' <<<"$rec")

# By hand: cp -a, recovery.signal, the same settings, replay of the whole archive, promoted.
hand_port=$(( port + 1 ))
t0=$(now)
cp -a "$work/pg/bare" "$work/pg/hand"
touch "$work/pg/hand/recovery.signal"
own "$pg_user" "$work/pg/hand"
as_pg "$BIN/postgres" -D "$work/pg/hand" -p "$hand_port" -c listen_addresses= \
  -c unix_socket_directories="$work/pg" -c archive_mode=off -c fsync=off -c full_page_writes=off \
  -c synchronous_commit=off -c max_wal_size=8GB -c checkpoint_timeout=1h \
  -c "restore_command=cp $work/pg/archive/%f %p" >"$work/pg/hand.log" 2>&1 &
pids+=($!); disown
until [ "$(psql_ -p "$hand_port" -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do sleep 0.05; done
t1=$(now); hand_pitr=$(secs "$t0" "$t1")
as_pg "$BIN/pg_ctl" -D "$work/pg/hand" -m immediate stop >/dev/null 2>&1 || true

# The logical path: pg_dump -Fc, restored by our ephemeral restore.
rec=$(drill dump "$(printf '[[steps]]\nid = "backup"\nkind = "backup"\nengine = "postgres"\nurl = "%s"\nformat = "custom"\noutput = "%s"\n[[steps]]\nid = "restore"\nkind = "restore"\nengine = "postgres"\nfrom = "%s"\nisolation = "ephemeral"\nos_user = "%s"\n' \
  "$url" "$work/pg/bench.dump" "$work/pg/bench.dump" "$pg_user")")
dump_s=$(step_s "$rec" backup); logical_s=$(step_s "$rec" restore)
as_pg "$BIN/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true

echo
row "PostgreSQL ($(mib "$base_size") base backup, $(mib "$wal") of WAL after it)" seconds ratio
row "pg_basebackup -Fp -Xs -c fast (bare)" "$bare_base" ""
row "base backup step (method = basebackup)" "$ours_base" "$(ratio "$ours_base" "$bare_base")  (target <= 1.05x)"
row "cp -a + WAL replay of the archive by hand, promoted" "$hand_pitr" ""
row "physical restore step, target = latest, promoted" "$ours_pitr" "$(ratio "$ours_pitr" "$hand_pitr")  (target <= 1.3x)"
row "  of which verify + copy (pg_verifybackup, cp -a)" "$ours_copy" ""
row "pg_dump -Fc backup step" "$dump_s" ""
row "logical restore step (pg_restore, ephemeral)" "$logical_s" "physical is $(ratio "$logical_s" "$ours_pitr") faster"

# --- MariaDB --------------------------------------------------------------------------
mariadbd=$(command -v mariadbd || ls /usr/sbin/mariadbd 2>/dev/null || true)
if [ -z "$mariadbd" ] || ! command -v mariabackup >/dev/null; then
  echo; echo "bench: MariaDB part skipped (mariadbd or mariabackup missing)"; exit 0
fi
mkdir -p "$work/my"
own "$my_user" "$work/my"
my_port=$(( port + 2 ))
as_my mariadb-install-db --no-defaults --datadir="$work/my/data" --auth-root-authentication-method=normal --skip-test-db >/dev/null 2>&1
as_my "$mariadbd" --no-defaults --datadir="$work/my/data" --socket="$work/my/sock" --port="$my_port" \
  --bind-address=127.0.0.1 --skip-log-bin --innodb-buffer-pool-size=256M >"$work/my/server.log" 2>&1 &
pids+=($!); disown
my() { mariadb --no-defaults -uroot --socket="$work/my/sock" -N -B "$@"; }
until my -e 'SELECT 1' >/dev/null 2>&1; do sleep 0.1; done
rows=$(( SIZE_MB * 1024 * 1024 / 300 ))
my -e "CREATE DATABASE bench; USE bench; CREATE TABLE bench.t (id INT PRIMARY KEY, payload VARCHAR(256)) ENGINE=InnoDB;
  INSERT INTO bench.t SELECT seq, REPEAT(MD5(seq), 8) FROM seq_1_to_$rows;
  CREATE USER drill@'127.0.0.1' IDENTIFIED BY 'bench-pw'; GRANT ALL ON *.* TO drill@'127.0.0.1';"
printf '[client]\nuser=drill\npassword=bench-pw\nhost=127.0.0.1\nport=%s\nprotocol=TCP\n' "$my_port" >"$work/my/client.cnf"
chmod 600 "$work/my/client.cnf"

t0=$(now)
mariabackup --defaults-extra-file="$work/my/client.cnf" --backup --target-dir="$work/my/bare" \
  --datadir="$work/my/data" >"$work/my/bare.log" 2>&1
mariabackup --prepare --target-dir="$work/my/bare" >>"$work/my/bare.log" 2>&1
t1=$(now); bare_mb=$(secs "$t0" "$t1")
my_url="mysql://drill:bench-pw@127.0.0.1:$my_port/bench"
rec=$(drill maria "$(printf '[[steps]]\nid = "backup"\nkind = "backup"\nengine = "mysql"\nurl = "%s"\nmethod = "mariabackup"\noutput = "%s"\n[[steps]]\nid = "restore"\nkind = "restore"\nengine = "mysql"\nfrom = "%s"\nisolation = "ephemeral"\nos_user = "%s"\ndatabase = "bench"\n' \
  "$my_url" "$work/my/ours" "$work/my/ours" "$my_user")")
ours_mb=$(step_s "$rec" backup); ours_mr=$(step_s "$rec" restore)
mb_size=$(du -sb "$work/my/ours" | cut -f1)

t0=$(now)
cp -a "$work/my/bare" "$work/my/hand"
own "$my_user" "$work/my/hand"
as_my "$mariadbd" --no-defaults --datadir="$work/my/hand" --socket="$work/my/hand.sock" \
  --skip-networking --skip-log-bin >"$work/my/hand.log" 2>&1 &
pids+=($!); disown
until mariadb --no-defaults -uroot --socket="$work/my/hand.sock" -e 'SELECT COUNT(*) FROM bench.t' >/dev/null 2>&1; do sleep 0.05; done
t1=$(now); hand_mr=$(secs "$t0" "$t1")

echo
row "MariaDB ($(mib "$mb_size") backup)" seconds ratio
row "mariabackup --backup + --prepare (bare)" "$bare_mb" ""
row "backup step (method = mariabackup)" "$ours_mb" "$(ratio "$ours_mb" "$bare_mb")"
row "cp -a of the prepared backup + mariadbd up, one count" "$hand_mr" ""
row "restore step, ephemeral (copy, mariadbd up, counts)" "$ours_mr" "$(ratio "$ours_mr" "$hand_mr")"
