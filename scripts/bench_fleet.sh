#!/usr/bin/env bash
# `status` over a fleet: 1,000 drills of 3 records each (DRILLS=..., RUNS=...) in 20 team
# folders, against the floor of reading the same bytes (`cat` of every record). Prints the
# time, the ratio and the peak memory; the target is under a second for 1,000 drills.
set -euo pipefail
cd "$(dirname "$0")/.."
DRILL=${DRILL:-target/release/restore-drill}
DRILLS=${DRILLS:-1000}
RUNS=${RUNS:-3}
[ -x "$DRILL" ] || cargo build --release --quiet --locked
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source scripts/bench_lib.sh

# One real record (a 4-step drill) as the template of every generated one.
drill template "$(printf '[[steps]]\nid = "s%d"\nkind = "wait"\nduration = "1ms"\n' 1 2 3 4)" \
  > "$work/template.json"
python3 - "$work/template.json" "$work/fleet" "$DRILLS" "$RUNS" <<'PY'
import datetime, json, os, sys
template, root, drills, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
base = json.load(open(template))
now = datetime.datetime.now(datetime.timezone.utc)
for i in range(drills):
    name = f"drill-{i:04}"
    folder = os.path.join(root, f"team-{i % 20}", name)
    os.makedirs(folder, exist_ok=True)
    for run in range(runs):
        at = now - datetime.timedelta(days=run * 30 + 1)
        ts = at.strftime("%Y%m%dT%H%M%SZ")
        r = dict(base, run_id=f"{name}-{ts}", status="passed",
                 started_at=at.isoformat(), finished_at=at.isoformat())
        r["drill"] = dict(base["drill"], name=name)
        with open(os.path.join(folder, f"restore_drill_{ts}.json"), "w") as f:
            json.dump(r, f, indent=2)
PY
records=$(find "$work/fleet" -name '*.json' | wc -l)
bytes=$(find "$work/fleet" -name '*.json' -exec cat {} + | wc -c)

best() { # command...: the best of 5 wall times, in ns
  local b=""
  for _ in 1 2 3 4 5; do
    local t0 t1; t0=$(now); "$@" >/dev/null 2>&1 || true; t1=$(now)
    local d=$((t1 - t0)); [ -z "$b" ] || [ "$d" -lt "$b" ] && b=$d
  done
  echo "$b"
}
ours=$(best "$DRILL" status "$work/fleet" --max-age 100d)
floor=$(best sh -c "find '$work/fleet' -name '*.json' -exec cat {} + > /dev/null")
rss=""
if [ -x /usr/bin/time ]; then
  kb=$(/usr/bin/time -f %M "$DRILL" status "$work/fleet" --max-age 100d 2>&1 >/dev/null | tail -1)
  rss=", peak RSS $(mib $((kb * 1024)))"
fi
echo "status over $DRILLS drills ($records records, $(mib "$bytes")): $(secs 0 "$ours") s" \
  "(target < 1 s), $(ratio "$ours" "$floor") of cat'ing every record ($(secs 0 "$floor") s)$rss"
