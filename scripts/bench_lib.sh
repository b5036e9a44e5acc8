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
