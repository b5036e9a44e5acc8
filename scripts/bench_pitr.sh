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
# Each pair is measured ROUNDS times (default 2), the bare tool and ours alternating (the
# first run reads a cold page cache), and the best of each is compared.
#
# Needs: PostgreSQL server programs, jq, a release build (built if missing). As root the
# servers run as the `postgres` and `mysql` OS users.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench_lib.sh
. scripts/bench_lib.sh

SIZE_MB=${SIZE_MB:-256}
ROUNDS=${ROUNDS:-2}
pg_bench_needs
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
# Every server writes its pid where cleanup finds it.
stop_servers() {
  for d in "$work"/pg/data "$work"/pg/hand; do
    [ -f "$d/postmaster.pid" ] && kill -QUIT "$(head -1 "$d/postmaster.pid")" 2>/dev/null
  done
  for f in "$work"/my/*.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
  sleep 0.5
}
cleanup() { stop_servers || true; rm -rf "$work"; }
trap cleanup EXIT

psql_() { "$BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$work/pg" -U postgres "$@"; }
row() { printf '%-58s %8s  %s\n' "$@"; }
best() { printf '%s\n' "$@" | sort -g | head -1; }
# Seconds a command takes.
timed() { local t0; t0=$(now); "$@"; secs "$t0" "$(now)"; }

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

bare_base() { rm -rf "$work/pg/bare"; "$BIN/pg_basebackup" -d "$url" -D "$work/pg/bare" -Fp -Xs -c fast --manifest-checksums=CRC32C; }
ours_base() {
  rm -rf "$work/pg/ours" "$work/base"
  step_s "$(drill base "$(printf '[[steps]]\nid = "base"\nkind = "backup"\nengine = "postgres"\nurl = "%s"\nmethod = "basebackup"\noutput = "%s"\n' "$url" "$work/pg/ours")")" base
}
bb=() ob=()
for _ in $(seq "$ROUNDS"); do bb+=("$(timed bare_base)"); ob+=("$(ours_base)"); done
bare_b=$(best "${bb[@]}"); ours_b=$(best "${ob[@]}")
base_size=$(du -sb "$work/pg/ours" | cut -f1)

# Writes after both backups (a tenth of the accounts), archived.
wal_before=$(du -sb "$work/pg/archive" | cut -f1)
psql_ -d bench -c "UPDATE pgbench_accounts SET abalance = abalance + 1
  WHERE aid <= (SELECT max(aid) / 10 FROM pgbench_accounts)"
seg=$(psql_ -d postgres -c "SELECT pg_walfile_name(pg_switch_wal())")
until [ -f "$work/pg/archive/$seg" ]; do sleep 0.2; done
wal=$(( $(du -sb "$work/pg/archive" | cut -f1) - wal_before ))

# By hand: cp -a, recovery.signal, the same settings, replay of the whole archive, promoted.
hand_pitr() {
  rm -rf "$work/pg/hand"
  cp -a "$work/pg/bare" "$work/pg/hand"
  touch "$work/pg/hand/recovery.signal"
  own "$pg_user" "$work/pg/hand"
  as_pg "$BIN/postgres" -D "$work/pg/hand" -p $(( port + 1 )) -c listen_addresses= \
    -c unix_socket_directories="$work/pg" -c archive_mode=off -c fsync=off -c full_page_writes=off \
    -c synchronous_commit=off -c max_wal_size=8GB -c checkpoint_timeout=1h \
    -c "restore_command=cp $work/pg/archive/%f %p" >"$work/pg/hand.log" 2>&1 &
  until [ "$(psql_ -p $(( port + 1 )) -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do sleep 0.05; done
}
stop_hand() { as_pg "$BIN/pg_ctl" -D "$work/pg/hand" -m immediate stop >/dev/null 2>&1 || true; }
ours_pitr() {
  rm -rf "$work/pitr"
  drill pitr "$(printf '[[steps]]\nid = "restore"\nkind = "restore"\nengine = "postgres"\nfrom = "%s"\nwal_archive = "%s"\ntarget = "latest"\nisolation = "ephemeral"\nos_user = "%s"\n' \
    "$work/pg/ours" "$work/pg/archive" "$pg_user")"
}
hp=() op=() cp_=()
for _ in $(seq "$ROUNDS"); do
  hp+=("$(timed hand_pitr)"); stop_hand
  rec=$(ours_pitr); op+=("$(step_s "$rec" restore)")
  cp_+=("$(jq -r '.steps[] | select(.id == "restore") | .metrics.copy_s * 100 | round / 100' <<<"$rec")")
done
hand_p=$(best "${hp[@]}"); ours_p=$(best "${op[@]}"); ours_copy=$(best "${cp_[@]}")

# The logical path: pg_dump -Fc, restored by our ephemeral restore.
rec=$(drill dump "$(printf '[[steps]]\nid = "backup"\nkind = "backup"\nengine = "postgres"\nurl = "%s"\nformat = "custom"\noutput = "%s"\n[[steps]]\nid = "restore"\nkind = "restore"\nengine = "postgres"\nfrom = "%s"\nisolation = "ephemeral"\nos_user = "%s"\n' \
  "$url" "$work/pg/bench.dump" "$work/pg/bench.dump" "$pg_user")")
dump_s=$(step_s "$rec" backup); logical_s=$(step_s "$rec" restore)
as_pg "$BIN/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true

echo
row "PostgreSQL ($(mib "$base_size") base backup, $(mib "$wal") of WAL after it), best of $ROUNDS" seconds ratio
row "pg_basebackup -Fp -Xs -c fast (bare)" "$bare_b" "(${bb[*]})"
row "base backup step (method = basebackup)" "$ours_b" "$(ratio "$ours_b" "$bare_b")  (${ob[*]}; target <= 1.05x)"
row "cp -a + WAL replay of the archive by hand, promoted" "$hand_p" "(${hp[*]})"
row "physical restore step, target = latest, promoted" "$ours_p" "$(ratio "$ours_p" "$hand_p")  (${op[*]}; target <= 1.3x)"
row "  of which verify + copy (pg_verifybackup, cp -a)" "$ours_copy" ""
row "pg_dump -Fc backup step" "$dump_s" ""
row "logical restore step (pg_restore, ephemeral)" "$logical_s" "$(ratio "$logical_s" "$ours_p") the physical restore"

# --- MariaDB --------------------------------------------------------------------------
mariadbd=$(command -v mariadbd || ls /usr/sbin/mariadbd 2>/dev/null || true)
if [ -z "$mariadbd" ] || ! command -v mariabackup >/dev/null; then
  echo; echo "bench: MariaDB part skipped (mariadbd or mariabackup missing)"; exit 0
fi
mkdir -p "$work/my"
own "$my_user" "$work/my"
my_port=$(( port + 2 ))
my_bench_server "$work/my" "$my_port"
rows=$(( SIZE_MB * 1024 * 1024 / 300 ))
my -e "CREATE DATABASE bench; USE bench; CREATE TABLE bench.t (id INT PRIMARY KEY, payload VARCHAR(256)) ENGINE=InnoDB;
  INSERT INTO bench.t SELECT seq, REPEAT(MD5(seq), 8) FROM seq_1_to_$rows;
  CREATE USER drill@'127.0.0.1' IDENTIFIED BY 'bench-pw'; GRANT ALL ON *.* TO drill@'127.0.0.1';"
printf '[client]\nuser=drill\npassword=bench-pw\nhost=127.0.0.1\nport=%s\nprotocol=TCP\n' "$my_port" >"$work/my/client.cnf"
chmod 600 "$work/my/client.cnf"
my_url="mysql://drill:bench-pw@127.0.0.1:$my_port/bench"

bare_mb() {
  rm -rf "$work/my/bare"
  mariabackup --defaults-extra-file="$work/my/client.cnf" --backup --target-dir="$work/my/bare" \
    --datadir="$work/my/data" >"$work/my/bare.log" 2>&1
  mariabackup --prepare --target-dir="$work/my/bare" >>"$work/my/bare.log" 2>&1
}
ours_mb() {
  rm -rf "$work/my/ours" "$work/maria"
  step_s "$(drill maria "$(printf '[[steps]]\nid = "backup"\nkind = "backup"\nengine = "mysql"\nurl = "%s"\nmethod = "mariabackup"\noutput = "%s"\n' "$my_url" "$work/my/ours")")" backup
}
hand_mr() {
  rm -rf "$work/my/hand"
  cp -a "$work/my/bare" "$work/my/hand"
  own "$my_user" "$work/my/hand"
  as_my "$mariadbd" --no-defaults --datadir="$work/my/hand" --socket="$work/my/hand.sock" \
    --pid-file="$work/my/hand.pid" --skip-networking --skip-log-bin >"$work/my/hand.log" 2>&1 &
  until mariadb --no-defaults -uroot --socket="$work/my/hand.sock" -e 'SELECT COUNT(*) FROM bench.t' >/dev/null 2>&1; do sleep 0.05; done
}
stop_hand_my() {
  local pid; pid=$(cat "$work/my/hand.pid"); kill -9 "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}
ours_mr() {
  rm -rf "$work/mr"
  step_s "$(drill mr "$(printf '[[steps]]\nid = "restore"\nkind = "restore"\nengine = "mysql"\nfrom = "%s"\nisolation = "ephemeral"\nos_user = "%s"\ndatabase = "bench"\n' "$work/my/ours" "$my_user")")" restore
}
b=() o=() h=() r=()
for _ in $(seq "$ROUNDS"); do
  b+=("$(timed bare_mb)"); o+=("$(ours_mb)")
  h+=("$(timed hand_mr)"); stop_hand_my; r+=("$(ours_mr)")
done
bare_m=$(best "${b[@]}"); ours_m=$(best "${o[@]}"); hand_r=$(best "${h[@]}"); ours_r=$(best "${r[@]}")
mb_size=$(du -sb "$work/my/ours" | cut -f1)

echo
row "MariaDB ($(mib "$mb_size") backup), best of $ROUNDS" seconds ratio
row "mariabackup --backup + --prepare (bare)" "$bare_m" "(${b[*]})"
row "backup step (method = mariabackup)" "$ours_m" "$(ratio "$ours_m" "$bare_m")  (${o[*]})"
row "cp -a of the prepared backup + mariadbd up, one count" "$hand_r" "(${h[*]})"
row "restore step, ephemeral (copy, mariadbd up, counts)" "$ours_r" "$(ratio "$ours_r" "$hand_r")  (${r[*]})"
