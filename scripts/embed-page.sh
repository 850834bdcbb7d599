#!/usr/bin/env bash
# The embed view's own page: the same bundle as index.html under another name, so that headers
# (which match paths, not query strings) can forbid framing the full page and allow the embed
# (scripts/serve.py, public/_headers). Trunk runs this after each build (Trunk.toml [[hooks]]).
#   scripts/embed-page.sh [OUT]
set -euo pipefail
OUT="${1:-${TRUNK_STAGING_DIR:-dist}}"
cp "$OUT/index.html" "$OUT/embed.html"
