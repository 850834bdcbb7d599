#!/usr/bin/env bash
# An interleaved A/B of the quick benchmark (BENCH_TIER=quick): commit REF against the working
# tree, in one sitting, ROUNDS rounds of each in turn (default 3), the native CLI and the page.
# REF's CLI and page are built in a worktree under the cache, with a target dir of their own, and
# reused on reruns. Writes bench-out/ab/AB.md: per configuration, the median of each side's
# per-round medians and their ratio (this tree / REF); the raw output of every round stays in
# bench-out/ab/<side>-<round>/.
#   scripts/bench-ab.sh REF [ROUNDS]
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
REF="${1:?usage: scripts/bench-ab.sh REF [ROUNDS]}"; ROUNDS="${2:-3}"
SHA="$(git rev-parse --short "$REF")" || exit 2
TREE="$SALIENT_CACHE/ab/$SHA"
OUT="$ROOT/bench-out/ab"
say() { printf '[bench-ab] %s\n' "$*"; }

# REF's side: its own sources, scripts and target dir, this tree's tools and model.
if [ ! -d "$TREE" ]; then git worktree add --detach "$TREE" "$SHA" || exit 1; fi
ln -sfn "$ROOT/node_modules" "$TREE/node_modules"
mkdir -p "$TREE/models"; ln -sfn "$MODEL_PATH" "$TREE/models/$MODEL_FILE"
build_side() {  # build_side DIR: the release CLI and page of the tree at DIR
  (cd "$1" && export CARGO_TARGET_DIR="${2:-$CARGO_TARGET_DIR}" && . scripts/env.sh &&
    cargo build --release --locked --bin salient && trunk build --release)
}
say "building $SHA in $TREE"
build_side "$TREE" "$SALIENT_CACHE/ab/target" >"$SALIENT_CACHE/ab/build-$SHA.log" 2>&1 \
  || { echo "building $SHA failed: $SALIENT_CACHE/ab/build-$SHA.log"; exit 1; }
say "building this tree"
build_side "$ROOT" >"$SALIENT_CACHE/ab/build-this.log" 2>&1 \
  || { echo "building this tree failed: $SALIENT_CACHE/ab/build-this.log"; exit 1; }

rm -rf "$OUT"; mkdir -p "$OUT"
for round in $(seq "$ROUNDS"); do
  for side in "$SHA" this; do
    if [ "$side" = this ]; then bin="$CARGO_TARGET_DIR/release/salient"; dist="$ROOT/dist"
    else bin="$SALIENT_CACHE/ab/target/release/salient"; dist="$TREE/dist"; fi
    say "round $round: $side"
    BENCH_TIER=quick SKIP_BUILD=1 SALIENT_BIN="$bin" BENCH_DIST="$dist" BENCH_OUT="$OUT/$side-$round" \
      BENCH_NOTE="A/B round $round, side $side" scripts/bench.sh >"$OUT/$side-$round.log" 2>&1 \
      || say "round $round, $side: the benchmark reported failures ($OUT/$side-$round.log)"
  done
done

python3 - "$OUT" "$SHA" "$ROUNDS" <<'PY'
import json, os, statistics, sys
out, ref, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rows(side, name):
    found = {}
    for r in range(1, rounds + 1):
        path = os.path.join(out, f"{side}-{r}", name)
        if not os.path.exists(path):
            continue
        for line in open(path):
            if not line.strip().startswith("{"):
                continue
            row = json.loads(line)
            if row.get("kind") not in ("run", "page-run") or row.get("status", "ok") != "ok" or row.get("total_ms") is None:
                continue
            key = (row["method"], row.get("tokens_requested", row.get("tokens")))
            found.setdefault(key, []).append(row["total_ms"])
    return found
md = [f"# Quick benchmark A/B: this tree against {ref}", "",
      f"{rounds} interleaved rounds ({ref}, then this tree, each round); per configuration the median of "
      "each side's per-round medians of the total time, and the ratio this / "
      f"{ref} (below 1: this tree is faster).", ""]
worst = 0.0
for part, name in [("Native CLI (all threads)", "native.jsonl"), ("Page (Chromium)", "page.jsonl")]:
    a, b = rows(ref, name), rows("this", name)
    md += [f"## {part}", "", f"| Tokens | Method | {ref} | this tree | ratio | rounds |", "|---|---|---|---|---|---|"]
    for key in sorted(set(a) & set(b), key=lambda k: (k[1], k[0])):
        ma, mb = statistics.median(a[key]), statistics.median(b[key])
        worst = max(worst, abs(mb / ma - 1))
        md.append(f"| {key[1]} | {key[0]} | {ma:,.0f} ms | {mb:,.0f} ms | {mb / ma:.3f} | {min(len(a[key]), len(b[key]))} |")
    md.append("")
md.append(f"Largest difference of the medians: {100 * worst:.1f} %.")
open(os.path.join(out, "AB.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY
