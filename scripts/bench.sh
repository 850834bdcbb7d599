#!/usr/bin/env bash
# Benchmarks: the native CLI with all threads and with 1 thread, headless Chromium, the machine's
# f32 matmul peak and integrated gradients' accuracy against steps. Prints a table and rewrites
# BENCHMARKS.md; raw JSON lines and logs go to bench-out/. Two tiers (BENCH_TIER):
#   full (default, `make bench`, about 35 minutes on 2 cores): every table of BENCHMARKS.md;
#   quick (`make bench-quick`, under 10 minutes): 16 and 64 tokens, forward, saliency and
#     integrated gradients, all threads, no convergence study or memory probe; its report goes to
#     bench-out/QUICK.md (BENCHMARKS.md is the full tier's alone); scripts/bench-ab.sh runs it.
# Expects the tools and the model (`make bench` installs/fetches them). Nothing here fails because a figure is slow: a configuration
# that times out, runs out of memory or crashes is reported as such and the rest goes on.
#
# Every native configuration (threads × tokens × method) runs in its own process, so its peak RSS
# (VmHWM) is its own. Sizes run smallest first. From the throughput measured so far (GFLOP/s at
# the largest size measured, times the FLOP estimate of the next configuration), a configuration
# whose one run is estimated longer than the cap is skipped and reported as "skipped (estimated
# N min per run)"; expensive ones get fewer runs (at least one); once a part's time budget is
# spent the rest of that part is skipped the same way. The configurations the goals and the
# PyTorch anchor need ("must") are never skipped, only limited by the hard timeout.
#
# Settings (environment):
#   BENCH_TOKENS="16 64 256 512"      BENCH_METHODS="forward saliency grad_x_input integrated_gradients occlusion"
#   BENCH_RUNS="16:5 64:5 256:3 512:1"  native runs per size;  BENCH_PAGE_RUNS="16:5 64:7 256:2 512:1"
#   BENCH_STEPS=32                    integrated gradients' steps
#   BENCH_THREADS="all 1"             native thread settings: all = RAYON_NUM_THREADS unset, 1 (or N) = set
#   BENCH_CAP_S=120 BENCH_PAGE_CAP_S=180   skip a configuration whose one run is estimated longer
#   BENCH_CONFIG_BUDGET_S=40 BENCH_PAGE_CONFIG_BUDGET_S=60   fewer runs when runs × estimate exceed this
#   BENCH_NATIVE_BUDGET_S=540 BENCH_PAGE_BUDGET_S=660        time budget of each part's configurations
#   BENCH_MUST="64:forward 16:saliency 64:saliency 256:saliency 64:integrated_gradients 64:occlusion"
#                                     native, first thread setting (the anchor's rows)
#   BENCH_PAGE_MUST="64:saliency 64:integrated_gradients 512:saliency"   (the goals' rows)
#   BENCH_PAGE_MEMORY="integrated_gradients attention rollout occlusion"   methods whose page memory
#                                     is also measured at the largest size with BENCH_PAGE_MEMORY_STEPS=4
#                                     steps (a batch at that size is one row whatever the steps: the peak
#                                     of the full run at a fraction of its time; occlusion, which the
#                                     main part skips there, runs whole); "" skips the probe
#   BENCH_TIMEOUT_S=1800              the hard limit of one configuration (native process or page run)
#   BENCH_MATMUL=2048                 the peak-FLOP/s matmul size (N×N×N); BENCH_MATMUL_RUNS=5
#   BENCH_CONVERGENCE="4,8,16,32,64,128"   IG steps of the accuracy study ("" skips it);
#                                     BENCH_CONVERGENCE_TIMEOUT_S=420
#   BENCH_GPU_TOKENS="16 64 256" BENCH_GPU_METHODS="forward saliency integrated_gradients"
#   BENCH_GPU_RUNS=3 BENCH_GPU_MATMUL=1024 BENCH_GPU_TIMEOUT_S=900   the native GPU part (wgpu on
#                                     whatever adapter there is: here Mesa's lavapipe, on the CPU)
#   BENCH_EVALUATE_SAMPLE=""          items per family of the ground-truth report card ("" = the whole
#                                     suite; the quick tier: 5); BENCH_EVALUATE_METHODS="" (all; quick:
#                                     saliency,grad_x_input); BENCH_EVALUATE_TIMEOUT_S=3600;
#                                     BENCH_PAGE_EVALUATE_SAMPLE="" (the page's report card, each method
#                                     alone: "" = the page's default sample per method; quick: 2)
#   BENCH_NATIVE=1 BENCH_GPU=1 BENCH_EVALUATE=1 BENCH_PAGE=1   0 skips that part
#   SKIP_BUILD=1                      benchmark the existing dist/ (no trunk build)
#   SALIENT_BIN=path                  use this salient binary (no cargo build)
#   BENCH_NOTE="..."                  a line for BENCHMARKS.md's header (how this run was made)
#   BENCH_REPORT_ONLY=1               only rewrite BENCHMARKS.md from the last run's bench-out/
#   BENCH_OUT=dir BENCH_DIST=dir      where the raw output goes (bench-out/) and which built page
#                                     is measured (dist/)
#   BENCH_CHROMIUM_ARGS="..."         extra Chromium flags (tests: --js-flags=--wasm-max-mem-pages=N)
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
T_START=$(date +%s)
TIER="${BENCH_TIER:-full}"
case "$TIER" in
  full) REPORT="$ROOT/BENCHMARKS.md" ;;
  quick)
    : "${BENCH_TOKENS:=16 64}" "${BENCH_METHODS:=forward saliency integrated_gradients}"
    : "${BENCH_RUNS:=16:5 64:5}" "${BENCH_PAGE_RUNS:=16:3 64:5}" "${BENCH_THREADS:=all}"
    : "${BENCH_CONVERGENCE:=}" "${BENCH_PAGE_MEMORY:=}" "${BENCH_MATMUL:=1024}"
    : "${BENCH_MUST:=64:forward 16:saliency 64:saliency 64:integrated_gradients}"
    : "${BENCH_PAGE_MUST:=64:saliency 64:integrated_gradients}"
    : "${BENCH_NATIVE_BUDGET_S:=180}" "${BENCH_PAGE_BUDGET_S:=240}"
    REPORT="${BENCH_OUT:-$ROOT/bench-out}/QUICK.md" ;;
  *) echo "BENCH_TIER is full or quick, not $TIER"; exit 2 ;;
esac
# Whether every setting that shapes the tables is the default: BENCHMARKS.md marks any other run
# as partial.
DEFAULT_CONFIG=1
for v in BENCH_TOKENS BENCH_METHODS BENCH_RUNS BENCH_PAGE_RUNS BENCH_STEPS BENCH_THREADS BENCH_CAP_S BENCH_PAGE_CAP_S \
         BENCH_CONFIG_BUDGET_S BENCH_PAGE_CONFIG_BUDGET_S BENCH_NATIVE_BUDGET_S BENCH_PAGE_BUDGET_S BENCH_MUST \
         BENCH_PAGE_MUST BENCH_CONVERGENCE BENCH_NATIVE BENCH_PAGE BENCH_PAGE_MEMORY BENCH_PAGE_MEMORY_STEPS; do
  [ -n "${!v+x}" ] && DEFAULT_CONFIG=0
done
TOKENS="${BENCH_TOKENS:-16 64 256 512}"
METHODS="${BENCH_METHODS:-forward saliency grad_x_input integrated_gradients occlusion}"
RUNS="${BENCH_RUNS:-16:5 64:5 256:3 512:1}"
# 7 page runs at 64 tokens, where the page goals are: one run there spreads 650-1,050 ms on this
# machine (saliency), so a median of 3 moved by a tenth from one benchmark to the next.
PAGE_RUNS="${BENCH_PAGE_RUNS:-16:5 64:7 256:2 512:1}"
STEPS="${BENCH_STEPS:-32}"
THREADS="${BENCH_THREADS:-all 1}"
CAP_S="${BENCH_CAP_S:-120}"; PAGE_CAP_S="${BENCH_PAGE_CAP_S:-180}"
BUDGET_S="${BENCH_CONFIG_BUDGET_S:-40}"; PAGE_BUDGET_S="${BENCH_PAGE_CONFIG_BUDGET_S:-60}"
NATIVE_PART_S="${BENCH_NATIVE_BUDGET_S:-540}"; PAGE_PART_S="${BENCH_PAGE_BUDGET_S:-660}"
MUST="${BENCH_MUST-64:forward 16:saliency 64:saliency 256:saliency 64:integrated_gradients 64:occlusion}"
PAGE_MUST="${BENCH_PAGE_MUST-64:saliency 64:integrated_gradients 512:saliency}"
TIMEOUT_S="${BENCH_TIMEOUT_S:-1800}"
PAGE_MEMORY="${BENCH_PAGE_MEMORY-integrated_gradients attention rollout occlusion}"; PAGE_MEMORY_STEPS="${BENCH_PAGE_MEMORY_STEPS:-4}"
MATMUL="${BENCH_MATMUL:-2048}"; MATMUL_RUNS="${BENCH_MATMUL_RUNS:-5}"
CONVERGENCE="${BENCH_CONVERGENCE-4,8,16,32,64,128}"
OUT="${BENCH_OUT:-$ROOT/bench-out}"
DIST="${BENCH_DIST:-$ROOT/dist}"
if [ "${BENCH_REPORT_ONLY:-0}" = 1 ]; then
  # Rewrite BENCHMARKS.md from an earlier run's bench-out/ (its settings, not today's environment).
  [ -f "$OUT/settings.sh" ] || { echo "no $OUT/settings.sh: run the benchmark first"; exit 1; }
  . "$OUT/settings.sh"
else
  rm -rf "$OUT"; mkdir -p "$OUT"
  for v in TOKENS METHODS RUNS PAGE_RUNS STEPS THREADS CAP_S PAGE_CAP_S BUDGET_S PAGE_BUDGET_S NATIVE_PART_S PAGE_PART_S \
           MUST PAGE_MUST TIMEOUT_S MATMUL MATMUL_RUNS CONVERGENCE DEFAULT_CONFIG; do
    printf '%s=%q\n' "$v" "${!v}" >>"$OUT/settings.sh"
  done
  printf 'BENCH_NOTE=%q\nBENCH_CHROMIUM_ARGS=%q\n' "${BENCH_NOTE:-}" "${BENCH_CHROMIUM_ARGS:-}" >>"$OUT/settings.sh"
fi
status=0
fail() { echo "[bench] FAILED: $*"; echo "$*" >>"$OUT/failures.txt"; status=1; }
say() { printf '[bench %4ds] %s\n' "$(( $(date +%s) - T_START ))" "$*"; }
comma() { echo "$*" | tr ' ' ','; }
runs_for() { local n="$1" spec="$2" p; for p in $spec; do [ "${p%%:*}" = "$n" ] && { echo "${p#*:}"; return; }; done; echo 1; }
phase_time() { echo "$1 $(( $(date +%s) - $2 ))" >>"$OUT/phases.txt"; }
in_list() { local x; for x in $2; do [ "$x" = "$1" ] && return 0; done; return 1; }

[ -f "$MODEL_PATH" ] || [ "${BENCH_REPORT_ONLY:-0}" = 1 ] || { echo "missing $MODEL_PATH: run scripts/fetch-model.sh (or make bench)"; exit 1; }

# Runs "$@" with a time limit; on failure writes the reason to $OUT/last-reason. Exit status kept.
# `timeout` sends TERM, then KILL 10 s later; the kernel's OOM killer also shows up as KILL (137).
limited() {
  local limit="$1" err="$2" started; shift 2
  started=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" 2>"$err"; local rc=$?
  case $rc in
    0) : ;;
    124) echo "timeout after ${limit} s" >"$OUT/last-reason" ;;
    137) if [ $(( $(date +%s) - started )) -lt "$limit" ]; then
           echo "out of memory (killed by SIGKILL before the time limit: the kernel's OOM killer)" >"$OUT/last-reason"
         else
           echo "timeout after ${limit} s (killed)" >"$OUT/last-reason"
         fi ;;
    *) if grep -qiE 'memory allocation of [0-9]+ bytes failed|out of memory|cannot allocate' "$err"; then
         echo "out of memory ($(grep -iE 'memory allocation|out of memory|cannot allocate' "$err" | tail -1 | cut -c1-160))" >"$OUT/last-reason"
       else
         echo "exit $rc: $(grep -v '^\s*$' "$err" | tail -1 | cut -c1-200)" >"$OUT/last-reason"
       fi ;;
  esac
  return $rc
}

if [ "${BENCH_REPORT_ONLY:-0}" = 1 ]; then BENCH_NATIVE=0; BENCH_PAGE=0; fi

# ---- native --------------------------------------------------------------------------------
BIN="${SALIENT_BIN:-$CARGO_TARGET_DIR/release/salient}"
if [ "${BENCH_NATIVE:-1}" = 1 ] || [ "${BENCH_PAGE:-1}" = 1 ]; then
  if [ -z "${SALIENT_BIN:-}" ]; then
    say "native: cargo build --release --bin salient"
    t0=$(date +%s)
    cargo build --release --locked --bin salient >"$OUT/cargo-build.log" 2>&1 || fail "cargo build --release --bin salient (bench-out/cargo-build.log)"
    phase_time "cargo build --release" "$t0"
  fi
  # The texts of exact token counts (and each method's FLOP estimate on them): the same inputs
  # for the native and the page benchmark.
  if [ -x "$BIN" ]; then
    limited 300 "$OUT/texts.err" "$BIN" bench --model "$MODEL_PATH" --texts-only --tokens "$(comma $TOKENS)" \
      --load-runs 1 --steps "$STEPS" >"$OUT/texts.jsonl" || fail "salient bench --texts-only: $(cat "$OUT/last-reason")"
  else
    fail "no salient binary at $BIN"
  fi
fi

# Estimated seconds of one run of (label, tokens, method) from the throughput measured so far
# (GFLOP/s of the same thread setting at the largest size measured so far, up to this one): the
# method's own, else for forward+backward methods saliency's / grad_x_input's, for occlusion the
# forward pass's.
estimate() {
  python3 - "$OUT/native.jsonl" "$OUT/texts.jsonl" "$@" <<'PY'
import json, sys
native_path, texts_path, label, n, method = sys.argv[1:6]
n = int(n)
def lines(p):
    try:
        return [json.loads(l) for l in open(p) if l.strip().startswith("{")]
    except OSError:
        return []
flops = {t["tokens_requested"]: t.get("flops", {}) for t in lines(texts_path) if t.get("kind") == "text"}
f = flops.get(n, {}).get(method)
kind = "f" if method in ("forward", "occlusion") else "fb"
best = None
for r in lines(native_path):
    if r.get("kind") != "run" or r.get("status", "ok") != "ok" or r.get("tokens_requested", 0) > n:
        continue
    same = r["method"] == method and r.get("gflops_per_s")
    if same:
        rate = r["gflops_per_s"]
    elif r["method"] == "forward" and kind == "f":
        rate = r["forward_flops"] / (r["forward_ms"] * 1e6)
    elif r["method"] in ("saliency", "grad_x_input") and kind == "fb" and r.get("gflops_per_s"):
        rate = r["gflops_per_s"]
    else:
        continue
    # this thread setting first, then the largest size, then the method's own rate (measured at a
    # smaller size) over a related method's
    key = (r.get("threads", {}).get("label") == label, r["tokens_requested"], bool(same), rate)
    if best is None or key > best:
        best = key
if f and best:
    print(f"{f / (best[3] * 1e9):.1f}")
PY
}

# Appends a JSON line for a configuration that did not produce one.
record() {  # record FILE kind status reason key=value...
  python3 - "$@" <<'PY'
import json, sys
path, kind, status, reason, *kv = sys.argv[1:]
row = {"kind": kind, "status": status, "reason": reason}
for item in kv:
    k, v = item.split("=", 1)
    try:
        v = json.loads(v)
    except ValueError:
        pass
    row[k] = v
with open(path, "a") as f:
    f.write(json.dumps(row) + "\n")
PY
}

if [ "${BENCH_NATIVE:-1}" = 1 ] && [ -x "$BIN" ]; then
  : >"$OUT/native.jsonl"; : >"$OUT/matmul.jsonl"
  t0=$(date +%s)
  for label in $THREADS; do
    if [ "$label" = all ]; then envset=(env -u RAYON_NUM_THREADS); else envset=(env RAYON_NUM_THREADS="$label"); fi
    say "native peak: ${MATMUL}x${MATMUL}x${MATMUL} f32 matmul, threads $label"
    if limited 600 "$OUT/matmul-$label.err" "${envset[@]}" "$BIN" bench --matmul "$MATMUL" --runs "$MATMUL_RUNS" --threads-label "$label" >>"$OUT/matmul.jsonl"; then
      tail -1 "$OUT/matmul.jsonl"
    else
      fail "matmul, threads $label: $(cat "$OUT/last-reason")"
    fi
  done
  phase_time "native matmul peak" "$t0"
  t0=$(date +%s)
  first_label="${THREADS%% *}"
  for label in $THREADS; do
    if [ "$label" = all ]; then envset=(env -u RAYON_NUM_THREADS); else envset=(env RAYON_NUM_THREADS="$label"); fi
    for n in $TOKENS; do
      for m in $METHODS; do
        planned=$(runs_for "$n" "$RUNS")
        est=$(estimate "$label" "$n" "$m")
        steps_kv=(); [ "$m" = integrated_gradients ] && steps_kv=(steps="$STEPS")
        must=0; [ "$label" = "$first_label" ] && in_list "$n:$m" "$MUST" && must=1
        spent=$(( $(date +%s) - t0 ))
        reason=""
        if [ "$must" = 0 ] && [ -n "$est" ] && python3 -c "import sys; sys.exit(0 if $est > $CAP_S else 1)"; then
          reason="skipped (estimated $(python3 -c "print(f'{$est/60:.1f}')") min per run)"
        elif [ "$must" = 0 ] && [ "$spent" -ge "$NATIVE_PART_S" ]; then
          reason="skipped (the native part's budget of $(( NATIVE_PART_S / 60 )) min was spent${est:+; estimated $(python3 -c "print(f'{$est/60:.1f}')") min per run})"
        fi
        if [ -n "$reason" ]; then
          say "native threads=$label tokens=$n $m: $reason"
          record "$OUT/native.jsonl" run skipped "$reason" method="$m" tokens_requested="$n" estimate_s="${est:-null}" \
            threads="{\"label\": \"$label\"}" "${steps_kv[@]}"
          continue
        fi
        runs=$planned
        [ -n "$est" ] && runs=$(python3 -c "print(max(1, min($planned, int($BUDGET_S // max($est, 1e-3)))))")
        # generous: a run may be 4x slower than estimated, plus the model loads
        limit=$TIMEOUT_S
        [ -n "$est" ] && limit=$(python3 -c "print(int(min($TIMEOUT_S, max(120, 4 * $est * $runs + 60))))")
        load_runs=1; [ "$m" = forward ] && load_runs=$runs
        say "native threads=$label tokens=$n $m: $runs run(s)${est:+, estimated $est s each} (limit $limit s)"
        if limited "$limit" "$OUT/native-$label-$n-$m.err" "${envset[@]}" "$BIN" bench --model "$MODEL_PATH" \
             --tokens "$n" --methods "$m" --runs "$runs" --load-runs "$load_runs" --steps "$STEPS" \
             --threads-label "$label" >"$OUT/native-$label-$n-$m.out"; then
          grep -E '^\s*\{' "$OUT/native-$label-$n-$m.out" | tail -1 >>"$OUT/native.jsonl"
          python3 -c "import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print(f\"  total {r['total_ms']:.0f} ms (median of {r['runs']}), peak RSS {r['peak_rss_bytes']/2**20:.0f} MiB, {r['gflops_per_s'] or 0:.1f} GFLOP/s\")" "$OUT/native-$label-$n-$m.out"
        else
          reason="$(cat "$OUT/last-reason")"
          say "  FAILED: $reason"
          record "$OUT/native.jsonl" run failed "$reason" method="$m" tokens_requested="$n" \
            threads="{\"label\": \"$label\"}" "${steps_kv[@]}"
        fi
      done
    done
  done
  phase_time "native configurations" "$t0"
  if [ -n "$CONVERGENCE" ]; then
    t0=$(date +%s)
    say "native: integrated gradients' completeness error against steps ($CONVERGENCE), all threads"
    # one JSON line per prompt as it finishes: a timeout keeps the prompts done so far
    limited "${BENCH_CONVERGENCE_TIMEOUT_S:-420}" "$OUT/convergence.err" env -u RAYON_NUM_THREADS "$BIN" bench --model "$MODEL_PATH" \
      --convergence "$CONVERGENCE" --load-runs 1 --threads-label all >"$OUT/convergence.jsonl" \
      || fail "convergence study: $(cat "$OUT/last-reason")"
    phase_time "IG convergence study" "$t0"
  fi
  # Integrated gradients at its default budget (the engine's own default: no --steps), per length.
  TOKENS_IG_DEFAULT="${BENCH_IG_DEFAULT_TOKENS:-16 64 256}"
  : >"$OUT/ig-default.jsonl"
  if [ -n "$CONVERGENCE" ]; then
    limited "${BENCH_CONVERGENCE_TIMEOUT_S:-420}" "$OUT/ig-default.err" env -u RAYON_NUM_THREADS "$BIN" bench \
      --model "$MODEL_PATH" --tokens "$(comma $TOKENS_IG_DEFAULT)" --methods integrated_gradients --runs 1 --load-runs 1 \
      --threads-label all >"$OUT/ig-default.jsonl" || fail "IG at its default budget: $(cat "$OUT/last-reason")"
  fi
fi

# ---- GPU (native, wgpu) --------------------------------------------------------------------
GPU_TOKENS="${BENCH_GPU_TOKENS:-16 64 256}"; GPU_METHODS="${BENCH_GPU_METHODS:-forward saliency integrated_gradients}"
if [ "$TIER" = quick ]; then GPU_TOKENS="${BENCH_GPU_TOKENS:-16 64}"; fi
GPU_RUNS="${BENCH_GPU_RUNS:-3}"; GPU_MATMUL="${BENCH_GPU_MATMUL:-1024}"; GPU_TIMEOUT_S="${BENCH_GPU_TIMEOUT_S:-900}"
if [ "${BENCH_GPU:-1}" = 1 ] && [ -x "$BIN" ]; then
  : >"$OUT/gpu.jsonl"; : >"$OUT/gpu-matmul.jsonl"
  t0=$(date +%s)
  say "GPU peak: ${GPU_MATMUL}x${GPU_MATMUL}x${GPU_MATMUL} f32 matmul (tiled WGSL kernel)"
  if limited 600 "$OUT/gpu-matmul.err" "$BIN" bench --gpu-matmul "$GPU_MATMUL" --runs 3 >>"$OUT/gpu-matmul.jsonl"; then
    tail -1 "$OUT/gpu-matmul.jsonl"
    for n in $GPU_TOKENS; do
      for m in $GPU_METHODS; do
        say "GPU tokens=$n $m: $GPU_RUNS run(s) (limit $GPU_TIMEOUT_S s)"
        if limited "$GPU_TIMEOUT_S" "$OUT/gpu-$n-$m.err" "$BIN" bench --backend gpu --model "$MODEL_PATH" \
             --tokens "$n" --methods "$m" --runs "$GPU_RUNS" --load-runs 1 --steps "$STEPS" >"$OUT/gpu-$n-$m.out"; then
          grep -E '^\s*\{' "$OUT/gpu-$n-$m.out" | tail -1 >>"$OUT/gpu.jsonl"
        else
          say "  FAILED: $(cat "$OUT/last-reason")"
          record "$OUT/gpu.jsonl" run failed "$(cat "$OUT/last-reason")" method="$m" tokens_requested="$n"
        fi
      done
    done
  else
    fail "GPU matmul: $(cat "$OUT/last-reason")"
  fi
  phase_time "native GPU" "$t0"
fi

# ---- ground truth (native, `salient evaluate`) ----------------------------------------------
EVALUATE_SAMPLE="${BENCH_EVALUATE_SAMPLE-}"; EVALUATE_METHODS="${BENCH_EVALUATE_METHODS-}"
PAGE_EVALUATE_SAMPLE="${BENCH_PAGE_EVALUATE_SAMPLE-}"
if [ "$TIER" = quick ]; then
  EVALUATE_SAMPLE="${BENCH_EVALUATE_SAMPLE:-5}"; EVALUATE_METHODS="${BENCH_EVALUATE_METHODS:-saliency,grad_x_input}"
  PAGE_EVALUATE_SAMPLE="${BENCH_PAGE_EVALUATE_SAMPLE:-2}"
fi
if [ "${BENCH_EVALUATE:-1}" = 1 ] && [ -x "$BIN" ]; then
  : >"$OUT/evaluate.jsonl"
  t0=$(date +%s)
  say "ground truth: ${EVALUATE_METHODS:-every method} on ${EVALUATE_SAMPLE:-every} item(s) per family"
  if ! limited "${BENCH_EVALUATE_TIMEOUT_S:-3600}" "$OUT/evaluate.err" "$BIN" evaluate --model "$MODEL_PATH" --json \
       ${EVALUATE_SAMPLE:+--sample "$EVALUATE_SAMPLE"} ${EVALUATE_METHODS:+--methods "$EVALUATE_METHODS"} >>"$OUT/evaluate.jsonl"; then
    fail "ground truth: $(cat "$OUT/last-reason")"
  fi
  phase_time "ground truth" "$t0"
fi

# ---- page ----------------------------------------------------------------------------------
if [ "${BENCH_PAGE:-1}" = 1 ]; then
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    say "page: trunk build --release"
    t0=$(date +%s)
    trunk build --release >"$OUT/trunk-build.log" 2>&1 || fail "trunk build --release (bench-out/trunk-build.log)"
    phase_time "trunk build --release" "$t0"
  fi
  SERVER_PID=""
  trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null' EXIT INT TERM
  if [ -f "$DIST/index.html" ]; then
    serve_dist "$OUT" "$DIST"
    if [ -n "$URL" ]; then
      # The page's f32 peak: wasm's 128-bit multiply-adds on 1 and on every core's worker, in
      # both builds the page may run (with and without relaxed SIMD).
      t0=$(date +%s)
      : >"$OUT/page-peak.jsonl"
      peak_wasm=""
      for build in plain relaxed; do
        features="+simd128"; [ "$build" = relaxed ] && features="+simd128,+relaxed-simd"
        dir="$CARGO_TARGET_DIR/simd-peak-$build"
        if (cd tests/e2e/simd-peak && RUSTFLAGS="-C target-feature=$features" cargo build --release --locked \
              --target wasm32-unknown-unknown --target-dir "$dir") >>"$OUT/page-peak.err" 2>&1; then
          peak_wasm="$peak_wasm,$build=$dir/wasm32-unknown-unknown/release/simd_peak.wasm"
        else
          fail "simd-peak ($build) build (bench-out/page-peak.err)"
        fi
      done
      if [ -n "$peak_wasm" ]; then
        say "page f32 peak: node tests/e2e/page-peak.mjs"
        timeout --kill-after=10 300 node tests/e2e/page-peak.mjs --url "$URL" --wasm "${peak_wasm#,}" \
            --threads "$(printf '1\n%s\n' "$(nproc)" | sort -un | paste -sd,)" \
            >"$OUT/page-peak.jsonl" 2>>"$OUT/page-peak.err" || fail "page-peak.mjs (bench-out/page-peak.err)"
      fi
      phase_time "page f32 peak (Chromium)" "$t0"
      t0=$(date +%s)
      page_methods=$(echo $METHODS | tr ' ' '\n' | grep -vx forward | tr '\n' ',' | sed 's/,$//')
      say "page: node tests/e2e/bench-page.mjs $URL"
      # The page benchmark limits each run itself; this is the backstop for a hung browser.
      timeout --kill-after=20 "$(( PAGE_PART_S + 2 * TIMEOUT_S ))" node tests/e2e/bench-page.mjs --url "$URL" --texts "$OUT/texts.jsonl" \
          --tokens "$(comma $TOKENS)" --methods "$page_methods" --runs "$(comma $PAGE_RUNS)" --steps "$STEPS" \
          --cap-s "$PAGE_CAP_S" --config-budget-s "$PAGE_BUDGET_S" --part-budget-s "$PAGE_PART_S" --must "$(comma $PAGE_MUST)" \
          --timeout-s "$TIMEOUT_S" --serve-log "$OUT/serve.log" \
          >"$OUT/page.jsonl" 2> >(tee "$OUT/page.err" >&2) \
        || fail "bench-page.mjs (bench-out/page.err)"
      phase_time "page (Chromium)" "$t0"
      : >"$OUT/page-memory.jsonl"
      largest=$(echo $TOKENS | tr ' ' '\n' | sort -n | tail -1)
      if [ -n "$PAGE_MEMORY" ]; then
        t0=$(date +%s)
        say "page memory probe: $PAGE_MEMORY at $largest tokens, $PAGE_MEMORY_STEPS steps"
        probe_must=$(for m in $PAGE_MEMORY; do printf '%s:%s,' "$largest" "$m"; done | sed 's/,$//')
        timeout --kill-after=20 "$(( 2 * TIMEOUT_S ))" node tests/e2e/bench-page.mjs --url "$URL" --texts "$OUT/texts.jsonl" \
            --tokens "$largest" --methods "$(comma $PAGE_MEMORY)" --runs "$largest:1" --steps "$PAGE_MEMORY_STEPS" \
            --must "$probe_must" --timeout-s "$TIMEOUT_S" \
            >"$OUT/page-memory.jsonl" 2> >(tee "$OUT/page-memory.err" >&2) \
          || fail "bench-page.mjs memory probe (bench-out/page-memory.err)"
        phase_time "page memory probe (Chromium)" "$t0"
      fi
      : >"$OUT/page-evaluate.jsonl"
      if [ "${BENCH_EVALUATE:-1}" = 1 ]; then
        t0=$(date +%s)
        say "page report card: ${EVALUATE_METHODS:-every method}, ${PAGE_EVALUATE_SAMPLE:-default} item(s) per family"
        timeout --kill-after=20 "${BENCH_EVALUATE_TIMEOUT_S:-3600}" node tests/e2e/bench-report.mjs --url "$URL" \
            ${EVALUATE_METHODS:+--methods "$EVALUATE_METHODS"} ${PAGE_EVALUATE_SAMPLE:+--sample "$PAGE_EVALUATE_SAMPLE"} \
            >"$OUT/page-evaluate.jsonl" 2> >(tee "$OUT/page-evaluate.err" >&2) \
          || fail "bench-report.mjs (bench-out/page-evaluate.err)"
        phase_time "page report card (Chromium)" "$t0"
      fi
    else
      fail "serve.py did not start"
    fi
    kill "$SERVER_PID" 2>/dev/null; SERVER_PID=""
    # wasm size, raw and gzip -9 (what a compressing server would send)
    : >"$OUT/wasm.tsv"
    for w in "$DIST"/*.wasm; do
      [ -f "$w" ] && printf '%s\t%s\t%s\n' "$(basename "$w")" "$(stat -c %s "$w")" "$(gzip -9 -c "$w" | wc -c)" >>"$OUT/wasm.tsv"
    done
  else
    fail "no $DIST/index.html"
  fi
fi
[ "${BENCH_REPORT_ONLY:-0}" = 1 ] || phase_time "whole benchmark" "$T_START"

# ---- report --------------------------------------------------------------------------------
export BENCH_OUT="$OUT" BENCH_REPORT="$REPORT" BENCH_TIER="$TIER" BENCH_TOKENS_SET="$TOKENS" BENCH_METHODS_SET="$METHODS" BENCH_RUNS_SET="$RUNS"
export BENCH_PAGE_RUNS_SET="$PAGE_RUNS" BENCH_STEPS_SET="$STEPS" BENCH_THREADS_SET="$THREADS"
export BENCH_CAPS="skip above an estimated ${CAP_S} s (native) / ${PAGE_CAP_S} s (page) per run; at most ${BUDGET_S} s / ${PAGE_BUDGET_S} s of runs per configuration; parts ${NATIVE_PART_S} s / ${PAGE_PART_S} s; never skipped: native [${MUST}], page [${PAGE_MUST}]; hard limit ${TIMEOUT_S} s per configuration"
export BENCH_DEFAULT_CONFIG="$DEFAULT_CONFIG" BENCH_CONVERGENCE_SET="$CONVERGENCE" BENCH_MATMUL_SET="$MATMUL" BENCH_PAGE_MEMORY_STEPS_SET="$PAGE_MEMORY_STEPS"
export BENCH_CPU="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
export BENCH_NPROC="$(nproc)" BENCH_MEM="$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
export BENCH_LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"
export BENCH_COMMIT="$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock index.html 2>/dev/null || echo '+changes')"
export BENCH_RUSTC="$(rustc --version 2>/dev/null)" BENCH_CHROMIUM="$(chromium --version 2>/dev/null)"
export BENCH_NOTE="${BENCH_NOTE:-}" MODEL_FILE MODEL_BYTES
# the page benchmark's header line (Chromium flags beyond lib.mjs's) for the report
export BENCH_CHROMIUM_ARGS="${BENCH_CHROMIUM_ARGS:-}"
python3 - <<'PY' || status=1
# BENCHMARKS.md from bench-out/*.jsonl (the JSON lines of `salient bench` and bench-page.mjs).
import datetime, json, os, statistics

out = os.environ["BENCH_OUT"]
E = os.environ.get
def lines(name):
    try:
        return [json.loads(l) for l in open(os.path.join(out, name)) if l.strip().startswith("{")]
    except (OSError, ValueError):
        return []

texts = {t["tokens_requested"]: t for t in lines("texts.jsonl") if t.get("kind") == "text"}
native = [r for r in lines("native.jsonl") if r.get("kind") == "run"]
for r in native:
    r.setdefault("status", "ok")
matmul = {m["threads"]["label"]: m for m in lines("matmul.jsonl") if m.get("kind") == "matmul"}
gpu_runs = [r for r in lines("gpu.jsonl") if r.get("kind") == "run"]
gpu_peaks = [m for m in lines("gpu-matmul.jsonl") if m.get("kind") == "gpu-matmul"]
convergence = [c for c in lines("convergence.jsonl") if c.get("kind") == "convergence"]
evaluations = lines("evaluate.jsonl")
page_evaluations = [r for r in lines("page-evaluate.jsonl") if r.get("kind") == "page-evaluate"]
page = lines("page.jsonl")
visits = [v for v in page if v.get("kind") == "visit"]
page_runs = [r for r in page if r.get("kind") == "page-run"]
memory_probe = [r for r in lines("page-memory.jsonl") if r.get("kind") == "page-run"]
page_peaks = {(p["build"], p.get("threads")): p for p in lines("page-peak.jsonl") if p.get("kind") == "page-peak"}
try:
    wasm = [l.rstrip("\n").split("\t") for l in open(os.path.join(out, "wasm.tsv")) if l.strip()]
except OSError:
    wasm = []
try:
    phases = [l.rstrip("\n").rsplit(" ", 1) for l in open(os.path.join(out, "phases.txt")) if l.strip()]
except OSError:
    phases = []
try:
    failures = [l.strip() for l in open(os.path.join(out, "failures.txt")) if l.strip()]
except OSError:
    failures = []

GiB, MiB = 1 << 30, 1 << 20
tokens_set = [int(x) for x in E("BENCH_TOKENS_SET", "").split()]
methods_set = E("BENCH_METHODS_SET", "").split()
threads_set = E("BENCH_THREADS_SET", "").split()
steps = int(E("BENCH_STEPS_SET", "32"))

def fin(v):
    return isinstance(v, (int, float)) and v == v and v not in (float("inf"), float("-inf"))
def t(ms):
    if not fin(ms): return "n/a"
    if ms >= 100_000: return f"{ms / 1000:,.0f} s"
    if ms >= 10_000: return f"{ms / 1000:,.1f} s"
    return f"{ms:,.0f} ms"
def spread(xs):
    xs = [x for x in (xs or []) if fin(x)]
    if len(xs) < 2: return ""
    return f" ({t(min(xs))}–{t(max(xs))})"
def tm(median, runs):
    return t(median) + spread(runs)
def mem(b):
    if not fin(b): return "n/a"
    return f"{b / GiB:,.2f} GiB" if b >= GiB else f"{b / MiB:,.0f} MiB"
def gf(x):
    return f"{x:,.1f}" if fin(x) else "n/a"
def ratio(ours, theirs):
    if not (fin(ours) and fin(theirs) and theirs): return "n/a"
    return f"{ours / theirs:.2f}×"
def flops_of(n, method):
    return (texts.get(n, {}).get("flops") or {}).get(method)

def nat(label, n, method):
    for r in native:
        if r.get("threads", {}).get("label") == label and r.get("tokens_requested") == n and r.get("method") == method:
            return r
    return None
def pg(n, method):
    for r in page_runs:
        if r.get("tokens_requested") == n and r.get("method") == method:
            return r
    return None
def peak(label):
    m = matmul.get(label)
    return m.get("gflops_per_s") if m else None
def page_peak(r):
    """The page's measured f32 peak (GFLOP/s) for the build and threads page run `r` reported."""
    if r.get("relaxed_simd") is None:
        return None
    p = page_peaks.get(("relaxed" if r["relaxed_simd"] else "plain", r.get("threads")))
    return p.get("gflops") if p and p.get("supported") else None
def cpu_busy(r):
    c, w = r.get("cpu_ms_runs") or [], r.get("total_ms_runs") or []
    pairs = [(a, b) for a, b in zip(c, w) if fin(a) and fin(b) and b > 0]
    return f"{sum(a for a, _ in pairs) / sum(b for _, b in pairs):.2f}" if pairs else "n/a"
def threads_used(label):
    rs = [r for r in native if r.get("threads", {}).get("label") == label and r["status"] == "ok"]
    m = matmul.get(label)
    src = rs[0]["threads"] if rs else (m["threads"] if m else None)
    if not src: return "not measured"
    os_threads = max([r.get("os_threads") or 0 for r in rs] + [m.get("os_threads") or 0 if m else 0])
    return ("`RAYON_NUM_THREADS` unset (the CLI sets it to the logical CPUs)" if label == "all" else f"`RAYON_NUM_THREADS={label}`") + \
        f" → the engine's pool: **{src.get('engine')}** threads; candle's own matmuls: {src.get('candle_matmul')}; " \
        f"candle's elementwise pool: `CANDLE_NUM_THREADS={src.get('candle_elementwise_env')}` " \
        f"(OS threads of the process: up to {os_threads}; logical CPUs: {src.get('available_parallelism')})"
def label_name(label):
    rs = [r for r in native if r.get("threads", {}).get("label") == label and r["status"] == "ok"]
    n = rs[0]["threads"].get("engine") if rs else (matmul[label]["threads"].get("engine") if label in matmul else None)
    return f"{label} thread{'s' if label != '1' else ''}" + (f" ({n})" if label == "all" and n else "")

md = []
P = md.append
today = datetime.date.today().isoformat()
default_config = E("BENCH_DEFAULT_CONFIG") == "1"
P("# Benchmarks")
P("")
P("Written by `scripts/bench.sh` (`make bench`); do not edit by hand. Raw JSON lines: `bench-out/`.")
P("")
if E("BENCH_TIER") == "quick":
    P("> **Quick tier** (`make bench-quick`): a subset of the full benchmark, for checking a change.")
    P("")
elif not default_config:
    P("> **Partial run.** This file was produced with a reduced configuration (see *Configuration*), "
      "not by the full `make bench`; its figures only show that the benchmark works end to end.")
    P("")
if E("BENCH_NOTE"):
    P(f"> {E('BENCH_NOTE')}")
    P("")
P(f"- Date: {today}, commit {E('BENCH_COMMIT')}")
P(f"- Machine: {E('BENCH_CPU')}, {E('BENCH_NPROC')} logical CPUs, {E('BENCH_MEM')} RAM; load average at the end: {E('BENCH_LOAD')}")
P(f"- {E('BENCH_RUSTC')}; {E('BENCH_CHROMIUM')} (headless, playwright-core)")
if E("BENCH_CHROMIUM_ARGS"):
    P(f"- Extra Chromium flags: `{E('BENCH_CHROMIUM_ARGS')}`")
P(f"- Model: {E('MODEL_FILE')} ({int(E('MODEL_BYTES') or 0) / 1e6:.0f} MB); explained quantity p(top prediction); f32")
P(f"- Configuration: tokens {E('BENCH_TOKENS_SET')}; methods {E('BENCH_METHODS_SET')}; integrated gradients {steps} steps; "
  f"native runs per size {E('BENCH_RUNS_SET')}, page runs per size {E('BENCH_PAGE_RUNS_SET')}; native threads {E('BENCH_THREADS_SET')}; "
  f"caps: {E('BENCH_CAPS')}")
if phases:
    P("- Duration: " + "; ".join(f"{name} {int(sec) // 60} min {int(sec) % 60} s" for name, sec in phases))
P("- Times are medians over runs, with (min–max) when there was more than one run. \"Total\" is the whole "
  "request: the forward pass with its graph (`Problem::new`) plus the method. Each native configuration is one "
  "process, so its peak RSS (`VmHWM`) is its own; it includes the model file (98 MB) and the loaded model.")
weights = sorted({r.get("weights") or "encoded" for r in native})
P(f"- Native weights: {', '.join(weights)} (`salient --weights`; decoded, the CLI's default, keeps every matrix "
  "decoded to f32 from load on, 0.54 GB more for this model; the page keeps them encoded)")
P("")

# ---- goals ----
ANCHOR = {  # PyTorch 2.15 eager, f32, 2 threads, this machine kind, same model dequantized (issue 5)
    ("forward", 64): 104, ("saliency", 16): 130, ("saliency", 64): 208, ("saliency", 256): 565,
    ("integrated_gradients", 64): 3360, ("occlusion", 64): 3160,
}
ANCHOR_RSS = 4.0e9
ANCHOR_STEPS = 32
MF = next((x.get("model_flops") for x in texts.values() if x.get("model_flops")), None)
def forward_flops(n):
    if not MF: return None
    return 2 * n * MF["block_params"] + 2 * n * n * MF["width"] * MF["layers"] + 2 * MF["output_params"]
def anchor_flops(method, n):
    f = forward_flops(n)
    if f is None: return None
    return {"forward": f, "saliency": 2 * f, "integrated_gradients": (2 + 2 * ANCHOR_STEPS) * f, "occlusion": (n + 1) * f}[method]
def our_time(label, method, n):
    r = nat(label, n, method)
    if method == "integrated_gradients" and steps != ANCHOR_STEPS:
        return None, {"reason": f"not comparable ({steps} steps, the anchor's are {ANCHOR_STEPS})"}
    if not r or r["status"] != "ok": return None, r
    return (r["forward_ms"] if method == "forward" else r["total_ms"]), r
goals = []
best_label = "all" if "all" in threads_set else (threads_set[-1] if threads_set else "all")
rows, all_met, any_missing = [], True, False
for (method, n), theirs in ANCHOR.items():
    ours, r = our_time(best_label, method, n)
    if ours is None:
        any_missing = True
        rows.append(f"{method} {n}: {(r or {}).get('reason') or 'not measured'}")
        continue
    rss = r.get("peak_rss_bytes")
    ok = ours <= theirs and fin(rss) and rss <= ANCHOR_RSS / 4
    all_met &= ok
    rows.append(f"{method} {n}: {ours / theirs:.1f}× the time, {rss / ANCHOR_RSS:.2f}× the memory")
goals.append(("Native ({}) at or below PyTorch's times, at a quarter of its memory (peak RSS ≤ 1.0 GB)".format(label_name(best_label)),
              "; ".join(rows) if rows else "not measured",
              "not measured" if not rows else "NOT met" if not all_met else "met" if not any_missing
              else "met where measured; not all measured"))
def page_goal(name, n, method, limit_ms):
    r = pg(n, method)
    if not r:
        return (name, "not measured", "not measured")
    if r["status"] != "ok":
        return (name, r.get("reason") or r["status"], "NOT met" if r["status"] == "failed" else "not measured")
    fl, pk = flops_of(n, method), page_peak(r)
    bound = (f" (at the page's measured f32 peak, {pk:.0f} GFLOP/s, its {fl / 1e9:,.0f} GFLOP take at least {t(fl / (pk * 1e6))})"
             if fl and fin(pk) else "")
    return (name, t(r["total_ms"]) + bound, "met" if r["total_ms"] < limit_ms else "NOT met")
goals.append(page_goal("Chromium: saliency, 64 tokens, < 1 s (page run total)", 64, "saliency", 1000))
goals.append(page_goal(f"Chromium: integrated gradients ({steps} steps), 64 tokens, < 8 s", 64, "integrated_gradients", 8000))
at512 = [r for r in page_runs + memory_probe if r.get("tokens_requested") == 512]
if at512:
    ok = [r for r in at512 if r["status"] == "ok"]
    bad = [r for r in at512 if r["status"] == "failed"]
    ok_methods = {r["method"] for r in ok}
    # A configuration skipped in the main table and run whole by the probe is listed once, as run.
    ran = {(r["method"], r.get("steps")) for r in ok}
    listed = [r for r in at512 if r["status"] != "skipped" or (r["method"], r.get("steps")) not in ran]
    desc = "; ".join(f"{r['method']}" + (f" ({r['steps']} steps)" if r.get("steps") else "") + ": "
                     + ("ok, " + t(r["total_ms"]) if r["status"] == "ok" else r.get("reason") or r["status"]) for r in listed)
    # A method skipped in the main table but run by the probe (with fewer steps, or at all) works.
    skipped512 = [r for r in at512 if r["status"] == "skipped" and r["method"] not in ok_methods]
    goals.append(("Chromium: 512 tokens works", desc,
                  "NOT met" if bad or not ok else "met for the methods run" if skipped512 else "met"))
    # A method measured in the main table and by the probe counts once: its larger figure.
    peaks = {}
    for r in ok:
        peaks[r["method"]] = max(peaks.get(r["method"], 0), r.get("wasm_memory_max_bytes") or 0)
    mems = sorted(peaks.items())
    over = [m for m, b in mems if fin(b) and b >= GiB]
    oom = [r["method"] for r in bad if "out of memory" in (r.get("reason") or "")]
    skipped = sorted({r["method"] for r in at512 if r["status"] == "skipped"} - ok_methods)
    desc = "; ".join(f"{m}: {mem(b)}" for m, b in mems) + (f"; not measured: {', '.join(skipped)} (skipped)" if skipped else "") \
        + (f"; out of memory: {', '.join(oom)}" if oom else "")
    status = "NOT met" if over or oom else ("met for the methods measured" if {r["method"] for r in at512} - ok_methods else "met")
    goals.append(("Chromium: worker wasm memory < 1 GiB for any method at 512 tokens", desc or "not measured", status if mems or oom else "not measured"))
else:
    goals.append(("Chromium: 512 tokens works", "not measured", "not measured"))
    goals.append(("Chromium: worker wasm memory < 1 GiB for any method at 512 tokens", "not measured", "not measured"))
# Accuracy per compute: the fewest gradients with which the engine's rule gets under 1 %, per prompt,
# against the uniform 64-step rule (trapezoid) at 64.
IG_GOAL = "Integrated gradients: completeness error < 1 % with far fewer steps than a uniform 64-step rule"
if convergence:
    parts, met = [], True
    for c in convergence:
        under = [(n, g, err) for n, g, err in zip(c["steps"], c["adaptive_gradients"], c["adaptive"]) if fin(err) and err < 0.01]
        uniform64 = next((err for n, err in zip(c["steps"], c["trapezoid"]) if n == 64), None)
        best = min(under, key=lambda x: x[1]) if under else None
        met = met and best is not None and best[1] <= 32
        parts.append(f"{json.dumps(c['target'])}: " + (f"{100 * best[2]:.2f} % with {best[1]} gradients" if best else "never under 1 %")
                     + (f" (uniform 64: {100 * uniform64:.2f} %)" if fin(uniform64) else ""))
    goals.append((IG_GOAL, "; ".join(parts), "met (≤ 32 gradients on every prompt)" if met else "NOT met"))
else:
    goals.append((IG_GOAL, "not measured", "not measured"))
P("## Goals")
P("")
P("| Goal | Measured | Status |")
P("|---|---|---|")
for a, b, c in goals:
    P(f"| {a} | {b} | {c} |")
P("")

# ---- anchor ----
P("## Against the PyTorch anchor")
P("")
P("The anchor (issue 5): PyTorch 2.15 eager, f32, 2 threads, this machine kind, the same model dequantized, "
  "IG and occlusion each in one batch. Ratio = ours / theirs (below 1: we are faster / smaller). "
  "\"Implied GFLOP/s\" is our FLOP estimate of that run (below) divided by the anchor's time; for occlusion "
  "it counts whole forward passes, F + n·F, the work of one batch of occluded copies (ours skips each copy's "
  "unchanged prefix).")
P("")
hdr = "| Run | PyTorch | PyTorch implied GFLOP/s |"
sep = "|---|---|---|"
for label in threads_set:
    hdr += f" Ours, {label_name(label)} | Ratio |"
    sep += "---|---|"
P(hdr); P(sep)
for (method, n), theirs in ANCHOR.items():
    f = anchor_flops(method, n)
    row = f"| {method} {'(' + str(ANCHOR_STEPS) + ' steps) ' if method == 'integrated_gradients' else ''}{n} tokens | {t(theirs)} | {gf(f / (theirs * 1e6)) if f else 'n/a'} |"
    for label in threads_set:
        ours, r = our_time(label, method, n)
        if ours is None:
            row += f" {(r.get('reason') if r else None) or 'not measured'} | – |"
        else:
            row += f" {t(ours)} | {ratio(ours, theirs)} |"
    P(row)
row = f"| Peak RSS (largest of the runs above) | {ANCHOR_RSS / 1e9:.1f} GB | – |"
for label in threads_set:
    rss = [nat(label, n, m).get("peak_rss_bytes") for (m, n) in ANCHOR if nat(label, n, m) and nat(label, n, m)["status"] == "ok"]
    rss = [x for x in rss if fin(x)]
    row += f" {f'{max(rss) / 1e9:.2f} GB' if rss else 'n/a'} | {ratio(max(rss), ANCHOR_RSS) if rss else 'n/a'} |"
P(row)
P("")
pk_all = max([x for x in (peak(l) for l in threads_set) if fin(x)], default=None)
beyond = [f"{m} {n} ({anchor_flops(m, n) / (ms * 1e6):.0f} GFLOP/s)" for (m, n), ms in ANCHOR.items()
          if fin(pk_all) and anchor_flops(m, n) and anchor_flops(m, n) / (ms * 1e6) > pk_all]
if beyond:
    P(f"Caution: by the FLOP estimate below, the anchor's {', '.join(beyond)} would run faster than the f32 matmul "
      f"peak measured here ({pk_all:.0f} GFLOP/s). Either the anchor's runs did less work than this estimate counts "
      "(e.g. a cheaper backward, or other thread settings) or this machine is slower than the anchor's; read those "
      "ratios with that in mind.")
    P("")

# ---- native ----
P("## Native CLI (`salient bench`)")
P("")
P("Threads: the engine splits each projection's weight rows into one block per thread of rayon's pool and runs "
  "one single-threaded product per block (where the CPU has AVX-512, by our kernels on the weights kept as panels: "
  "every forward product, and the backward pass's of up to 64 rows; else gemm's, with its AVX-512 kernels where it can), the whole request on the pool (`engine::parallel`); the CLI sizes the pool "
  "from `RAYON_NUM_THREADS` and keeps candle's own elementwise pool to one thread. The matmul peak below is candle's "
  "matmul, whose gemm splits into `RAYON_NUM_THREADS` tasks:")
P("")
for label in threads_set:
    P(f"- {label_name(label)}: {threads_used(label)}")
P("")
P("Machine's f32 peak, measured: a candle f32 matmul of " + f"{E('BENCH_MATMUL_SET')}×{E('BENCH_MATMUL_SET')}×{E('BENCH_MATMUL_SET')} "
  "(2·N³ FLOPs), after one warm-up:")
P("")
P("| Threads | Matmul time | GFLOP/s (median) | GFLOP/s (best) |")
P("|---|---|---|---|")
for label in threads_set:
    m = matmul.get(label)
    if m:
        P(f"| {label_name(label)} | {tm(m['ms'], m['ms_runs'])} | {gf(m['gflops_per_s'])} | {gf(m['gflops_per_s_best'])} |")
    else:
        P(f"| {label_name(label)} | not measured | – | – |")
P("")
loads = [(label, nat(label, n, "forward")) for label in threads_set for n in tokens_set]
loads = [(l, r) for l, r in loads if r and r["status"] == "ok"]
if loads:
    l, r = max(loads, key=lambda x: len(x[1].get("load_ms_runs") or []))
    P(f"Model load (parse the GGUF, build the tokenizer; file already read): {tm(r['load_ms'], r['load_ms_runs'])} "
      f"over {len(r['load_ms_runs'])} loads ({label_name(l)}).")
    P("")
for label in threads_set:
    P(f"### {label_name(label).capitalize()}")
    P("")
    P("| Tokens | Method | Runs | Total | Forward | Attribution | Peak RSS | GFLOP (est.) | GFLOP/s | % of peak | CPU/wall |")
    P("|---|---|---|---|---|---|---|---|---|---|---|")
    pk = peak(label)
    for n in tokens_set:
        for method in methods_set:
            r = nat(label, n, method)
            name = method + (f" ({steps})" if method == "integrated_gradients" else "")
            if not r:
                continue
            if r["status"] != "ok":
                P(f"| {n} | {name} | – | {r.get('reason')} | | | | {gf((flops_of(n, method) or float('nan')) / 1e9)} | | | |")
                continue
            total = r["forward_ms"] if method == "forward" else r["total_ms"]
            total_runs = r["forward_ms_runs"] if method == "forward" else r["total_ms_runs"]
            rate = r["flops"] / (total * 1e6) if fin(r.get("flops")) and total else None
            P(f"| {r['tokens']} | {name} | {r['runs']} | {tm(total, total_runs)} | {tm(r['forward_ms'], r['forward_ms_runs'])} | "
              f"{tm(r['attribute_ms'], r['attribute_ms_runs']) if method != 'forward' else '–'} | {mem(r['peak_rss_bytes'])} | "
              f"{gf(r['flops'] / 1e9) if fin(r.get('flops')) else 'n/a'} | {gf(rate)} | "
              f"{f'{100 * rate / pk:.0f} %' if fin(rate) and fin(pk) else 'n/a'} | {cpu_busy(r)} |")
    P("")

# ---- GPU ----
P("## GPU backend (native, `salient bench --backend gpu`)")
P("")
if gpu_peaks:
    g = gpu_peaks[-1]
    adapter = f"{g['adapter']} ({g['api']})"
    software = any(w in g["adapter"].lower() for w in ("llvmpipe", "lavapipe", "swiftshader", "software"))
    if software:
        P(f"**No GPU here.** The adapter is {adapter}: a software rasteriser that runs the WGSL kernels on this "
          "machine's CPU cores. These figures measure that software adapter, not a GPU; they say that the GPU path "
          "runs and what its kernels reach on it, nothing about a laptop's GPU.")
    else:
        P(f"Adapter: {adapter}.")
    P("")
    pk = g["gflops_per_s"]
    P(f"Adapter's f32 peak, measured: a tiled {g['n']}×{g['n']}×{g['n']} matmul kernel "
      f"(`shaders/matmul_peak.wgsl`, {g['products_per_run']} products per run): {gf(pk)} GFLOP/s median, "
      f"{gf(g['gflops_per_s_best'])} best.")
    P("")
    P("Weights kept in their GGUF blocks on the device; the decoder made and its kernels compiled before the timed "
      "runs. The CPU column is the native all-threads run of the same configuration in this sitting.")
    P("")
    P("| Tokens | Method | Runs | GPU total | GFLOP/s | % of adapter peak | CPU total (all threads) |")
    P("|---|---|---|---|---|---|---|")
    for r in gpu_runs:
        name = r.get("method", "?") + (f" ({steps})" if r.get("method") == "integrated_gradients" else "")
        if r.get("status", "ok") != "ok":
            P(f"| {r.get('tokens_requested')} | {name} | – | {r.get('reason')} | | | |")
            continue
        method = r["method"]
        total = r["forward_ms"] if method == "forward" else r["total_ms"]
        runs = r["forward_ms_runs"] if method == "forward" else r["total_ms_runs"]
        rate = r["flops"] / (total * 1e6) if fin(r.get("flops")) and total else None
        c = nat("all", r["tokens_requested"], method)
        cpu = (c["forward_ms"] if method == "forward" else c["total_ms"]) if c and c.get("status") == "ok" else None
        P(f"| {r['tokens']} | {name} | {r['runs']} | {tm(total, runs)} | {gf(rate)} | "
          f"{f'{100 * rate / pk:.0f} %' if fin(rate) and fin(pk) else 'n/a'} | {t(cpu)} |")
    P("")
else:
    P("Not measured (no adapter, or `BENCH_GPU=0`).")
    P("")

# ---- page ----
P("## Headless Chromium (the page)")
P("")
P("Each (tokens, method) runs in a fresh tab of one browser profile (the model comes from the browser's cache), "
  "so the worker's wasm memory read after it (`data-wasm-memory`; wasm memory never shrinks) is that method's. "
  "The first run of each configuration is started by typing the text into the editor, the others by Ctrl+Enter. "
  "Times are the worker's own (`data-forward-ms`, `data-attribute-ms`, `data-total-ms`). The page is served "
  "cross-origin isolated (`serve.py`), so the worker runs the multi-threaded build; the threads it reported "
  "(`data-threads`): " + (", ".join(sorted({str(r.get("threads")) for r in page_runs if r.get("status") == "ok"})) or "none") + ".")
P("")
if wasm:
    for name, raw, gz in wasm:
        P(f"- `{name}`: {int(raw) / 1e6:.2f} MB raw, {int(gz) / 1e6:.2f} MB gzip -9")
if visits:
    for v in visits:
        served = v.get("model_responses")
        how = (", ".join(f"HTTP {k} ×{c}" for k, c in sorted(served.items())) if served
               else "none reached the server (served from the browser's cache)" if served == {} else "unknown")
        P(f"- Visit {v['visit']} ({'model in the browser cache' if v.get('cached') else 'first visit, empty profile'}; model request: {how}): "
          f"page open → first highlight **{t(v.get('first_highlight_ms'))}** (model load {t(v.get('load_ms'))}, "
          f"first run {t(v.get('total_ms'))} on the 10-token example)")
mem_peak = [r.get("browser_pss_peak_bytes") for r in page if r.get("kind") == "browser-memory"]
if mem_peak and fin(mem_peak[0]):
    P(f"- Whole headless browser, peak PSS over the page benchmark: {mem(mem_peak[0])}")
P("")
if page_peaks:
    P("The page's f32 peak, measured (`tests/e2e/page-peak.mjs`): wasm multiply-adds on 128-bit lanes (independent "
      "values, nothing else) on dedicated workers at once, in the build with relaxed SIMD (one fused multiply-add, as "
      "the page's `threads-relaxed` build) and without (a multiply and an add); medians of "
      f"{max(len(p.get('gflops_runs') or []) for p in page_peaks.values())} measurements:")
    P("")
    P("| Build | Workers | GFLOP/s (median) | Spread |")
    P("|---|---|---|---|")
    for (build, threads), p in sorted(page_peaks.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        if not p.get("supported"):
            P(f"| {build} | – | not supported by this browser | |")
            continue
        xs = p.get("gflops_runs") or []
        P(f"| {build} | {threads} | {gf(p['gflops'])} | {gf(min(xs))}–{gf(max(xs))} |")
    P("")
if page_runs:
    P("| Tokens | Method | Runs | Total | Forward | Attribution | Wasm memory after | Browser PSS peak | GFLOP/s | % of peak |")
    P("|---|---|---|---|---|---|---|---|---|---|")
    for r in page_runs:
        name = r["method"] + (f" ({r['steps']})" if r.get("steps") else "")
        n = r.get("tokens") or r["tokens_requested"]
        if r["status"] != "ok":
            extra = f" (after {r['runs']} run(s))" if r.get("runs") else ""
            P(f"| {n} | {name} | – | {r.get('reason')}{extra} | | | | | | |")
            continue
        fl = flops_of(r["tokens_requested"], r["method"])
        runs = r.get("per_run") or []
        rate, pk = (fl / (r["total_ms"] * 1e6) if fl and r.get("total_ms") else None), page_peak(r)
        P(f"| {n} | {name} | {r['runs']} | {tm(r['total_ms'], [x['total_ms'] for x in runs])} | "
          f"{tm(r['forward_ms'], [x['forward_ms'] for x in runs])} | {tm(r['attribute_ms'], [x['attribute_ms'] for x in runs])} | "
          f"{mem(r.get('wasm_memory_max_bytes'))} | {mem(r.get('browser_pss_peak_bytes'))} | "
          f"{gf(rate)} | {f'{100 * rate / pk:.0f} %' if fin(rate) and fin(pk) else 'n/a'} |")
    if memory_probe:
        P("")
        P(f"Memory probe: the methods below ran once more at {memory_probe[0].get('tokens') or memory_probe[0]['tokens_requested']} "
          f"tokens, integrated gradients with {E('BENCH_PAGE_MEMORY_STEPS_SET', '4')} steps, for their wasm memory (and to show "
          "that those the table above skipped work at this length): at this length a gradient batch holds one text whatever "
          "the steps (`memory::gradient_batch_rows`), so the peak is the full run's; SmoothGrad batches its copies the same "
          "way. Occlusion runs whole.")
        P("")
        P("| Tokens | Method | Total | Wasm memory after |")
        P("|---|---|---|---|")
        for r in memory_probe:
            name = r["method"] + (f" ({r['steps']})" if r.get("steps") else "")
            n = r.get("tokens") or r["tokens_requested"]
            P(f"| {n} | {name} | {t(r['total_ms']) if r['status'] == 'ok' else r.get('reason') or r['status']} | "
              f"{mem(r.get('wasm_memory_max_bytes')) if r['status'] == 'ok' else ''} |")
    notes = sorted({n for r in page_runs + memory_probe for n in r.get("notes") or []})
    for n in notes:
        P(f"- Note: {n}")
    P("")
else:
    P("Not measured.")
    P("")

# ---- ground truth ----
P("## Ground truth: the report card (native, `salient evaluate`)")
P("")
if evaluations:
    e = evaluations[-1]
    sample = e.get("sample")
    P(f"The built-in suite ({'every item' if sample is None else f'{sample} items per family, seeded'}), "
      "default settings, on the CPU. Hit rate: the share of scored items whose top-ranked token (by |score|) is "
      "evidence, with its 95 % bootstrap interval; rank: the mean rank of the best evidence token; mass: the share "
      "of Σ |score| on evidence. docs/ground-truth.md says more.")
    P("")
    for f in e["families"]:
        P(f"- {f['family']}: {f['scored']} of {f['checked']} checked items scored ({f['size']} in the suite)"
          + ("" if f["usable"] else ": too few, unusable on this model"))
    P("")
    P("| Method | Family | Items | Hit rate [95 % CI] | Mean rank | Evidence mass |")
    P("|---|---|---|---|---|---|")
    for r in e["methods"] + e["random"]:
        name = r["method"] + (" (target-independent)" if r.get("target_independent") else "")
        P(f"| {name} | {r['family']} | {r['items']} | {r['hit_rate']:.2f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}] | "
          f"{r['mean_rank']:.2f} | {r['evidence_mass']:.2f} |")
    P("")
    P("Time per checked item, natively (all threads; each includes the item's forward pass that checks the "
      "model's answer): " + ", ".join(f"{x['method']} {t(x['ms_per_item'])}" for x in e.get("timings", [])) + ".")
    P("")
else:
    P("Not measured (`BENCH_EVALUATE=0`, or the run failed: see bench-out/evaluate.err).")
    P("")
if page_evaluations:
    ok = [x for x in page_evaluations if x["status"] == "ok"]
    threads = sorted({x["threads"] for x in ok if x.get("threads")})
    P("Time per checked item in the page (Chromium, the report card's own run, each method alone on its sample "
      f"of the suite, the items checked in brackets; {', '.join(map(str, threads)) or '?'} thread(s)): "
      + ", ".join(f"{x['method']} {t(x['ms_per_item'])} ({x['checked']} items)" if x["status"] == "ok"
                  else f"{x['method']} failed ({x['reason']})" for x in page_evaluations) + ".")
    P("")
else:
    P("The page's time per item: not measured (`BENCH_EVALUATE=0` or `BENCH_PAGE=0`, or see bench-out/page-evaluate.err).")
    P("")

# ---- accuracy ----
P("## Integrated gradients: completeness error against steps")
P("")
P("Completeness error = |Σ scores − (f(x) − f(x'))| / |f(x) − f(x')|, baseline x' = the pad token's embedding at "
  "every position. Adaptive is the engine's rule (`integrated_gradients` with a budget of n gradients; it stops "
  "once the intervals' errors add up to under 1e-4 of the change, so \"used\" may be below n): Simpson intervals "
  "bisected where their estimate of ∫⟨x − x', ∇f⟩ misses the exact f(b) − f(a) most. Gauss–Legendre (n gradients, "
  "the engine's rule before), trapezoid (n + 1 gradients at k/n) and midpoint (n gradients at (k + ½)/n) are "
  "computed by `salient bench --convergence` from the same `Problem::gradients`; trapezoid and midpoint on one grid "
  "of max + 1 nodes (the midpoint at the largest n would need n more gradients: n/a). All threads.")
P("")
if convergence:
    for c in convergence:
        P(f"**\"{c['prompt']}\"** ({c['tokens']} tokens, target {json.dumps(c['target'])}, f(x) − f(x') = {c['change']:.4g})")
        P("")
        P("| Steps | Adaptive | Gradients used | Adaptive time | Gauss–Legendre | Trapezoid | Midpoint |")
        P("|---|---|---|---|---|---|---|")
        def e(v): return f"{v:.2e}" if fin(v) else "n/a"
        for i, n in enumerate(c["steps"]):
            P(f"| {n} | {e(c['adaptive'][i])} | {c['adaptive_gradients'][i]} | {t(c['adaptive_ms'][i])} | "
              f"{e(c['gauss_legendre'][i])} | {e(c['trapezoid'][i])} | {e(c['midpoint'][i])} |")
        P("")
else:
    P("Not measured.")
    P("")
ig_default = [r for r in lines("ig-default.jsonl") if r.get("kind") == "run" and r.get("status", "ok") == "ok"]
if ig_default:
    P("At the default budget (`salient attribute` and the page without `steps`: up to 128 gradients, aiming at 1e-4 "
      "within the first 32 and at 1 % after), on the benchmark's texts, all threads, one run each:")
    P("")
    P("| Tokens | Gradients taken | Completeness error | Time |")
    P("|---|---|---|---|")
    for r in ig_default:
        P(f"| {r['tokens']} | {r.get('path_gradients')} | {100 * r['completeness_error']:.2f} % | {t(r['total_ms'])} |"
          if fin(r.get("completeness_error")) else f"| {r['tokens']} | {r.get('path_gradients')} | n/a | {t(r['total_ms'])} |")
    P("")

# ---- FLOP model ----
mf = MF
P("## FLOP estimate")
P("")
P("From the GGUF's tensor table and config: P = the weights of the 2-D tensors in the blocks (`blk.*`, the "
  "projections every token passes through), W = width, L = layers, O = the output projection's weights (the tied "
  "token embedding), logits at the last position only. Dequantizing the weights is not counted (it is work, but "
  "not FLOPs of the model).")
P("")
P("- forward of n tokens: F(n) = 2·n·P + 4·n²·W·L/2 (causal QKᵀ and AV) + 2·O")
P("- backward for the input gradient ≈ F(n) (no weight gradients)")
P("- forward pass alone: F; saliency, gradient × input: F + F; integrated gradients taking g gradients (natively "
  "the g it reports; in the page its budget of s steps): F + F (the input's backward) + (g − 1)·(F + F) + F (the "
  "baseline's value); occlusion: F + F (the text's keys and values) + Σ over m = 1..n of C(m), C(m) the last m "
  "positions of a forward pass continuing the text's first n − m (2·m·P + 4·(m·n − m(m−1)/2)·W·L + 2·O): each "
  "occluded copy from its token on, the least the engine computes")
P("- achieved GFLOP/s = estimated FLOPs of the run / its time; % of peak = that / the measured matmul GFLOP/s "
  "with the same threads (in the page: / the measured multiply-add peak of the build and workers it ran)")
if mf:
    P(f"- here: P = {mf['block_params'] / 1e6:.1f} M, W = {mf['width']:.0f}, L = {mf['layers']:.0f}, O = {mf['output_params'] / 1e6:.1f} M; "
      + ", ".join(f"F({n}) = {texts[n]['flops']['forward'] / 1e9:.1f} GFLOP" for n in sorted(texts) if texts[n].get("flops")))
P("")
if failures:
    P("## Incomplete run")
    P("")
    for f in failures:
        P(f"- {f}")
    P("")
with open(E("BENCH_REPORT"), "w") as fh:
    fh.write("\n".join(md))
print("\n".join(md))
print(f"\nwrote {E('BENCH_REPORT')}")
PY
exit $status
