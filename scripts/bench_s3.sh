#!/usr/bin/env bash
# S3 download speed against rclone, from the same local S3 server (s3s-fs):
#   restore-drill locate (s3://, verified: size, ETag md5, sha256)  vs  rclone copy
# Prints seconds, the ratio to rclone (target: at most 1.0) and our peak memory (target:
# under 64 MiB whatever the object's size).
#
#   scripts/bench_s3.sh                  # 256 MiB object
#   SIZE_MB=1024 scripts/bench_s3.sh     # 1 GiB (do not run it on a machine others share)
#
# Needs: a release build, s3s-fs (cargo install s3s-fs --version 0.14.1 --features binary),
# rclone (Debian), GNU time (optional, for the peak memory).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MB=${SIZE_MB:-256}
BIN=${BIN:-target/release/restore-drill}
ROUNDS=${ROUNDS:-3}
S3S=${S3S:-$(command -v s3s-fs || echo "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs")}
[ -x "$BIN" ] || cargo build --release --locked
[ -x "$S3S" ] || { echo "bench_s3: s3s-fs is required" >&2; exit 2; }
command -v rclone >/dev/null || { echo "bench_s3: rclone is required" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-s3-XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
key=benchkey secret="bench-secret-$RANDOM$RANDOM"
mkdir -p "$work/root/bench"
head -c "$((SIZE_MB << 20))" /dev/urandom > "$work/big.bin"
"$S3S" --host 127.0.0.1 --port "$port" --access-key "$key" --secret-key "$secret" "$work/root" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

cat > "$work/bench.toml" <<TOML
version = 1
[drill]
name = "bench-s3"
[secrets]
key = { env = "BENCH_S3_KEY" }
secret = { env = "BENCH_S3_SECRET" }
[[steps]]
id = "latest"
kind = "locate"
glob = "s3://bench/*.bin"
s3 = { endpoint = "http://127.0.0.1:$port", access_key = "{{ secrets.key }}", secret_key = "{{ secrets.secret }}" }
output = "$work/out/big.bin"
TOML
# rclone reads its remote from the environment (never argv).
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other
export RCLONE_CONFIG_BENCH_ENDPOINT="http://127.0.0.1:$port" RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true
export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="$key" RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="$secret"
export BENCH_S3_KEY="$key" BENCH_S3_SECRET="$secret"
# Uploaded through the API, so the store keeps its ETag as real stores do (a file put in
# s3s-fs's folder by hand has its md5 recomputed on every request).
env -u AWS_CA_BUNDLE rclone copyto "$work/big.bin" bench:bench/big.bin >/dev/null 2>&1
rm "$work/big.bin"

now() { date +%s.%N; }
best() { sort -g | head -1; }
ours=() ref=() rss=0
for _ in $(seq "$ROUNDS"); do
  rm -rf "$work/out" "$work/art" "$work/rclone"
  t0=$(now)
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f %M -o "$work/rss" "$BIN" run "$work/bench.toml" --artifacts "$work/art" --quiet >/dev/null 2>&1
    rss=$(cat "$work/rss")
  else
    "$BIN" run "$work/bench.toml" --artifacts "$work/art" --quiet >/dev/null 2>&1
  fi
  t1=$(now)
  # (without AWS_CA_BUNDLE: rclone 1.60 cannot load one into its transport)
  env -u AWS_CA_BUNDLE rclone copy bench:bench/big.bin "$work/rclone" >/dev/null 2>&1
  t2=$(now)
  cmp -s "$work/out/big.bin" "$work/rclone/big.bin" || { echo "bench_s3: the copies differ" >&2; exit 1; }
  ours+=("$(echo "$t1 - $t0" | bc)") ref+=("$(echo "$t2 - $t1" | bc)")
done
o=$(printf '%s\n' "${ours[@]}" | best) r=$(printf '%s\n' "${ref[@]}" | best)
printf '%-44s %8s %8s %7s %10s\n' "download of ${SIZE_MB} MiB (best of $ROUNDS)" ours rclone ratio "peak RSS"
printf '%-44s %7.2fs %7.2fs %6.2fx %7s MiB\n' "locate s3:// (verified)" "$o" "$r" "$(echo "$o / $r" | bc -l)" "$((rss / 1024))"
