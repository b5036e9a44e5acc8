#!/usr/bin/env bash
# Table digests (issue 14) against what they add to and stand beside, on a generated
# SQLite database of SIZE_MB (4 tables: integer key, text, real, blob, a nullable text):
#   backup:  backup/sqlite with `digests = true`  vs  the same backup without
#   check:   builtin table_digests (the restored copy against the backup's digests)
#            vs  `sqlite3 db "SELECT * FROM t" > /dev/null` for every table
# Prints seconds (best of ROUNDS), the ratios (targets: backup at most 2, check at most
# 1.2) and our peak memory.
#
#   scripts/bench_digests.sh                 # 256 MiB
#   SIZE_MB=1024 scripts/bench_digests.sh    # 1 GiB
#
# Needs: a release build (`cargo build --release`), sqlite3, python3, GNU time (optional).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/bench_setup.sh
bench_setup bench_digests sqlite3 python3

# About 400 bytes a row, a quarter of the bytes in each table.
rows=$(( SIZE_MB * 1024 * 1024 / 400 / 4 ))
for t in 0 1 2 3; do
  sqlite3 "$work/src.db" "CREATE TABLE t$t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, amount REAL, payload BLOB, note TEXT);
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $rows)
    INSERT INTO t$t SELECT i, hex(randomblob(60)), i / 7.0, randomblob(200),
      CASE WHEN i % 10 = 0 THEN NULL ELSE 'note ' || i END FROM n;"
done
sync
echo "database: $(( $(stat -c %s "$work/src.db") >> 20 )) MiB, 4 tables of $rows rows" >&2

playbook() { # name, digests (true/false), with the check (1/0)
  {
    printf 'version = 1\n[drill]\nname = "%s"\n' "$1"
    printf '[[steps]]\nid = "backup"\nkind = "backup"\nengine = "sqlite"\nsource = "%s"\n' "$work/src.db"
    printf 'output = "{{ drill.workdir }}/copy.db"\ndigests = %s\n' "$2"
    if [ "$3" = 1 ]; then
      printf '[[steps]]\nid = "verify"\nkind = "sql"\nengine = "sqlite"\ndatabase = "{{ steps.backup.path }}"\n'
      printf '[[steps.checks]]\nname = "digests"\nbuiltin = "table_digests"\n'
      printf 'compare_to = "{{ steps.backup.table_digests }}"\n'
    fi
  } > "$work/$1.toml"
}
playbook plain false 0
playbook digests true 1

# Runs a playbook with build $2 (default BIN); prints the durations of `backup` and
# `verify` (0 without it).
drill() {
  rm -rf "$work/art"
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f %M -o "$work/rss" "${2:-$BIN}" run "$work/$1.toml" --artifacts "$work/art" --quiet >/dev/null 2>&1
  else
    "${2:-$BIN}" run "$work/$1.toml" --artifacts "$work/art" --quiet >/dev/null 2>&1
  fi
  python3 - "$work"/art/*.json <<'PY'
import json, sys
rec = json.load(open(sys.argv[1]))
assert rec["status"] == "passed", rec["status"]
steps = {s["id"]: s for s in rec["steps"]}
print(steps["backup"]["duration_s"], steps.get("verify", {}).get("duration_s", 0))
PY
}

# BINS: builds measured side by side (default BIN), each round running each.
read -r -a bins <<<"${BINS:-$BIN}"
plain=() ; select_all=() ; digests=() ; check=() ; rss=0
for round in $(seq "$ROUNDS"); do
  read -r b _ < <(drill plain); plain+=("$b")
  for i in "${!bins[@]}"; do
    read -r b c < <(drill digests "${bins[$i]}")
    digests[i]="${digests[i]:-} $b"; check[i]="${check[i]:-} $c"
  done
  [ -f "$work/rss" ] && rss=$(cat "$work/rss")
  s=$(date +%s.%N)
  for t in 0 1 2 3; do sqlite3 "$work/src.db" "SELECT * FROM t$t" > /dev/null; done
  e=$(date +%s.%N)
  select_all+=("$(python3 -c "print($e - $s)")")
done

python3 - "$SIZE_MB" "${plain[*]}" "${select_all[*]}" "$rss" "${bins[@]}" -- "${digests[@]}" -- "${check[@]}" <<'PY'
import os, statistics, sys
size, plain, sel, rss, *rest = sys.argv[1:]
cut = rest.index("--")
bins, rest = rest[:cut], rest[cut + 1:]
cut = rest.index("--")
digests, check = rest[:cut], rest[cut + 1:]
nums = lambda s: [float(x) for x in s.split()]
def show(xs):
    return f"{min(xs):7.3f}s (median {statistics.median(xs):.3f})"
pb, sa = nums(plain), nums(sel)
print(f"digests bench: {size} MiB SQLite database, best of {len(pb)} rounds, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
print(f"  plain backup            {show(pb)}   rounds {plain}")
print(f"  sqlite3 SELECT * x4     {show(sa)}")
for b, d, c in zip(bins, digests, check):
    d, c = nums(d), nums(c)
    print(f"  {b}:")
    print(f"    backup, digests = true {show(d)}   ratio {min(d) / min(pb):.2f} (target <= 2)   rounds {d}")
    print(f"    check, table_digests   {show(c)}   ratio {min(c) / min(sa):.2f} (target <= 1.2)   rounds {c}")
if rss != "0":
    print(f"  peak memory (the last build's backup with digests + check): {int(rss) / 1024:.0f} MiB")
PY
