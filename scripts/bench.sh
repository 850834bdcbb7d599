#!/usr/bin/env bash
# Benchmarks: the native CLI (`salient bench`) and the page in headless Chromium, 64 tokens, 5 runs;
# the size of the shipped .wasm. Prints a table and rewrites BENCHMARKS.md. Raw output: bench-out/.
# Expects the tools and the model (`make bench` installs/fetches them).
#   BENCH_TOKENS=64 BENCH_RUNS=5   SKIP_BUILD=1 (benchmark the existing dist/)
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
TOKENS="${BENCH_TOKENS:-64}"; RUNS="${BENCH_RUNS:-5}"
OUT="$ROOT/bench-out"; rm -rf "$OUT"; mkdir -p "$OUT"
status=0
fail() { echo "[bench] FAILED: $*"; echo "$*" >>"$OUT/failures.txt"; status=1; }
last_json() { grep -E '^\s*\{' "$1" | tail -1; }   # the last JSON line of a file

[ -f "$MODEL_PATH" ] || { echo "missing $MODEL_PATH: run scripts/fetch-model.sh (or make bench)"; exit 1; }

# ---- native --------------------------------------------------------------------------------
echo "[bench] native: cargo build --release --bin salient"
if cargo build --release --locked --bin salient 2>&1 | tee "$OUT/cargo-build.log"; then
  echo "[bench] native: salient bench --tokens $TOKENS --runs $RUNS"
  native() { "$CARGO_TARGET_DIR/release/salient" bench --model "$MODEL_PATH" --tokens "$TOKENS" --runs "$RUNS" "$@" \
      >"$OUT/native.out" 2>"$OUT/native.err"; }
  native || fail "salient bench (bench-out/native.err)"
  last_json "$OUT/native.out" >"$OUT/native.json" || fail "salient bench printed no JSON"
  cat "$OUT/native.json"
else
  fail "cargo build --release --bin salient"
fi

# ---- page ----------------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "[bench] page: trunk build --release"
  trunk build --release 2>&1 | tee "$OUT/trunk-build.log" >/dev/null || fail "trunk build --release (bench-out/trunk-build.log)"
fi
SERVER_PID=""
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null' EXIT INT TERM
if [ -f dist/index.html ]; then
  mkdir -p dist/models
  [ -e "dist/models/$MODEL_FILE" ] || ln -s "$MODEL_PATH" "dist/models/$MODEL_FILE"
  python3 scripts/serve.py --dir dist 0 >"$OUT/serve.out" 2>"$OUT/serve.log" &
  SERVER_PID=$!
  URL=""
  for _ in $(seq 100); do
    URL="$(sed -n 's/^serving \(http[^ ]*\)$/\1/p' "$OUT/serve.out" 2>/dev/null | head -1)"
    [ -n "$URL" ] && break; sleep 0.1
  done
  if [ -n "$URL" ]; then
    echo "[bench] page: node tests/e2e/bench-page.mjs $URL $TOKENS $RUNS"
    node tests/e2e/bench-page.mjs "$URL" "$TOKENS" "$RUNS" >"$OUT/page.out" 2> >(tee "$OUT/page.err" >&2) \
      || fail "bench-page.mjs (bench-out/page.err)"
    last_json "$OUT/page.out" >"$OUT/page.json" || fail "bench-page.mjs printed no JSON"
  else
    fail "serve.py did not start"
  fi
  kill "$SERVER_PID" 2>/dev/null; SERVER_PID=""
  # wasm size, raw and gzip -9 (what a compressing server would send)
  : >"$OUT/wasm.tsv"
  for w in dist/*.wasm; do
    [ -f "$w" ] && printf '%s\t%s\t%s\n' "$(basename "$w")" "$(stat -c %s "$w")" "$(gzip -9 -c "$w" | wc -c)" >>"$OUT/wasm.tsv"
  done
else
  fail "no dist/index.html"
fi

# ---- report --------------------------------------------------------------------------------
export BENCH_TOKENS="$TOKENS" BENCH_RUNS="$RUNS" BENCH_OUT="$OUT"
export BENCH_CPU="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
export BENCH_NPROC="$(nproc)" BENCH_MEM="$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
export BENCH_COMMIT="$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock index.html 2>/dev/null || echo '+changes')"
export BENCH_RUSTC="$(rustc --version 2>/dev/null)" BENCH_CHROMIUM="$(chromium --version 2>/dev/null)"
python3 - <<'PY' || status=1
import json, os, datetime
out = os.environ["BENCH_OUT"]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.loads(f.read().strip() or "null")
    except (OSError, ValueError):
        return None
native, page = load("native.json") or {}, load("page.json") or {}
wasm = []
try:
    wasm = [l.rstrip("\n").split("\t") for l in open(os.path.join(out, "wasm.tsv")) if l.strip()]
except OSError:
    pass
GiB = 1 << 30
def ms(v): return "n/a" if v is None else f"{v:,.0f} ms"
def mb(v): return "n/a" if v is None else f"{v / (1 << 20):,.1f} MiB"
tokens, runs = os.environ["BENCH_TOKENS"], os.environ["BENCH_RUNS"]
rows = [
    ("Native CLI: model load", ms(native.get("load_ms"))),
    ("Native CLI: forward pass", ms(native.get("forward_ms"))),
    ("Native CLI: saliency (backward)", ms(native.get("attribute_ms", native.get("saliency_ms")))),
    ("Native CLI: run total", ms(native.get("total_ms"))),
    ("Native CLI: peak RSS", mb(native.get("peak_rss_bytes"))),
    ("Page: model load (fetch + parse)", ms(page.get("load_ms"))),
    ("Page: forward pass", ms(page.get("forward_ms"))),
    ("Page: saliency (attribute)", ms(page.get("attribute_ms"))),
    ("Page: run total", ms(page.get("total_ms"))),
    ("Page: worker wasm memory (max)", mb(page.get("wasm_memory_max_bytes"))),
    ("Page: whole browser PSS (peak)", mb(page.get("browser_pss_peak_bytes"))),
] + [(f"Wasm `{n}`: raw / gzip -9", f"{int(r) / 1e6:.2f} MB / {int(g) / 1e6:.2f} MB") for n, r, g in wasm]
def verdict(value, limit):
    if value is None: return "not measured"
    return "met" if value < limit else "NOT met"
page_tokens = page.get("tokens")
targets = [
    (f"Saliency, {tokens} tokens, in Chromium < 2 s (page run total)",
     ms(page.get("total_ms")) + ("" if page_tokens in (None, int(tokens)) else f" ({page_tokens} tokens)"),
     verdict(page.get("total_ms"), 2000)),
    ("Page memory < 1 GiB: worker wasm memory (max)", mb(page.get("wasm_memory_max_bytes")),
     verdict(page.get("wasm_memory_max_bytes"), GiB)),
    ("Page memory < 1 GiB: whole headless browser, PSS (peak)", mb(page.get("browser_pss_peak_bytes")),
     verdict(page.get("browser_pss_peak_bytes"), GiB)),
]
today = datetime.date.today().isoformat()
md = [
    "# Benchmarks", "",
    "Written by `scripts/bench.sh` (`make bench`); do not edit by hand.", "",
    f"- Date: {today}, commit {os.environ['BENCH_COMMIT']}",
    f"- Machine: {os.environ['BENCH_CPU']}, {os.environ['BENCH_NPROC']} cores, {os.environ['BENCH_MEM']} RAM",
    f"- {os.environ['BENCH_RUSTC']}; {os.environ['BENCH_CHROMIUM']} (headless, playwright-core)",
    f"- Model: SmolLM2-135M-Instruct Q4_1 GGUF; method: saliency; text of {tokens} tokens"
    + (f" (page used {page_tokens})" if page_tokens not in (None, int(tokens)) else "")
    + (f" (CLI used {native['tokens']})" if native.get("tokens") not in (None, int(tokens)) else "")
    + (f"; CLI threads: {native['threads']}" if native.get("threads") else "")
    + f"; medians of {runs} runs", "",
    "| Measure | Value |", "|---|---|",
] + [f"| {a} | {b} |" for a, b in rows] + [
    "", "## Targets", "", "| Target | Measured | Status |", "|---|---|---|",
] + [f"| {a} | {b} | {c} |" for a, b, c in targets] + [""]
failures = os.path.join(out, "failures.txt")
if os.path.exists(failures):
    md += ["## Incomplete run", ""] + [f"- {l.strip()}" for l in open(failures) if l.strip()] + [""]
with open("BENCHMARKS.md", "w") as f:
    f.write("\n".join(md))
w = max(len(a) for a, _ in rows + [(t[0], 0) for t in targets])
print()
for a, b in rows: print(f"{a:<{w}}  {b}")
print()
for a, b, c in targets: print(f"{a:<{w}}  {b:<12}  {c}")
print("\nwrote BENCHMARKS.md")
PY
exit $status
