# Helpers the benchmark scripts share (sourced; `$work` and `$DRILL` are the caller's).

now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# A drill of the given steps, timed by its own record (printed).
drill() { # name, steps toml
  mkdir -p "$work/$1"
  printf 'version = 1\n[drill]\nname = "%s"\n%s\n' "$1" "$2" > "$work/$1/playbook.toml"
  "$DRILL" run "$work/$1/playbook.toml" --artifacts "$work/$1/artifacts" --quiet >/dev/null 2>&1 \
    || { echo "bench: drill $1 failed" >&2; cat "$work/$1"/artifacts/*.log >&2; exit 1; }
  cat "$work/$1"/artifacts/*.json
}

# The duration of step `$2` in the record `$1`, in seconds.
step_s() { jq -r --arg id "$2" '.steps[] | select(.id == $id) | .duration_s * 100 | round / 100' <<<"$1"; }

# PostgreSQL's server programs (`$BIN`, or `PG_BIN`), jq and the release build (`$DRILL`),
# built if missing; exits 2 when a tool is missing.
pg_bench_needs() {
  BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
  DRILL=${DRILL:-target/release/restore-drill}
  [ -x "$BIN/initdb" ] || { echo "bench: no PostgreSQL server programs (set PG_BIN)" >&2; exit 2; }
  command -v jq >/dev/null || { echo "bench: needs jq" >&2; exit 2; }
  [ -x "$DRILL" ] || cargo build --release --quiet
}

# Table digests side by side (issue 14): ROUNDS times, the caller's `scan` (the baseline,
# timed), `backup false` (the plain backup step) and, for each build in DRILLS, `backup
# true` followed by the table_digests check of $url (engine $engine); then best and
# median of each and the ratios, the rounds in brackets. `$1` names the baseline.
digest_rounds() {
  stats() { sort -g | awk '{ v[NR] = $1 } END { printf "%.2f %.2f\n", v[1], v[int((NR + 1) / 2)] }'; }
  local drills scan=() plain=() ck=() bk=() rec t0 t1 i b m scan_best scan_med plain_best plain_med
  read -r -a drills <<<"$DRILLS"
  for round in $(seq "$ROUNDS"); do
    t0=$(now); scan; t1=$(now); scan+=("$(secs "$t0" "$t1")")
    rec=$(DRILL=${drills[0]} drill "plain$round" "$(backup false)"); plain+=("$(step_s "$rec" backup)")
    for i in "${!drills[@]}"; do
      rec=$(DRILL=${drills[$i]} drill "digests${round}_$i" "$(backup true)
$(digest_check "$engine" "$url")")
      ck[i]="${ck[i]:-} $(step_s "$rec" verify)"; bk[i]="${bk[i]:-} $(step_s "$rec" backup)"
    done
  done
  read -r scan_best scan_med < <(printf '%s\n' "${scan[@]}" | stats)
  read -r plain_best plain_med < <(printf '%s\n' "${plain[@]}" | stats)
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  printf '%-52s %6s %6s  %s\n' "" best median "ratio (best)"
  printf '%-52s %6s %6s  (%s)\n' "$1" "$scan_best" "$scan_med" "${scan[*]}"
  printf '%-52s %6s %6s  (%s)\n' "backup step, digests = false" "$plain_best" "$plain_med" "${plain[*]}"
  for i in "${!drills[@]}"; do
    read -r b m < <(printf '%s\n' ${ck[i]} | stats)
    printf '%-52s %6s %6s  %s (target <= 1.2x; %s)\n' "table_digests check (${drills[$i]})" "$b" "$m" "$(ratio "$b" "$scan_best")" "${ck[i]# }"
    read -r b m < <(printf '%s\n' ${bk[i]} | stats)
    printf '%-52s %6s %6s  %s of the plain backup (%s)\n' "backup step, digests = true (${drills[$i]})" "$b" "$m" "$(ratio "$b" "$plain_best")" "${bk[i]# }"
  done
}

# A private PostgreSQL source server (`pg_bench_needs` first): a new $work (removed on
# exit) and $port, `as_pg` (as the `postgres` OS user when root: $os_user), `psql_`, and a
# database `bench` of pgbench (SCALE) and `noise`, NOISE_MB of random bytes.
pg_bench_server() {
  SCALE=${SCALE:-5}
  NOISE_MB=${NOISE_MB:-20}
  work=$(mktemp -d /tmp/rd-bench-XXXXXX)
  os_user=""
  as_pg() { "$@"; }
  if [ "$(id -u)" = 0 ]; then
    os_user=postgres
    chown postgres "$work"
    as_pg() { runuser -u postgres -- "$@"; }
  fi
  port=$(( 20000 + RANDOM % 20000 ))
  cleanup() {
    as_pg "$BIN/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
  }
  trap cleanup EXIT
  psql_() { "$BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$work" -p "$port" -U postgres "$@"; }
  echo "bench: source server on port $port (scale $SCALE, noise $NOISE_MB MB)"
  as_pg "$BIN/initdb" -D "$work/data" -U postgres -A trust -N --no-instructions >/dev/null
  as_pg "$BIN/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work" start >/dev/null
  psql_ -d postgres -c "CREATE DATABASE bench"
  "$BIN/pgbench" -i -q -s "$SCALE" -h "$work" -p "$port" -U postgres bench >/dev/null 2>&1
  psql_ -d bench -c "CREATE TABLE noise AS
    SELECT i AS id, md5(i::text) AS label,
           decode(string_agg(md5(random()::text), ''), 'hex') AS payload
    FROM generate_series(1, $(( NOISE_MB * 1024 * 1024 / 256 ))) i, generate_series(1, 16) j GROUP BY i"
}

# Starts a private MariaDB server (`as_my` runs as its OS user) with its files in $1
# (data, sock, source.pid, server.log) on port $2, and waits for it; `my` runs the
# client on it as root.
my_bench_server() {
  local mariadbd
  mariadbd=$(command -v mariadbd || ls /usr/sbin/mariadbd)
  MY_SOCK=$1/sock
  as_my mariadb-install-db --no-defaults --datadir="$1/data" --auth-root-authentication-method=normal --skip-test-db >/dev/null 2>&1
  as_my "$mariadbd" --no-defaults --datadir="$1/data" --socket="$MY_SOCK" --port="$2" \
    --pid-file="$1/source.pid" --bind-address=127.0.0.1 --skip-log-bin \
    --innodb-buffer-pool-size=256M >"$1/server.log" 2>&1 &
  until my -e 'SELECT 1' >/dev/null 2>&1; do sleep 0.1; done
}
my() { mariadb --no-defaults -uroot --socket="$MY_SOCK" -N -B "$@"; }

# The TOML of a backup step of engine $1 from url $2 into $3 (removed first: a backup
# never overwrites) with `digests = $4`, and of the table_digests check of that url.
digest_backup() {
  rm -rf "$3"
  printf '[[steps]]\nid = "backup"\nkind = "backup"\nengine = "%s"\nurl = "%s"\noutput = "%s"\ndigests = %s\n' "$@"
}
digest_check() {
  printf '[[steps]]\nid = "verify"\nkind = "sql"\nengine = "%s"\ndatabase = "%s"\n' "$1" "$2"
  printf '[[steps.checks]]\nname = "digests"\nbuiltin = "table_digests"\ncompare_to = "{{ steps.backup.table_digests }}"\n'
}
