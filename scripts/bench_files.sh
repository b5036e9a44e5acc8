#!/usr/bin/env bash
# Files engine speed against the standard tools, on a generated tree of SIZE_MB:
#   archive + compress:  restore-drill backup/files   vs  tar -I 'zstd -T0' -cf
#   restore:             restore-drill restore/files  vs  tar -xf
# Prints seconds, the ratio to the tool (target: at most 1.2), and our peak memory.
#
#   scripts/bench_files.sh                 # 256 MiB
#   SIZE_MB=1024 scripts/bench_files.sh    # 1 GiB
#
# Needs: a release build (`cargo build --release`), tar, zstd, python3, GNU time (optional).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/bench_setup.sh
bench_setup bench_files tar zstd python3

# A tree like the ones drilled: many small JSON/config files (compressible text) and
# some larger ones, a tenth of the bytes incompressible.
python3 - "$work/tree" "$SIZE_MB" <<'PY'
import json, os, random, sys
root, size_mb = sys.argv[1], int(sys.argv[2])
random.seed(7)
target = size_mb << 20
written = i = 0
words = ["restore", "drill", "backup", "verify", "service", "health", "dispatch", "config", "latency", "queue"]
while written < target:
    d = os.path.join(root, f"kb/{i % 64:02d}/{i % 7}")
    os.makedirs(d, exist_ok=True)
    if i % 50 == 0:
        data = os.urandom(min(1 << 20, target - written) or 1)
        name = f"blob-{i}.bin"
    else:
        n = random.choice([2_000, 8_000, 60_000, 400_000])
        body = " ".join(random.choice(words) for _ in range(n // 8))
        data = json.dumps({"id": i, "title": f"article {i}", "body": body}).encode()
        name = f"article-{i}.json"
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    written += len(data)
    i += 1
print(f"tree: {i} files, {written / 2**20:.0f} MiB", file=sys.stderr)
PY
sync

cat > "$work/bench.toml" <<TOML
version = 1
[drill]
name = "bench-files"
[[steps]]
id = "backup"
kind = "backup"
engine = "files"
paths = ["$work/tree"]
output = "{{ drill.workdir }}/tree.tar.zst"
[[steps]]
id = "restore"
kind = "restore"
engine = "files"
from = "{{ steps.backup.path }}"
target_dir = "{{ drill.workdir }}/restored"
TOML

best() { sort -g | head -1; }

ours_backup=() ; ours_restore=() ; ref_backup=() ; ref_synced=() ; ref_restore=() ; rss=0
for round in $(seq "$ROUNDS"); do
  rm -rf "$work/art" "$work/ref.tar.zst" "$work/ref-out"
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f %M -o "$work/rss" "$BIN" run "$work/bench.toml" --artifacts "$work/art" --quiet >/dev/null 2>&1
    rss=$(cat "$work/rss")
  else
    "$BIN" run "$work/bench.toml" --artifacts "$work/art" --quiet >/dev/null 2>&1
  fi
  read -r b r bytes < <(python3 - "$work"/art/*.json <<'PY'
import json, sys
rec = json.load(open(sys.argv[1]))
steps = {s["id"]: s for s in rec["steps"]}
assert rec["status"] == "passed", rec["status"]
print(steps["backup"]["duration_s"], steps["restore"]["duration_s"], steps["backup"]["outputs"]["bytes"])
PY
)
  ours_backup+=("$b"); ours_restore+=("$r"); ours_bytes=$bytes

  s=$(date +%s.%N); tar -I 'zstd -T0' -cf "$work/ref.tar.zst" -C "$work" tree; e=$(date +%s.%N)
  ref_backup+=("$(python3 -c "print($e - $s)")")
  # Our backup fsyncs the archive before calling it done (a backup that a crash can
  # lose is not one); the like-for-like reference does the same.
  rm -f "$work/ref.tar.zst"
  s=$(date +%s.%N); tar -I 'zstd -T0' -cf "$work/ref.tar.zst" -C "$work" tree && sync "$work/ref.tar.zst"; e=$(date +%s.%N)
  ref_synced+=("$(python3 -c "print($e - $s)")")
  mkdir -p "$work/ref-out"
  s=$(date +%s.%N); tar -xf "$work/ref.tar.zst" -C "$work/ref-out"; e=$(date +%s.%N)
  ref_restore+=("$(python3 -c "print($e - $s)")")
  ref_bytes=$(stat -c %s "$work/ref.tar.zst")
done

ob=$(printf '%s\n' "${ours_backup[@]}" | best); orr=$(printf '%s\n' "${ours_restore[@]}" | best)
rb=$(printf '%s\n' "${ref_backup[@]}" | best); rr=$(printf '%s\n' "${ref_restore[@]}" | best)
rs=$(printf '%s\n' "${ref_synced[@]}" | best)
python3 - "$SIZE_MB" "$ob" "$rb" "$orr" "$rr" "$ours_bytes" "$ref_bytes" "$rss" "$rs" <<'PY'
import sys
size, ob, rb, orr, rr, obytes, rbytes, rss, rs = sys.argv[1:]
ob, rb, orr, rr, rs = map(float, (ob, rb, orr, rr, rs))
print(f"files bench: {size} MiB tree, best of rounds, {__import__('os').cpu_count()} cores")
print(f"  archive+compress  restore-drill {ob:7.3f}s   tar -I 'zstd -T0' -cf {rb:7.3f}s   ratio {ob / rb:.2f}")
print(f"  (archive fsynced)                          tar ... && sync      {rs:7.3f}s   ratio {ob / rs:.2f}")
print(f"  restore           restore-drill {orr:7.3f}s   tar -xf               {rr:7.3f}s   ratio {orr / rr:.2f}")
print(f"  archive size      restore-drill {int(obytes) / 2**20:7.1f} MiB   tar+zstd {int(rbytes) / 2**20:7.1f} MiB")
if rss != "0":
    print(f"  peak memory (whole drill, incl. sha256 manifest): {int(rss) / 1024:.0f} MiB")
PY
