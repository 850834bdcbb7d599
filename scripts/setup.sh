#!/usr/bin/env bash
# Idempotent toolchain install for Salient (Debian 12, root). Installs what is missing, skips
# what is present, prints how long each step took. Sources: Debian apt, crates.io, npm only.
#   apt:   chromium chromium-driver nodejs npm curl python3 python3-pip unzip (only if missing), and
#          mesa-vulkan-drivers libvulkan1 (a software Vulkan device, lavapipe, for the GPU tests)
#   rustup target wasm32-unknown-unknown; a pinned nightly with rust-src (the threaded worker build)
#   cargo install trunk, wasm-bindgen-cli (= Cargo.lock)
#   npm ci: binaryen 132 (wasm-opt; Debian's binaryen 108 breaks wasm-bindgen output), playwright-core
#   cargo fetch --locked
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

T0=$SECONDS
step() {  # step NAME CMD...: run and time; keeps the exit status
  local name="$1"; shift
  local s=$SECONDS rc=0
  echo "[setup] $name: $*"
  "$@" || rc=$?
  printf '[setup] %-18s %4ss%s\n' "$name" "$(( SECONDS - s ))" "$([ $rc -eq 0 ] || echo "  FAILED rc=$rc")"
  return $rc
}
skip() { printf '[setup] %-18s %4s  (present: %s)\n' "$1" "-" "$2"; }

# ---- 1. Debian packages -----------------------------------------------------------------
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_install() {
  local i
  $SUDO apt-get update -q
  # The image's docker-clean hook deletes downloaded .debs after each dpkg run; when apt splits
  # an install into several dpkg runs the later ones fail. Re-running downloads what is missing.
  for i in 1 2 3; do
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" && return 0
    echo "[setup] apt-get install failed (attempt $i/3), retrying"; sleep 2
  done
  return 1
}
pkgs=()
command -v chromium     >/dev/null || pkgs+=(chromium)
command -v chromedriver >/dev/null || pkgs+=(chromium-driver)
command -v node         >/dev/null || pkgs+=(nodejs)
command -v npm          >/dev/null || pkgs+=(npm)
command -v curl         >/dev/null || pkgs+=(curl)
command -v unzip        >/dev/null || pkgs+=(unzip)
command -v python3      >/dev/null || pkgs+=(python3)
python3 -m pip --version >/dev/null 2>&1 || pkgs+=(python3-pip)
# The GPU backend's native tests run on Mesa's software Vulkan device (lavapipe) where no GPU is.
dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 || pkgs+=(mesa-vulkan-drivers)
dpkg -s libvulkan1 >/dev/null 2>&1 || pkgs+=(libvulkan1)
if [ ${#pkgs[@]} -gt 0 ]; then
  step apt apt_install "${pkgs[@]}"
else
  skip apt "chromium chromedriver node npm curl unzip python3 pip mesa-vulkan-drivers libvulkan1"
fi
for c in chromium chromedriver node npm curl unzip python3; do
  command -v "$c" >/dev/null || { echo "[setup] ERROR: $c still missing after apt"; exit 1; }
done

# Node >= 20 (playwright-core 1.65 needs it; Debian 12's nodejs is 18): if the system node is older,
# unpack the official binary from the npm registry package node-linux-<arch> into the cache
# (env.sh puts it first on PATH). npm itself keeps running from the system.
node_major() { node -p 'process.versions.node.split(".")[0]'; }
install_node() {
  local arch dir="$SALIENT_CACHE/node-$NODE_VERSION" tmp
  case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) echo "unsupported arch $(uname -m)"; return 1 ;; esac
  tmp="$(mktemp -d)"
  ( cd "$tmp" && npm pack --silent "node-linux-$arch@$NODE_VERSION" >/dev/null && tar xzf node-linux-*.tgz ) || { rm -rf "$tmp"; return 1; }
  rm -rf "$dir"; mkdir -p "$(dirname "$dir")"; mv "$tmp/package" "$dir"; rm -rf "$tmp"
  "$dir/bin/node" --version
}
if [ "$(node_major)" -ge 20 ]; then
  skip node "node $(node --version)"
else
  step node install_node
  export PATH="$SALIENT_CACHE/node-$NODE_VERSION/bin:$PATH"
  [ "$(node_major)" -ge 20 ] || { echo "[setup] ERROR: node >= 20 needed, have $(node --version)"; exit 1; }
fi

# ---- 2. Rust ------------------------------------------------------------------------------
command -v cargo >/dev/null && command -v rustup >/dev/null || {
  echo "[setup] ERROR: cargo/rustup not found (install Rust with rustup first)"; exit 1; }
if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  skip wasm32-target "wasm32-unknown-unknown"
else
  step wasm32-target rustup target add wasm32-unknown-unknown
fi

# The style checks of the test command: rustfmt and clippy
if rustup component list --installed | grep -q '^rustfmt' && rustup component list --installed | grep -q '^clippy'; then
  skip rust-components "rustfmt, clippy"
else
  step rust-components rustup component add rustfmt clippy
fi

# The multi-threaded worker build (scripts/build-threads.sh): a pinned nightly with std's source
if rustup run "$NIGHTLY_TOOLCHAIN" rustc --version >/dev/null 2>&1 \
    && rustup component list --toolchain "$NIGHTLY_TOOLCHAIN" --installed | grep -q '^rust-src' \
    && rustup target list --toolchain "$NIGHTLY_TOOLCHAIN" --installed | grep -qx wasm32-unknown-unknown; then
  skip nightly "$NIGHTLY_TOOLCHAIN with rust-src, wasm32"
else
  step nightly rustup toolchain install "$NIGHTLY_TOOLCHAIN" --profile minimal --component rust-src \
    --target wasm32-unknown-unknown
fi

# trunk: check the binary cargo installs to, not whatever else is on PATH
if "$HOME/.cargo/bin/trunk" --version 2>/dev/null | grep -qx "trunk $TRUNK_VERSION"; then
  skip trunk "trunk $TRUNK_VERSION"
else
  step trunk cargo install trunk --version "$TRUNK_VERSION" --locked
fi

# wasm-bindgen-cli must equal the wasm-bindgen version in Cargo.lock exactly (trunk offline=true)
WB="$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
[ -n "$WB" ] || { echo "[setup] ERROR: no wasm-bindgen package in Cargo.lock"; exit 1; }
if "$HOME/.cargo/bin/wasm-bindgen" --version 2>/dev/null | grep -qx "wasm-bindgen $WB"; then
  skip wasm-bindgen-cli "wasm-bindgen $WB"
else
  # --locked can fail when the CLI's own lockfile pins a crate version the registry no longer
  # serves; fall back to a fresh resolution of the same CLI version.
  step wasm-bindgen-cli cargo install wasm-bindgen-cli --version "$WB" --locked \
    || step wasm-bindgen-cli cargo install wasm-bindgen-cli --version "$WB" --force
fi
"$HOME/.cargo/bin/wasm-bindgen" --version | grep -qx "wasm-bindgen $WB"

# ---- 3. npm tools -------------------------------------------------------------------------
npm_ok() {  # installed tree matches the lockfile's pinned versions
  [ -x node_modules/.bin/wasm-opt ] && [ -f node_modules/.package-lock.json ] || return 1
  node -e '
    const lock = require("./package-lock.json").packages, inst = require("./node_modules/.package-lock.json").packages;
    for (const [k, v] of Object.entries(lock)) if (k && (!inst[k] || inst[k].version !== v.version)) process.exit(1);'
}
if npm_ok; then
  skip npm "binaryen $(node -p 'require("./node_modules/binaryen/package.json").version'), playwright-core $(node -p 'require("./node_modules/playwright-core/package.json").version')"
else
  step npm npm ci --no-audit --no-fund
fi
node_modules/.bin/wasm-opt --version | grep -q 'version 132' \
  || { echo "[setup] ERROR: node_modules/.bin/wasm-opt is not binaryen 132"; exit 1; }

# ---- 4. crates ----------------------------------------------------------------------------
step cargo-fetch cargo fetch --locked

echo "[setup] OK in $(( SECONDS - T0 ))s: $(trunk --version), $(wasm-bindgen --version)," \
     "$(wasm-opt --version), $(chromium --version 2>/dev/null), node $(node --version)"
