# Sourced by the bench scripts: `bench_setup NAME TOOL...` sets SIZE_MB (default 256),
# BIN (a release build, built when missing) and ROUNDS (default 3), requires each TOOL on
# PATH, and makes $work, a scratch directory removed on exit.
bench_setup() {
  local name=$1 tool
  shift
  SIZE_MB=${SIZE_MB:-256}
  BIN=${BIN:-target/release/restore-drill}
  ROUNDS=${ROUNDS:-3}
  [ -x "$BIN" ] || cargo build --release --locked
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$name: $tool is required" >&2; exit 2; }
  done
  work=$(mktemp -d "${TMPDIR:-/tmp}/$name-XXXXXX")
  trap 'rm -rf "$work"' EXIT
}
