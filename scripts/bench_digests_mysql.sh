#!/usr/bin/env bash
# Table digests on MySQL/MariaDB (issue 14) against a full scan: a private MariaDB server
# with two tables (ROWS narrow rows like pgbench_accounts, a tenth as many 300-byte rows
# with a blob), then, ROUNDS times, side by side:
#   scan:    `mariadb -e "SELECT * FROM t" > /dev/null` for every table (the client reads
#            and prints every row; `SELECT ... INTO OUTFILE '/dev/null'` is refused by the
#            server, and a server-side COUNT(*) reads no values)
#   check:   builtin table_digests over the source database, against the digests of a
#            backup with `digests = true`, for each build in DRILLS (default: the release
#            build), and that backup step against the same backup without digests
# Prints seconds (best and median of ROUNDS) and the ratios (target for the check: 1.2).
#
#   scripts/bench_digests_mysql.sh                                  # 500,000 rows
#   ROWS=2000000 DRILLS="/tmp/rd-before target/release/restore-drill" scripts/bench_digests_mysql.sh
#
# Needs: mariadbd, mariadb-install-db, the mariadb client, jq, a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench_lib.sh
. scripts/bench_lib.sh

ROWS=${ROWS:-500000}
ROUNDS=${ROUNDS:-3}
DRILLS=${DRILLS:-target/release/restore-drill}
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || { echo "bench: no mariadbd" >&2; exit 2; }
command -v jq >/dev/null || { echo "bench: needs jq" >&2; exit 2; }
for d in $DRILLS; do [ -x "$d" ] || cargo build --release --quiet; done

work=$(mktemp -d /tmp/rd-bench-XXXXXX)
as_my() { "$@"; }
if [ "$(id -u)" = 0 ]; then chown mysql "$work"; as_my() { runuser -u mysql -- "$@"; }; fi
port=$(( 20000 + RANDOM % 20000 ))
cleanup() {
  [ -f "$work/source.pid" ] && kill "$(cat "$work/source.pid")" 2>/dev/null || true
  sleep 1; rm -rf "$work"
}
trap cleanup EXIT
my_bench_server "$work" "$port"
my -e "CREATE DATABASE bench; USE bench;
  CREATE TABLE accounts (aid INT PRIMARY KEY, bid INT NOT NULL, abalance INT NOT NULL, filler CHAR(84)) ENGINE=InnoDB;
  INSERT INTO accounts SELECT seq, seq DIV 100000 + 1, CAST(seq % 1000 AS SIGNED) - 500, REPEAT(' ', 84) FROM seq_1_to_$ROWS;
  CREATE TABLE noise (id INT PRIMARY KEY, label CHAR(32), amount DOUBLE, at DATETIME, payload BLOB) ENGINE=InnoDB;
  INSERT INTO noise SELECT seq, MD5(seq), seq / 7, '2026-01-01' + INTERVAL seq SECOND, RANDOM_BYTES(256) FROM seq_1_to_$(( ROWS / 10 ));
  ANALYZE TABLE accounts, noise;
  CREATE USER drill@'127.0.0.1' IDENTIFIED BY 'bench-pw'; GRANT ALL ON *.* TO drill@'127.0.0.1';" >/dev/null
size=$(my -e "SELECT ROUND(SUM(data_length) / 1048576) FROM information_schema.tables WHERE table_schema = 'bench'")
url="mysql://drill:bench-pw@127.0.0.1:$port/bench"
echo "bench: MariaDB $(my -e 'SELECT VERSION()'), database of $size MiB ($ROWS + $(( ROWS / 10 )) rows), load $(cut -d' ' -f1 /proc/loadavg)"

engine=mysql
backup() { digest_backup mysql "$url" "$work/dump.sql" "$1"; }
scan() { for t in accounts noise; do my bench -e "SELECT * FROM $t" >/dev/null; done; }
digest_rounds "mariadb SELECT * of every table > /dev/null"
