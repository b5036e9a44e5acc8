#!/usr/bin/env bash
# Speed of `locate` from restic and borg repositories, and of its age + zstd decoding,
# side by side with the tools alone, in one run:
#   locate restic (snapshots beside dump latest)    vs  restic dump   (target: ≤ 1.05×)
#   locate borg (list, list beside extract --stdout) vs borg extract --stdout   (≤ 1.05×)
#     and vs what a script of the newest archive runs: borg list --last 1, then that extract
#   locate decrypt + decompress (age, zstd)         vs  age -d | zstd -d   (≤ 1.1×)
# Each round runs ours (and BEFORE's) then the tool, alternating; prints seconds (best and
# median of ROUNDS), the ratios of the bests and of the medians, and our peak memory.
#
#   scripts/bench_repos.sh                 # a 256 MiB file
#   SIZE_MB=1024 scripts/bench_repos.sh
#   BEFORE=/tmp/old-restore-drill scripts/bench_repos.sh   # another build, in the same run
#   ROWS=restic ROUNDS=5 scripts/bench_repos.sh            # some rows only
#
# Needs: a release build, restic, borg, age, age-keygen, zstd; GNU time (optional, for the
# peak memory). The repositories and files are made in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MB=${SIZE_MB:-256} ROUNDS=${ROUNDS:-3} BIN=${BIN:-target/release/restore-drill}
BEFORE=${BEFORE:-} ROWS=${ROWS:-restic borg decode}
[ -x "$BIN" ] || cargo build --release --locked
for tool in restic borg age age-keygen zstd; do
  command -v "$tool" >/dev/null || { echo "bench_repos: $tool is required" >&2; exit 2; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-repos-XXXXXX")
trap 'rm -rf "$work"' EXIT
pw="bench-pw-$RANDOM$RANDOM"
mkdir -p "$work/data"
# Half random, half text: compressible as a database dump is.
head -c "$((SIZE_MB << 19))" /dev/urandom > "$work/data/big.db"
{ yes "INSERT INTO dispatches VALUES (42, 'api', '2026-01-01T00:00:00Z');" || true; } |
  head -c "$((SIZE_MB << 19))" >> "$work/data/big.db"

export RESTIC_REPOSITORY="$work/restic" RESTIC_PASSWORD="$pw" BORG_PASSPHRASE="$pw"
export BENCH_PW="$pw"
(cd "$work" && restic init -q && restic backup -q data >/dev/null)
(cd "$work" && borg init -e repokey borg && borg create borg::bench data) >/dev/null 2>&1
age-keygen -o "$work/key.txt" 2>/dev/null
zstd -q -T0 "$work/data/big.db" -o "$work/big.db.zst"
age -r "$(age-keygen -y "$work/key.txt")" -o "$work/big.db.zst.age" "$work/big.db.zst"
rm "$work/big.db.zst"
export BENCH_AGE_KEY="$(cat "$work/key.txt")"

playbook() { # id, source fields
  cat > "$work/$1.toml" <<TOML
version = 1
drill = { name = "bench-$1" }
secrets = { pw = { env = "BENCH_PW" }, age_key = { env = "BENCH_AGE_KEY" } }
[[steps]]
id = "latest"
kind = "locate"
output = "$work/out/big.db"
$2
TOML
}
playbook restic "restic = { repository = \"$work/restic\", password = \"{{ secrets.pw }}\" }
paths = [\"/data/big.db\"]"
playbook borg "borg = { repository = \"$work/borg\", passphrase = \"{{ secrets.pw }}\" }
paths = [\"data/big.db\"]"
playbook decode "glob = \"$work/*.zst.age\"
decrypt = { age_identity = \"{{ secrets.age_key }}\" }
decompress = \"auto\""

now() { date +%s.%N; }
best() { sort -g | head -1; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# ours ID [BINARY]: runs the drill, its seconds to stdout, its peak RSS (KiB) to $work/rss.
ours() {
  rm -rf "$work/out" "$work/art"
  local t0 t1 bin=${2:-$BIN}
  t0=$(now)
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f %M -o "$work/rss" "$bin" run "$work/$1.toml" --artifacts "$work/art" --quiet >/dev/null 2>&1
  else
    echo 0 > "$work/rss"
    "$bin" run "$work/$1.toml" --artifacts "$work/art" --quiet >/dev/null 2>&1
  fi
  t1=$(now)
  cmp -s "$work/out/big.db" "$work/data/big.db" || { echo "bench_repos: $1 restored another file" >&2; exit 1; }
  echo "$t1 - $t0" | bc
}
# theirs COMMAND...: the standard tool's seconds (its output to $work/ref.db).
theirs() {
  local t0 t1
  t0=$(now)
  "$@" > "$work/ref.db"
  t1=$(now)
  cmp -s "$work/ref.db" "$work/data/big.db" || { echo "bench_repos: $* gave another file" >&2; exit 1; }
  echo "$t1 - $t0" | bc
}
restic_dump() { restic dump --no-lock --no-cache latest /data/big.db; }
borg_extract() { BORG_RELOCATED_REPO_ACCESS_IS_OK=yes borg extract --bypass-lock --stdout "$work/borg::bench" data/big.db; }
# `borg extract` takes an archive's name, never "the newest" (no version has archive
# filters on extract), so a script that restores the newest archive lists it first.
borg_newest() {
  local name
  name=$(BORG_RELOCATED_REPO_ACCESS_IS_OK=yes borg list --bypass-lock --last 1 --short "$work/borg")
  BORG_RELOCATED_REPO_ACCESS_IS_OK=yes borg extract --bypass-lock --stdout "$work/borg::$name" data/big.db
}
age_zstd() { age -d -i "$work/key.txt" "$work/big.db.zst.age" | zstd -q -d; }

echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-42s %15s %15s %15s %13s %9s\n' "${SIZE_MB} MiB file, $ROUNDS rounds" "before best/med" "ours best/med" "tool best/med" "ratio b/med" "peak RSS"
row() { # label, id, reference function
  case " $ROWS " in *" $2 "*) ;; *) return 0;; esac
  local o=() p=() r=() rss=0 a am b bm c cm
  for _ in $(seq "$ROUNDS"); do
    [ -n "$BEFORE" ] && p+=("$(ours "$2" "$BEFORE")")
    o+=("$(ours "$2")"); rss=$(( $(cat "$work/rss") > rss ? $(cat "$work/rss") : rss ))
    r+=("$(theirs "$3")")
  done
  a=$(printf '%s\n' "${o[@]}" | best) am=$(printf '%s\n' "${o[@]}" | median)
  b=$(printf '%s\n' "${r[@]}" | best) bm=$(printf '%s\n' "${r[@]}" | median)
  c=- cm=-
  if [ -n "$BEFORE" ]; then
    c=$(printf '%.2f' "$(printf '%s\n' "${p[@]}" | best)") cm=$(printf '%.2f' "$(printf '%s\n' "${p[@]}" | median)")
  fi
  printf '%-42s %7s/%-7s %7.2f/%-7.2f %7.2f/%-7.2f %5.2fx/%.2fx %5s MiB\n' "$1" "$c" "$cm" "$a" "$am" "$b" "$bm" \
    "$(echo "$a / $b" | bc -l)" "$(echo "$am / $bm" | bc -l)" "$((rss / 1024))"
}
row "locate restic  vs  restic dump" restic restic_dump
row "locate borg  vs  borg extract --stdout" borg borg_extract
row "locate borg  vs  borg list --last 1; extract" borg borg_newest
row "locate age+zstd  vs  age -d | zstd -d" decode age_zstd
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
