# Sourced by the other scripts: repo root, PATH, build cache, model constants.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SALIENT_CACHE="${SALIENT_CACHE:-$HOME/.cache/salient}"
NODE_VERSION="20.20.2"   # used only when the system node is older than 20 (playwright-core needs >= 20)
export PATH="$ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH"
[ -x "$SALIENT_CACHE/node-$NODE_VERSION/bin/node" ] && export PATH="$SALIENT_CACHE/node-$NODE_VERSION/bin:$PATH"
# Build outside the clone so CI reruns reuse it; respect a caller's choice.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$SALIENT_CACHE/target}"
export TRUNK_SKIP_VERSION_CHECK=true     # trunk must not phone home
# shellcheck source=../default-model.env
. "$ROOT/default-model.env"
MODEL_PATH="$ROOT/models/$MODEL_FILE"
TRUNK_VERSION="0.21.14"
# The worker's multi-threaded build needs nightly (build-std with atomics): this one, pinned.
NIGHTLY_TOOLCHAIN="nightly-2026-05-20"

# serve_dist LOGDIR [DIST]: serve DIST (default dist/, with the model linked into its models/
# unless the build copied it: the page fetches models/<file> relative to itself) on a free port in
# the background. Sets SERVER_PID, and URL once the server answers (empty if it did not start
# within 10 s). Its output goes to LOGDIR/serve.out and LOGDIR/serve.log.
serve_dist() {
  local dist="${2:-dist}"
  mkdir -p "$dist/models"
  [ -e "$dist/models/$MODEL_FILE" ] || ln -s "$MODEL_PATH" "$dist/models/$MODEL_FILE"
  python3 "$ROOT/scripts/serve.py" --dir "$dist" 0 >"$1/serve.out" 2>"$1/serve.log" &
  SERVER_PID=$!
  URL=""
  for _ in $(seq 100); do
    URL="$(sed -n 's/^serving \(http[^ ]*\)$/\1/p' "$1/serve.out" 2>/dev/null | head -1)"
    [ -n "$URL" ] && curl -sf -o /dev/null "$URL" && return
    URL=""; sleep 0.1
  done
}
