#!/usr/bin/env bash
# The worker's multi-threaded build: the same salient-web binary, compiled by a pinned nightly
# with wasm atomics (std rebuilt for them) and bound by wasm-bindgen into OUT/ (default: Trunk's
# staging dir, else dist/, plus threads/). public/worker.js loads it on cross-origin isolated
# pages. Trunk runs this after every build (Trunk.toml [[hooks]]), so each dist/ has both builds.
#   scripts/build-threads.sh [OUT]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
OUT="${1:-${TRUNK_STAGING_DIR:-$ROOT/dist}/threads}"
TARGET_DIR="$CARGO_TARGET_DIR/threads"
profile=release; flag=--release
[ "${TRUNK_PROFILE:-release}" = debug ] && { profile=debug; flag=; }

# atomics + bulk-memory for std and the code; the linker must also be told to make the memory
# shared and imported (one memory, one instance per thread) and to export what wasm-bindgen needs
# to give each thread its thread-locals (this nightly no longer does so by itself). 4 GiB is
# wasm32's whole address space, as in the single-threaded build.
link="--shared-memory --import-memory --max-memory=4294967296 --export=__wasm_init_tls --export=__tls_size --export=__tls_align --export=__tls_base"
export RUSTFLAGS="-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128 --cfg getrandom_backend=\"wasm_js\" $(printf -- '-C link-arg=%s ' $link)"
cargo "+$NIGHTLY_TOOLCHAIN" build --locked $flag --target wasm32-unknown-unknown --bin salient-web \
  -Z build-std=panic_abort,std --target-dir "$TARGET_DIR"
rm -rf "$OUT"
wasm-bindgen --target web --no-typescript --out-dir "$OUT" "$TARGET_DIR/wasm32-unknown-unknown/$profile/salient-web.wasm"
echo "[build-threads] $OUT: $(du -h "$OUT/salient-web_bg.wasm" | cut -f1) wasm"
