#!/usr/bin/env bash
# Salient's test suite: native Rust tests, release page build, browser end-to-end tests.
# Expects the tools (scripts/setup.sh) and the model (scripts/fetch-model.sh); `make test` does both.
# Groups: fmt, clippy, clippy-wasm, cargo-test, native-reference, trunk-build, serve (headers), e2e-browser, e2e-methods,
# e2e-models, e2e-share, e2e-hardening, e2e-safety, e2e-gpu, e2e-report-card, e2e-editor,
# e2e-static-host.
# Artifacts and logs: test-out/.
# Last line: `N passed, M failed, K checks skipped` (groups; a skipped check is one that cannot run
# on this machine and says SKIP, never counted as passed); exit status non-zero on any failure.
#   SKIP_CARGO_TEST=1   skip the native tests     SKIP_BUILD=1   test the existing dist/
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
OUT="$ROOT/test-out"
rm -rf "$OUT"; mkdir -p "$OUT"
export TEST_OUT="$OUT"

passed=0; failed=0; skipped_checks=0; summary=()
group() {  # group NAME CMD...: run, time, log to test-out/NAME.log (and the console)
  local name="$1"; shift
  local s=$SECONDS rc=0
  echo "=== [$name] $*"
  "$@" 2>&1 | tee "$OUT/$name.log" || rc=$?
  local skips
  skips=$(grep -c '^SKIP ' "$OUT/$name.log" || true)
  skipped_checks=$((skipped_checks + skips))
  local skip_note=""; [ "$skips" -gt 0 ] && skip_note=", $skips skipped"
  if [ $rc -eq 0 ]; then passed=$((passed + 1)); summary+=("ok   $name ($(( SECONDS - s ))s$skip_note)")
  else failed=$((failed + 1)); summary+=("FAIL $name ($(( SECONDS - s ))s, rc=$rc, log: test-out/$name.log)"); fi
  echo "=== [$name] $([ $rc -eq 0 ] && echo ok || echo FAIL) in $(( SECONDS - s ))s"
  return $rc
}
skipped() { failed=$((failed + 1)); summary+=("FAIL $1 (skipped: $2)"); echo "=== [$1] SKIPPED: $2"; }

[ -f "$MODEL_PATH" ] || { echo "missing $MODEL_PATH: run scripts/fetch-model.sh (or make test)"; exit 1; }
# Mesa's software Vulkan device (the GPU tests) warns without a runtime directory.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

# (a) style: the tree is formatted, and clippy finds nothing natively or in the page's build
group fmt cargo fmt --check
group clippy cargo clippy --locked --all-targets -- -D warnings
group clippy-wasm cargo clippy --locked --target wasm32-unknown-unknown --lib --bin salient-web -- -D warnings

# (b) native tests (they load the model from models/)
if [ "${SKIP_CARGO_TEST:-0}" != 1 ]; then
  group cargo-test cargo test --locked --no-fail-fast
fi

# The native engine's map of the page's default text, which e2e-browser compares with the page's
# (the test profile: the binary `cargo test` already built).
native_reference() {
  cargo run --locked --profile test --bin salient -- attribute --model "$MODEL_PATH" \
    --text "The Eiffel Tower is located in the city of" --json >"$OUT/native-reference.json" &&
    head -c 400 "$OUT/native-reference.json"
}
group native-reference native_reference
export NATIVE_REFERENCE="$OUT/native-reference.json"

# (c) the page, exactly as shipped (Trunk.toml: offline = true, wasm-opt from node_modules)
build_ok=1
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  group trunk-build trunk build --release || build_ok=0
fi
[ -f dist/index.html ] || build_ok=0

SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; fi
}
trap cleanup EXIT INT TERM

if [ $build_ok = 1 ]; then
  # (d) serve dist/ on a free port
  serve_dist "$OUT"
  if [ -z "$URL" ]; then
    skipped serve "server did not start (test-out/serve.log)"; skipped e2e-browser "no server"
    skipped e2e-methods "no server"
    skipped e2e-models "no server"
    skipped e2e-share "no server"
    skipped e2e-hardening "no server"
    skipped e2e-safety "no server"
    skipped e2e-gpu "no server"
    skipped e2e-report-card "no server"
    skipped e2e-editor "no server"
    skipped e2e-static-host "no server"
  else
    echo "serving dist/ at $URL"
    check_headers() {  # the bundle is served with the right types, isolation headers and index.html's CSP
      local wasm rc=0 h page
      wasm="$(cd dist && ls ./*.wasm 2>/dev/null | head -1)"
      [ -n "$wasm" ] || { echo "no .wasm in dist/"; return 1; }
      h="$(curl -sfI "$URL${wasm#./}" | tr -d '\r')"
      echo "$h"
      grep -qi '^content-type: application/wasm' <<<"$h" || { echo "wasm: wrong content-type"; rc=1; }
      grep -qi '^cross-origin-opener-policy: same-origin' <<<"$h" || { echo "no COOP"; rc=1; }
      grep -qi '^cross-origin-embedder-policy: require-corp' <<<"$h" || { echo "no COEP"; rc=1; }
      page="$(curl -sfI "$URL" | tr -d '\r')"
      grep -qi "^content-security-policy: default-src 'none';" <<<"$page" || { echo "page: no Content-Security-Policy header"; rc=1; }
      grep -qi "^content-security-policy: .*frame-ancestors 'none'" <<<"$page" || { echo "page: framing not refused (frame-ancestors)"; rc=1; }
      embed="$(curl -sfI "${URL}embed.html" | tr -d '\r')" || { echo "no embed.html"; rc=1; }
      grep -qi "frame-ancestors" <<<"$embed" && { echo "embed.html: framing refused, but the embed is made to be framed"; rc=1; }
      curl -sf -o /dev/null "${URL}_headers" || { echo "no _headers file for static hosts"; rc=1; }
      curl -sfI -o /dev/null "${URL}models/$MODEL_FILE" || { echo "model not served at models/$MODEL_FILE"; rc=1; }
      curl -sfI -o /dev/null "${URL}threads/salient-web_bg.wasm" || { echo "no multi-threaded build at threads/"; rc=1; }
      curl -sfI -o /dev/null "${URL}threads-relaxed/salient-web_bg.wasm" || { echo "no relaxed-SIMD build at threads-relaxed/"; rc=1; }
      return $rc
    }
    group serve check_headers
    # (e) browser tests
    group e2e-browser node tests/e2e/run.mjs "$URL" "$ROOT/dist"
    group e2e-methods node tests/e2e/methods.mjs "$URL" "$ROOT/dist"
    group e2e-models node tests/e2e/models.mjs "$URL" "$ROOT/dist"
    group e2e-share node tests/e2e/share.mjs "$URL" "$ROOT/dist"
    group e2e-hardening node tests/e2e/hardening.mjs "$URL" "$ROOT/dist"
    group e2e-safety node tests/e2e/safety.mjs "$URL" "$ROOT/dist"
    group e2e-gpu node tests/e2e/gpu.mjs "$URL" "$ROOT/dist"
    group e2e-report-card node tests/e2e/report-card.mjs "$URL" "$ROOT/dist"
    group e2e-editor node tests/e2e/editor.mjs "$URL" "$ROOT/dist"
    group e2e-static-host node tests/e2e/static-host.mjs "$URL" "$ROOT/dist"
  fi
else
  skipped e2e-browser "no dist/index.html (trunk build failed)"
  skipped e2e-methods "no dist/index.html (trunk build failed)"
  skipped e2e-models "no dist/index.html (trunk build failed)"
  skipped e2e-share "no dist/index.html (trunk build failed)"
  skipped e2e-hardening "no dist/index.html (trunk build failed)"
  skipped e2e-safety "no dist/index.html (trunk build failed)"
  skipped e2e-gpu "no dist/index.html (trunk build failed)"
  skipped e2e-report-card "no dist/index.html (trunk build failed)"
  skipped e2e-editor "no dist/index.html (trunk build failed)"
  skipped e2e-static-host "no dist/index.html (trunk build failed)"
fi

echo
echo "=== summary (artifacts in test-out/)"
printf '%s\n' "${summary[@]}"
echo "$passed passed, $failed failed, $skipped_checks checks skipped"
[ "$failed" -eq 0 ]
