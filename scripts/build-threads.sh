#!/usr/bin/env bash
# The worker's multi-threaded builds: the same salient-web binary, compiled by a pinned nightly
# with wasm atomics (std rebuilt for them) and bound by wasm-bindgen, twice: OUT/threads/ with
# 128-bit SIMD, and OUT/threads-relaxed/ with relaxed SIMD too (its fused multiply-add makes the
# matrix kernel, engine/panel_matmul.rs, about 1.2–1.6× faster). OUT defaults to Trunk's staging
# dir, else dist/. public/worker.js loads the relaxed one where the browser validates relaxed SIMD
# and the other elsewhere, on cross-origin isolated pages. Trunk runs this after every build
# (Trunk.toml [[hooks]]), so each dist/ has all three builds.
#   scripts/build-threads.sh [OUT]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
OUT="${1:-${TRUNK_STAGING_DIR:-$ROOT/dist}}"
profile=release; flag=--release
[ "${TRUNK_PROFILE:-release}" = debug ] && { profile=debug; flag=; }

# atomics + bulk-memory for std and the code; the linker must also be told to make the memory
# shared and imported (one memory, one instance per thread) and to export what wasm-bindgen needs
# to give each thread its thread-locals (this nightly no longer does so by itself). 4 GiB is
# wasm32's whole address space, as in the single-threaded build.
link="--shared-memory --import-memory --max-memory=4294967296 --export=__wasm_init_tls --export=__tls_size --export=__tls_align --export=__tls_base"
build() {  # build NAME FEATURES: OUT/NAME/salient-web.js and its wasm
  local name="$1" features="$2" target_dir="$CARGO_TARGET_DIR/$1"
  RUSTFLAGS="-C target-feature=+atomics,+bulk-memory,+mutable-globals,$features --cfg getrandom_backend=\"wasm_js\" $(printf -- '-C link-arg=%s ' $link)" \
    cargo "+$NIGHTLY_TOOLCHAIN" build --locked $flag --target wasm32-unknown-unknown --bin salient-web \
    -Z build-std=panic_abort,std --target-dir "$target_dir"
  rm -rf "${OUT:?}/$name"
  wasm-bindgen --target web --no-typescript --out-dir "$OUT/$name" "$target_dir/wasm32-unknown-unknown/$profile/salient-web.wasm"
  echo "[build-threads] $OUT/$name: $(du -h "$OUT/$name/salient-web_bg.wasm" | cut -f1) wasm"
}
build threads +simd128
build threads-relaxed +simd128,+relaxed-simd
