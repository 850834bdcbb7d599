//! Fuzzing inside `cargo test` (cargo-fuzz needs a nightly toolchain this machine cannot fetch): a
//! seeded, structure-aware mutation fuzzer with three targets, the GGUF reader and model loader,
//! the share-link decoder, and the tokenizer built from GGUF metadata.
//!
//! A case fails when it panics, breaks a target's invariant, runs longer than `CASE_TIME_LIMIT`,
//! or its heap peak grows past `memory_bound(input size)`. A counting global allocator measures
//! that peak; the first failure stops the target and is reported with the mutations that made it.
//!
//! `SALIENT_FUZZ_SECONDS` sets each target's time budget (default 10 s); `SALIENT_FUZZ_SEED` its
//! seed (default: fixed per target). Cases come in order from the seed, so a failure reproduces
//! with the same seed and a longer budget runs the same cases first, then more.

mod common;
use salient::engine::runtime::ready::now;
use salient::engine::RunContext;
#[path = "common/hostile.rs"]
mod hostile;

use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;
use common::gguf_builder::{tiny_model, Family, TinyConfig};
use hostile::{check_spelling, SplitMix64};
use salient::engine::api::continuation::{Continuation, ContinuationRow};
use salient::engine::api::{Attribution, Prediction};
use salient::engine::attribution::faithfulness::Faithfulness;
use salient::engine::attribution::grouping::Granularity;
use salient::engine::attribution::methods::{
    MethodParams, MAX_SAMPLES, MAX_STEPS, METHODS, MIN_STEPS,
};
use salient::engine::model::gguf::GgufFile;
use salient::engine::model::tokenizer::TextTokenizer;
use salient::engine::model::tokenizer::Token;
use salient::engine::{BackendKind, TargetKind};
use salient::engine::{Model, Problem, TargetSpec};
use salient::state::colour::Scale;
use salient::state::editor_map::pieces;
use salient::state::export::{csv, html, svg, Shown};
use salient::state::link::{self, LinkError, MAX_JSON_BYTES};
use salient::state::result::{check, Agreement, Checked, MethodScores, RunOutput};
use salient::state::settings::{Normalisation, Reduce, Settings, ViewSettings, MAX_TEXT_BYTES};
use salient::state::shared::{open_link, SavedModel, SavedResult, SharedState, Snapshot};
use salient::state::view::{
    compare_recomputed, matrix, shown_map, spelled, units, Recomputed, TokenMap, Unit,
};
use serde::{Deserialize, Serialize};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// The counting allocator

/// Counts live heap bytes and their peak, so each case's allocation can be bounded.
struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

/// A single request above this is refused: std then aborts the test binary with "memory
/// allocation of N bytes failed" (a loud failure) instead of the shared machine paging to serve
/// an allocation sized by a hostile length field.
const LARGEST_ALLOCATION: usize = 1 << 30;

fn grew(bytes: usize) {
    let live = LIVE_BYTES.fetch_add(bytes, Relaxed) + bytes;
    PEAK_BYTES.fetch_max(live, Relaxed);
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LARGEST_ALLOCATION {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LARGEST_ALLOCATION {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > LARGEST_ALLOCATION {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            match new_size >= layout.size() {
                true => grew(new_size - layout.size()),
                false => {
                    LIVE_BYTES.fetch_sub(layout.size() - new_size, Relaxed);
                }
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

// ---------------------------------------------------------------------------------------------
// The runner

/// Longest a case may run. Parsing and loading a tiny model takes about a millisecond and
/// tokenizing a short text less, so 2 s only trips on a hang (or a loop sized by a length field),
/// even on a machine busy compiling.
const CASE_TIME_LIMIT: Duration = Duration::from_secs(2);

/// Heap growth allowed to a case with an input of `size` bytes: 64 bytes per input byte (a parser
/// may build a 32-byte value per input byte, in a vector that doubles) plus 64 MiB for fixed
/// costs (a tokenizer's tables, a forward pass).
fn memory_bound(size: usize) -> usize {
    64 * size + (64 << 20)
}

/// The allocator's counters and the panic hook are process-wide: the tests of this file run one
/// at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the lock, and installs (once) the panic hook that records case panics.
fn serial() -> MutexGuard<'static, ()> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // With RUST_BACKTRACE set, candle errors carry a backtrace and formatting one first loads
        // the binary's debug info (about 100 MB, kept for the process): load it now, so no case
        // is charged for it.
        let _ = std::backtrace::Backtrace::force_capture().to_string();
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| match std::thread::current().name() == Some(WORKER) {
            true => *LAST_PANIC.lock().unwrap_or_else(|p| p.into_inner()) = info.to_string(),
            false => default(info),
        }))
    });
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One generated input and how it was made (printed when it fails).
struct Case<I> {
    what: String,
    /// Input bytes, for the memory bound.
    size: usize,
    input: I,
}

#[derive(Debug, PartialEq)]
enum Failure {
    Panicked(String),
    Broke(String),
    Hung,
    Allocated { peak: usize, bound: usize },
}

struct Limits {
    budget: Duration,
    per_case: Duration,
    memory: fn(usize) -> usize,
}

struct Outcome {
    executions: usize,
    elapsed: Duration,
    /// The failing case: its index, how it was made, and how it failed.
    failure: Option<(usize, String, Failure)>,
    slowest_case: Duration,
    /// The largest heap growth of a case, as a fraction of its bound.
    largest_growth: f64,
}

/// The name of the thread cases run on: its panics are recorded quietly in `LAST_PANIC` (the
/// runner reports them), other threads' go to the default hook.
const WORKER: &str = "fuzz case";

/// The last case panic's message and location.
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

/// What a caught panic said: the hook's record (message and place) for a panic on the worker,
/// else the payload (a panic on a helper thread, re-raised on the worker).
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let recorded = std::mem::take(&mut *LAST_PANIC.lock().unwrap_or_else(|p| p.into_inner()));
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        _ if !recorded.is_empty() => recorded,
        (Some(message), _) => message.to_string(),
        (_, Some(message)) => message.clone(),
        _ => "a panic without a message".into(),
    }
}

/// Runs `check` on cases from `generate` until the budget is spent or a case fails. Cases run on
/// a worker thread, so a hung one can be abandoned; panics are caught and recorded quietly.
fn fuzz<I, G, C>(limits: &Limits, seed: u64, mut generate: G, check: C) -> Outcome
where
    I: Send + 'static,
    G: FnMut(&mut SplitMix64) -> Case<I>,
    C: Fn(&I) -> Result<(), String> + Send + 'static,
{
    let (to_worker, cases) = mpsc::channel::<(I, usize)>();
    let (to_runner, results) = mpsc::channel::<(std::result::Result<(), Failure>, f64)>();
    let worker = std::thread::Builder::new().name(WORKER.into());
    worker
        .spawn(move || {
            for (input, bound) in cases {
                let before = LIVE_BYTES.load(Relaxed);
                PEAK_BYTES.store(before, Relaxed);
                let result = panic::catch_unwind(AssertUnwindSafe(|| check(&input)));
                let peak = PEAK_BYTES.load(Relaxed).saturating_sub(before);
                let outcome = match result {
                    Err(payload) => Err(Failure::Panicked(panic_message(payload))),
                    Ok(Err(why)) => Err(Failure::Broke(why)),
                    Ok(Ok(())) if peak > bound => Err(Failure::Allocated { peak, bound }),
                    Ok(Ok(())) => Ok(()),
                };
                if to_runner.send((outcome, peak as f64 / bound as f64)).is_err() {
                    break;
                }
            }
        })
        .expect("the worker thread starts");
    let mut rng = SplitMix64::new(seed);
    let start = Instant::now();
    let mut executions = 0;
    let mut failure = None;
    let (mut slowest_case, mut largest_growth) = (Duration::ZERO, 0.0f64);
    while start.elapsed() < limits.budget {
        let Case { what, size, input } = generate(&mut rng);
        let sent = Instant::now();
        to_worker
            .send((input, (limits.memory)(size)))
            .expect("the worker thread runs until told to stop");
        let result = match results.recv_timeout(limits.per_case) {
            Ok((result, growth)) => {
                largest_growth = largest_growth.max(growth);
                result
            }
            Err(RecvTimeoutError::Timeout) => Err(Failure::Hung),
            Err(RecvTimeoutError::Disconnected) => {
                Err(Failure::Panicked("the worker thread died".into()))
            }
        };
        slowest_case = slowest_case.max(sent.elapsed());
        executions += 1;
        if let Err(how) = result {
            failure = Some((executions - 1, what, how));
            break;
        }
    }
    Outcome { executions, elapsed: start.elapsed(), failure, slowest_case, largest_growth }
}

fn budget() -> Duration {
    let seconds = std::env::var("SALIENT_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(10.0);
    Duration::from_secs_f64(seconds.max(0.0))
}

fn seed(target: &str) -> u64 {
    match std::env::var("SALIENT_FUZZ_SEED") {
        Ok(s) => s.parse().unwrap_or_else(|_| panic!("SALIENT_FUZZ_SEED={s} is not a u64")),
        // FNV-1a of the target's name: fixed, and different per target.
        Err(_) => target
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3)),
    }
}

/// Fuzzes one target for the configured budget, prints the summary line, and fails the test
/// with the reproduction details on the first failing case.
fn run_target<I, G, C>(target: &str, memory: fn(usize) -> usize, generate: G, check: C)
where
    I: Send + 'static,
    G: FnMut(&mut SplitMix64) -> Case<I>,
    C: Fn(&I) -> Result<(), String> + Send + 'static,
{
    let seed = seed(target);
    let limits = Limits { budget: budget(), per_case: CASE_TIME_LIMIT, memory };
    let outcome = fuzz(&limits, seed, generate, check);
    let failures = outcome.failure.is_some() as usize;
    eprintln!(
        "fuzz {target}: {} executions, {failures} failures in {:.1} s",
        outcome.executions,
        outcome.elapsed.as_secs_f64()
    );
    eprintln!(
        "fuzz {target}: slowest case {:.0} ms, largest heap growth {:.1}% of its bound",
        outcome.slowest_case.as_secs_f64() * 1e3,
        outcome.largest_growth * 100.0
    );
    if let Some((index, what, how)) = outcome.failure {
        panic!("fuzz {target}: case {index} (SALIENT_FUZZ_SEED={seed}) failed: {how:?}\n  input: {what}");
    }
}

/// The runner must report each way a case can fail, or a broken runner would pass every target:
/// `check` wrapped with a deliberate panic, broken invariant, hang and over-allocation each fail
/// the first case, and `check` alone passes.
fn assert_runner_catches<I, C>(sample: impl Fn() -> I, check: C)
where
    I: Send + 'static,
    C: Fn(&I) -> Result<(), String> + Send + Clone + 'static,
{
    let limits = Limits {
        budget: Duration::from_millis(300),
        per_case: Duration::from_millis(500),
        memory: memory_bound,
    };
    let run = |fault: fn(&I) -> Result<(), String>| {
        let check = check.clone();
        let outcome = fuzz(
            &limits,
            1,
            |_| Case { what: "sample".into(), size: 0, input: sample() },
            move |input: &I| check(input).and_then(|()| fault(input)),
        );
        outcome.failure.map(|(index, _, how)| (index, how))
    };
    assert_eq!(run(|_| Ok(())), None, "the unmodified target passes its sample input");
    match run(|_| panic!("deliberate panic")) {
        Some((0, Failure::Panicked(message))) => {
            assert!(message.contains("deliberate panic"), "{message}")
        }
        other => panic!("a panic was not reported: {other:?}"),
    }
    assert_eq!(run(|_| Err("deliberate".into())), Some((0, Failure::Broke("deliberate".into()))));
    assert_eq!(
        run(|_| {
            std::thread::sleep(Duration::from_millis(1500));
            Ok(())
        }),
        Some((0, Failure::Hung))
    );
    let over = run(|_| {
        // Zeroed pages are only mapped, never touched: cheap to allocate, counted all the same.
        std::hint::black_box(vec![0u8; memory_bound(0) + (1 << 20)]);
        Ok(())
    });
    assert!(
        matches!(over, Some((0, Failure::Allocated { .. }))),
        "an over-allocation was not reported: {over:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// GGUF files: the base model, its fields, and mutations

/// Small enough to load in about a millisecond, wide enough (32) for the 32-value block
/// encodings, and with grouped-query attention where the family has it.
fn tiny_config(family: Family) -> TinyConfig {
    let kv_heads = if family == Family::Gpt2 { 4 } else { 2 };
    TinyConfig { layers: 1, width: 32, heads: 4, kv_heads, hidden: 64, context_length: 64, seed: 7 }
}

/// A GGUF file as metadata and tensors, sorted by name so cases reproduce.
#[derive(Clone)]
struct GgufParts {
    metadata: Vec<(String, Value)>,
    tensors: Vec<(String, Arc<QTensor>)>,
}

impl GgufParts {
    fn read(bytes: &[u8]) -> Self {
        let mut reader = Cursor::new(bytes);
        let content = Content::read(&mut reader).expect("the base file reads");
        let mut metadata: Vec<(String, Value)> = content.metadata.clone().into_iter().collect();
        metadata.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tensors: Vec<(String, Arc<QTensor>)> = content
            .tensor_infos
            .keys()
            .map(|name| {
                (
                    name.clone(),
                    Arc::new(
                        content.tensor(&mut reader, name, &Device::Cpu).expect("tensor reads"),
                    ),
                )
            })
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Self { metadata, tensors }
    }

    fn write(&self) -> Vec<u8> {
        let metadata: Vec<(&str, &Value)> =
            self.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let tensors: Vec<(&str, &QTensor)> =
            self.tensors.iter().map(|(n, t)| (n.as_str(), t.as_ref())).collect();
        let mut out = Cursor::new(Vec::new());
        gguf_file::write(&mut out, &metadata, &tensors)
            .expect("candle writes any metadata and tensors");
        out.into_inner()
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.metadata.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn set(&mut self, key: &str, value: Value) {
        match self.get_mut(key) {
            Some(slot) => *slot = value,
            None => self.metadata.push((key.to_string(), value)),
        }
    }

    fn array_mut(&mut self, key: &str) -> Option<&mut Vec<Value>> {
        match self.get_mut(key) {
            Some(Value::Array(items)) => Some(items),
            _ => None,
        }
    }
}

/// A fixed-size field of a GGUF header, where a mutation can aim.
#[derive(Clone, Copy, Debug)]
struct Field {
    at: usize,
    size: usize,
    kind: FieldKind,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum FieldKind {
    Version,
    /// Tensor and metadata counts.
    Count,
    /// String and array lengths.
    Length,
    ValueType,
    Number,
    Bool,
    Dims,
    Dim,
    Encoding,
    DataOffset,
}

/// The fields of a well-formed GGUF v2/v3 file (as candle's writer makes them).
fn fields(bytes: &[u8]) -> Vec<Field> {
    struct Walk<'a> {
        bytes: &'a [u8],
        at: usize,
        fields: Vec<Field>,
    }
    impl Walk<'_> {
        fn field(&mut self, size: usize, kind: FieldKind) -> u64 {
            let mut value = [0u8; 8];
            value[..size].copy_from_slice(&self.bytes[self.at..self.at + size]);
            self.fields.push(Field { at: self.at, size, kind });
            self.at += size;
            u64::from_le_bytes(value)
        }
        fn string(&mut self) {
            self.at += self.field(8, FieldKind::Length) as usize;
        }
        fn value(&mut self, value_type: u64) {
            match value_type {
                7 => drop(self.field(1, FieldKind::Bool)),
                8 => self.string(),
                9 => {
                    let element_type = self.field(4, FieldKind::ValueType);
                    for _ in 0..self.field(8, FieldKind::Length) {
                        self.value(element_type);
                    }
                }
                0 | 1 => drop(self.field(1, FieldKind::Number)),
                2 | 3 => drop(self.field(2, FieldKind::Number)),
                4..=6 => drop(self.field(4, FieldKind::Number)),
                _ => drop(self.field(8, FieldKind::Number)),
            }
        }
    }
    let mut walk = Walk { bytes, at: 4, fields: Vec::new() };
    walk.field(4, FieldKind::Version);
    let tensors = walk.field(8, FieldKind::Count);
    let entries = walk.field(8, FieldKind::Count);
    for _ in 0..entries {
        walk.string();
        let value_type = walk.field(4, FieldKind::ValueType);
        walk.value(value_type);
    }
    for _ in 0..tensors {
        walk.string();
        for _ in 0..walk.field(4, FieldKind::Dims) {
            walk.field(8, FieldKind::Dim);
        }
        walk.field(4, FieldKind::Encoding);
        walk.field(8, FieldKind::DataOffset);
    }
    walk.fields
}

/// Values a length, count or size field is set to: the edges of every integer width and sizes
/// that only fail when something allocates from them.
fn interesting_number(rng: &mut SplitMix64, size: usize, current: u64, file_len: usize) -> u64 {
    let wide = [
        0,
        1,
        2,
        3,
        4,
        8,
        9,
        12,
        30,
        31,
        64,
        255,
        0x7FFF_FFFF,
        1 << 31,
        u32::MAX as u64,
        1 << 32,
        1 << 40,
        1 << 62,
        i64::MAX as u64,
        1 << 63,
        u64::MAX - 1,
        u64::MAX,
        current.wrapping_add(1),
        current.wrapping_sub(1),
        current.wrapping_mul(2),
        file_len as u64,
        rng.next_u64(),
    ];
    let value = *rng.pick(&wide);
    match size {
        8 => value,
        _ => value & ((1u64 << (8 * size)) - 1),
    }
}

fn set_field(bytes: &mut [u8], field: Field, value: u64) {
    if field.at + field.size <= bytes.len() {
        bytes[field.at..field.at + field.size].copy_from_slice(&value.to_le_bytes()[..field.size]);
    }
}

fn read_field(bytes: &[u8], field: Field) -> u64 {
    let mut value = [0u8; 8];
    value[..field.size].copy_from_slice(&bytes[field.at..field.at + field.size]);
    u64::from_le_bytes(value)
}

/// One byte-level mutation of `bytes` (whose fields are `fields`, possibly stale after an
/// earlier mutation moved bytes). Returns what it did.
fn mutate_bytes(bytes: &mut Vec<u8>, fields: &[Field], rng: &mut SplitMix64) -> String {
    let len = bytes.len();
    match rng.below(10) {
        0..=3 if !fields.is_empty() => {
            let field = *rng.pick(fields);
            if field.at + field.size > len {
                return "nothing (the field was cut off)".into();
            }
            let value = interesting_number(rng, field.size, read_field(bytes, field), len);
            set_field(bytes, field, value);
            format!("{:?} field at {} set to {value}", field.kind, field.at)
        }
        4 if len > 0 => {
            let at = rng.below(len);
            let bit = rng.below(8);
            bytes[at] ^= 1 << bit;
            format!("bit {bit} of byte {at} flipped")
        }
        5 if len > 0 => {
            let at = rng.below(len);
            let random = rng.next_u64() as u8;
            bytes[at] = *rng.pick(&[0, 1, 0x7F, 0x80, 0xFF, random]);
            format!("byte {at} set to {}", bytes[at])
        }
        6 => {
            // Cut at a field boundary half the time: the reader then stops exactly between items.
            let at = match rng.chance(1, 2) && !fields.is_empty() {
                true => rng.pick(fields).at.min(len),
                false => rng.below(len + 1),
            };
            bytes.truncate(at);
            format!("truncated to {at} bytes")
        }
        7 => {
            let at = rng.below(len + 1);
            let count = 1 + rng.below(16);
            let inserted: Vec<u8> = (0..count).map(|_| rng.next_u64() as u8).collect();
            bytes.splice(at..at, inserted);
            format!("{count} random bytes inserted at {at}")
        }
        8 if len > 0 => {
            let at = rng.below(len);
            let count = 1 + rng.below((len - at).min(64));
            bytes.drain(at..at + count);
            format!("{count} bytes removed at {at}")
        }
        _ if len > 0 => {
            let from = rng.below(len);
            let count = 1 + rng.below((len - from).min(256));
            let to = rng.below(len + 1);
            let chunk = bytes[from..from + count].to_vec();
            bytes.splice(to..to, chunk);
            format!("{count} bytes from {from} copied to {to}")
        }
        _ => "nothing (empty file)".into(),
    }
}

/// Metadata values of every type, at the edges: what a hyper-parameter or id is set to.
fn interesting_value(rng: &mut SplitMix64) -> Value {
    match rng.below(14) {
        0 => Value::U32(*rng.pick(&[0, 1, 2, 3, 7, 31, 33, 64, 1 << 16, 0x7FFF_FFFF, u32::MAX])),
        1 => Value::U64(*rng.pick(&[0, 1, 1 << 31, 1 << 32, 1 << 40, 1 << 62, u64::MAX])),
        2 => Value::I32(*rng.pick(&[-1, 0, 1, i32::MIN, i32::MAX])),
        3 => Value::I64(*rng.pick(&[-1, i64::MIN, i64::MAX])),
        4 => Value::U8(rng.next_u64() as u8),
        5 => Value::I8(rng.next_u64() as i8),
        6 => Value::U16(*rng.pick(&[0, 1, 8, u16::MAX])),
        7 => Value::F32(*rng.pick(&[
            0.0,
            -0.0,
            -1.0,
            1e-30,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
        ])),
        8 => Value::F64(*rng.pick(&[0.0, -1.0, f64::NAN, f64::INFINITY, 1e300])),
        9 => Value::Bool(rng.chance(1, 2)),
        10 => Value::String(rng.text(12)),
        11 => Value::Array(Vec::new()),
        12 => Value::Array((0..rng.below(4)).map(|i| Value::U32(i as u32)).collect()),
        _ => Value::Array(vec![Value::Array(vec![Value::String(rng.text(4))])]),
    }
}

/// Keys the engine reads, `{arch}` standing for the family's name: the metadata mutations aim at
/// these most of the time.
const ENGINE_KEYS: &[&str] = &[
    "general.architecture",
    "general.alignment",
    "{arch}.block_count",
    "{arch}.embedding_length",
    "{arch}.attention.head_count",
    "{arch}.attention.head_count_kv",
    "{arch}.feed_forward_length",
    "{arch}.context_length",
    "{arch}.attention.layer_norm_rms_epsilon",
    "{arch}.attention.layer_norm_epsilon",
    "{arch}.rope.freq_base",
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.add_bos_token",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.unknown_token_id",
];

fn engine_key(key: &str, family: Family) -> String {
    key.replace("{arch}", family.name())
}

/// Whether `value` may go into the GGUF array `items`: arrays hold one type, and candle's writer
/// refuses mixed ones.
fn fits(items: &[Value], value: &Value) -> bool {
    items.first().is_none_or(|first| first.value_type() == value.value_type())
}

/// One mutation of the tokenizer's metadata. Returns what it did.
fn mutate_tokenizer(parts: &mut GgufParts, rng: &mut SplitMix64) -> String {
    let vocab = parts.array_mut("tokenizer.ggml.tokens").map_or(0, |t| t.len());
    match rng.below(12) {
        0 | 1 if vocab > 0 => {
            let at = rng.below(vocab);
            let spelling = match rng.below(7) {
                0 => String::new(),
                1 => rng.text(6),
                2 => String::from_utf8_lossy(&rng.bytes(6)).into_owned(),
                3 => match &parts
                    .metadata
                    .iter()
                    .find(|(k, _)| k == "tokenizer.ggml.tokens")
                    .unwrap()
                    .1
                {
                    Value::Array(tokens) => {
                        tokens[rng.below(vocab)].to_string().cloned().unwrap_or_default()
                    }
                    _ => unreachable!("the tokens are an array"),
                },
                4 => "x".repeat(10_000),
                5 => format!("<|{}|>", rng.text(4)),
                _ => " ".into(),
            };
            let tokens = parts.array_mut("tokenizer.ggml.tokens").unwrap();
            let value = Value::String(spelling.clone());
            if !fits(tokens, &value) {
                return "nothing (the array holds another type)".into();
            }
            tokens[at] = value;
            format!("token {at} spelled {spelling:?}")
        }
        2 if vocab > 0 => {
            let tokens = parts.array_mut("tokenizer.ggml.tokens").unwrap();
            match rng.chance(1, 2) {
                true => {
                    tokens.pop();
                    "last token removed".into()
                }
                false => {
                    let value = Value::String("extra".into());
                    if !fits(tokens, &value) {
                        return "nothing (the array holds another type)".into();
                    }
                    tokens.push(value);
                    "a token appended".into()
                }
            }
        }
        3 => {
            let key = "tokenizer.ggml.token_type";
            let Some(types) = parts.array_mut(key) else {
                return "nothing (no token types)".into();
            };
            match rng.below(4) {
                0 => {
                    types.pop();
                    "one token type fewer than tokens".into()
                }
                1 => {
                    if !fits(types, &Value::I32(1)) {
                        return "nothing (the array holds another type)".into();
                    }
                    types.push(Value::I32(1));
                    "one token type more than tokens".into()
                }
                2 if !types.is_empty() => {
                    let at = rng.below(types.len());
                    let value = *rng.pick(&[-1, 0, 2, 3, 4, 5, 6, 7, i32::MIN, i32::MAX]);
                    if !fits(types, &Value::I32(value)) {
                        return "nothing (the array holds another type)".into();
                    }
                    types[at] = Value::I32(value);
                    format!("token {at} typed {value}")
                }
                _ => {
                    let n = types.len();
                    *types = (0..n).map(|_| Value::U8(3)).collect();
                    "token types stored as u8".into()
                }
            }
        }
        4 | 5 => {
            let Some(merges) = parts.array_mut("tokenizer.ggml.merges") else {
                return "nothing (no merges)".into();
            };
            let merge = match rng.below(8) {
                0 => "zz qq".to_string(),
                1 => "nospace".into(),
                2 => String::new(),
                3 => " ".into(),
                4 => "h  e".into(),
                5 => " h".into(),
                6 => "t h".into(), // both sides known, their join "th" is not a token
                _ => rng.text(5),
            };
            let at = rng.below(merges.len() + 1);
            let value = Value::String(merge.clone());
            if !fits(merges, &value) {
                return "nothing (the array holds another type)".into();
            }
            merges.insert(at, value);
            format!("merge {merge:?} inserted at {at}")
        }
        6 => {
            let name = rng
                .pick(&["smollm", "llama-bpe", "qwen2", "", "default", "gpt-2", "\u{0}"])
                .to_string();
            parts.set("tokenizer.ggml.pre", Value::String(name.clone()));
            format!("pre-tokenizer {name:?}")
        }
        7 => {
            let name = rng.pick(&["llama", "", "gpt2 ", "bert"]).to_string();
            parts.set("tokenizer.ggml.model", Value::String(name.clone()));
            format!("tokenizer model {name:?}")
        }
        8 | 9 => {
            let key = *rng.pick(&[
                "tokenizer.ggml.bos_token_id",
                "tokenizer.ggml.eos_token_id",
                "tokenizer.ggml.padding_token_id",
                "tokenizer.ggml.unknown_token_id",
            ]);
            let id = *rng.pick(&[0, vocab as u64, 1 << 32, 1 << 40, u64::MAX]);
            parts.set(key, Value::U64(id));
            parts.set("tokenizer.ggml.add_bos_token", Value::Bool(rng.chance(3, 4)));
            format!("{key} = {id}")
        }
        10 => {
            let key = *rng.pick(&[
                "tokenizer.ggml.tokens",
                "tokenizer.ggml.merges",
                "tokenizer.ggml.token_type",
            ]);
            let value = interesting_value(rng);
            let shown = format!("{key} = {value:?}");
            parts.set(key, value);
            shown
        }
        _ => {
            // GGUF arrays hold one type: the whole list is numbers.
            let Some(tokens) = parts.array_mut("tokenizer.ggml.tokens") else {
                return "nothing (no tokens)".into();
            };
            let n = tokens.len();
            *tokens = (0..n as u32).map(Value::U32).collect();
            "tokens stored as numbers".into()
        }
    }
}

/// A size the model's metadata and its tensors' shapes agree on, changed in both at once (the
/// tensors' dimension fields are patched after writing): only such a consistent change gets past
/// the shape checks to what the loader allocates from the size.
struct Resize {
    old: u64,
    new: u64,
}

/// Every tensor dimension equal to `resize.old` set to `resize.new`.
fn apply_resize(bytes: &mut [u8], resize: &Resize) {
    for field in fields(bytes) {
        if field.kind == FieldKind::Dim && read_field(bytes, field) == resize.old {
            set_field(bytes, field, resize.new);
        }
    }
}

/// One structural mutation (metadata or tensor list). Returns what it did, and a resize to apply
/// to the written file.
fn mutate_parts(
    base: &Base,
    parts: &mut GgufParts,
    rng: &mut SplitMix64,
) -> (String, Option<Resize>) {
    let config = tiny_config(base.family);
    match rng.below(10) {
        0 | 1 => {
            let key = match rng.chance(3, 4) {
                true => engine_key(rng.pick::<&str>(ENGINE_KEYS), base.family),
                false => rng.text(8),
            };
            let value = interesting_value(rng);
            let shown = format!("metadata {key:?} = {value:?}");
            parts.set(&key, value);
            (shown, None)
        }
        2 if !parts.metadata.is_empty() => {
            let (key, _) = parts.metadata.remove(rng.below(parts.metadata.len()));
            (format!("metadata {key:?} removed"), None)
        }
        3 => {
            let alignment = *rng.pick(&[0u32, 1, 3, 7, 8, 64, 1 << 31, u32::MAX]);
            parts.set("general.alignment", Value::U32(alignment));
            (format!("alignment {alignment}"), None)
        }
        4 if !parts.tensors.is_empty() => {
            let at = rng.below(parts.tensors.len());
            match rng.below(3) {
                0 => (format!("tensor {} removed", parts.tensors.remove(at).0), None),
                1 => {
                    let other = parts.tensors[rng.below(parts.tensors.len())].0.clone();
                    let shown = format!("tensor {} renamed {other}", parts.tensors[at].0);
                    parts.tensors[at].0 = other;
                    (shown, None)
                }
                _ => {
                    let (name, tensor) = rng.pick(&base.requantized).clone();
                    let shown = format!("tensor {name} stored as {:?}", tensor.dtype());
                    match parts.tensors.iter_mut().find(|(n, _)| *n == name) {
                        Some(slot) => slot.1 = tensor,
                        None => parts.tensors.push((name, tensor)),
                    }
                    (shown, None)
                }
            }
        }
        5 | 6 => {
            // Widths up to 2^62 so row sizes overflow; 0 so tensors are empty.
            let new = *rng.pick(&[0u64, 1, 16, 33, 1 << 31, 1 << 40, 1 << 62, u64::MAX]);
            let (key, old) = *rng.pick(&[
                ("{arch}.embedding_length", config.width),
                ("{arch}.feed_forward_length", config.hidden),
                ("{arch}.attention.head_count", config.heads),
                ("{arch}.context_length", config.context_length),
            ]);
            let key = engine_key(key, base.family);
            parts.set(&key, Value::U64(new));
            (
                format!("{key} and the tensor dimensions of {old} resized to {new}"),
                Some(Resize { old: old as u64, new }),
            )
        }
        7 => {
            // The vocabulary, resized in the token list, the token types and the tensors.
            let old = parts.array_mut("tokenizer.ggml.tokens").map_or(0, |t| t.len());
            let new = *rng.pick(&[0usize, 1, 2, 256]);
            for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.token_type"] {
                if let Some(items) = parts.array_mut(key) {
                    items.truncate(new);
                }
            }
            (
                format!("vocabulary of {old} cut to {new}"),
                Some(Resize { old: old as u64, new: new as u64 }),
            )
        }
        8 => {
            let layers = *rng.pick(&[0u64, 2, 1 << 20, 1 << 40, u64::MAX]);
            parts.set(&engine_key("{arch}.block_count", base.family), Value::U64(layers));
            (format!("block count {layers}"), None)
        }
        _ => (mutate_tokenizer(parts, rng), None),
    }
}

/// A valid tiny model of one family, the starting point of mutations.
struct Base {
    family: Family,
    parts: GgufParts,
    bytes: Vec<u8>,
    fields: Vec<Field>,
    /// Its tensors in other encodings.
    requantized: Vec<(String, Arc<QTensor>)>,
}

impl Base {
    fn new(family: Family) -> Self {
        let bytes = tiny_model(family, tiny_config(family)).bytes;
        let parts = GgufParts::read(&bytes);
        let encodings = [
            GgmlDType::F16,
            GgmlDType::BF16,
            GgmlDType::Q8_0,
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q5_0,
        ];
        let mut requantized = Vec::new();
        for (name, tensor) in &parts.tensors {
            let dense = tensor.dequantize(&Device::Cpu).expect("dequantizes");
            let cols = *dense.dims().last().expect("tensors have a dimension");
            for encoding in encodings.iter().filter(|e| cols % e.block_size() == 0) {
                requantized.push((
                    name.clone(),
                    Arc::new(QTensor::quantize(&dense, *encoding).expect("quantizes")),
                ));
            }
        }
        let fields = fields(&bytes);
        Self { family, parts, bytes, fields, requantized }
    }
}

/// GGUF cases: structural mutations written by candle's writer, then byte-level mutations on
/// top (field values, bit flips, truncation, insertions, deletions, copies), starting from a tiny
/// model of each family.
struct GgufMutator {
    bases: Vec<Base>,
}

impl GgufMutator {
    fn new() -> Self {
        Self {
            bases: [Family::Llama, Family::Qwen2, Family::Gpt2]
                .into_iter()
                .map(Base::new)
                .collect(),
        }
    }

    fn case(&self, rng: &mut SplitMix64) -> Case<Vec<u8>> {
        let base = rng.pick(&self.bases);
        let mut what = vec![base.family.name().to_string()];
        let (mut bytes, fields) = match rng.chance(1, 2) {
            true => {
                let mut parts = base.parts.clone();
                let mut resizes = Vec::new();
                for _ in 0..1 + rng.below(3) {
                    let (done, resize) = mutate_parts(base, &mut parts, rng);
                    what.push(done);
                    resizes.extend(resize);
                }
                let mut bytes = parts.write();
                for resize in &resizes {
                    apply_resize(&mut bytes, resize);
                }
                let fields = fields(&bytes);
                (bytes, fields)
            }
            false => (base.bytes.clone(), base.fields.clone()),
        };
        let byte_mutations = match what.len() {
            1 => 1 + rng.below(4),
            _ => rng.below(3),
        };
        for _ in 0..byte_mutations {
            what.push(mutate_bytes(&mut bytes, &fields, rng));
        }
        Case { what: what.join("; "), size: bytes.len(), input: bytes }
    }
}

/// Parses and loads a GGUF file; a model that loads must also run a forward and a backward pass
/// (damaged weights may make every number NaN: that is the file's content, not a failure).
/// Errors are fine, as long as they say something; panics are not.
#[allow(clippy::ptr_arg)] // the runner hands every target a reference to its case
fn load_gguf(bytes: &Vec<u8>) -> Result<(), String> {
    if let Ok(file) = GgufFile::parse(Arc::new(bytes.clone())) {
        for family in [Family::Llama, Family::Qwen2, Family::Gpt2] {
            for key in ENGINE_KEYS.iter().map(|key| engine_key(key, family)) {
                let _ = (
                    file.usize(&key),
                    file.string(&key),
                    file.f64(&key),
                    file.array(&key),
                    file.bool_or(&key, true),
                );
            }
        }
    }
    let model = match Model::load(bytes.clone()) {
        Ok(model) => model,
        Err(e) => return non_empty_message(e.to_string()),
    };
    let gradient = async {
        let context = RunContext::default();
        let problem =
            Problem::new(&model, "the hat", &TargetSpec::top(), Some(16), &context).await?;
        problem.input_gradient().await
    };
    match now(gradient) {
        Ok(_) => Ok(()),
        Err(e) => non_empty_message(e.to_string()),
    }
}

fn non_empty_message(message: String) -> Result<(), String> {
    match message.trim().is_empty() {
        true => Err("an error with an empty message".into()),
        false => Ok(()),
    }
}

#[test]
fn gguf_parsing_and_loading_survive_hostile_files() {
    let _serial = serial();
    let mutator = GgufMutator::new();
    let sample = mutator.bases[0].bytes.clone();
    assert_runner_catches(move || sample.clone(), load_gguf);
    run_target("gguf", memory_bound, |rng| mutator.case(rng), load_gguf);
}

// ---------------------------------------------------------------------------------------------
// Share links

/// A page state like the one the page shares: text, settings, an enum, options, vectors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CodecState {
    text: String,
    method: String,
    target: Option<CodecTarget>,
    steps: u32,
    sigma: f64,
    scores: Vec<f32>,
    tags: std::collections::BTreeMap<String, i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum CodecTarget {
    Top,
    Id(u32),
    Text { text: String, foil: Option<String> },
}

/// Deflate of `json`, as a v1 link.
fn link_of_json(json: &[u8]) -> String {
    use base64::Engine;
    let packed = miniz_oxide::deflate::compress_to_vec(json, 6);
    format!("v1.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(packed))
}

/// JSON-looking text: valid pieces in random order, so most of it is malformed in a new way.
fn json_soup(rng: &mut SplitMix64) -> String {
    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"text\"",
        "\"method\"",
        "\"steps\"",
        "\"scores\"",
        "\"target\"",
        "\"Top\"",
        "{\"Id\":",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "\"\\",
        "1",
        "-0",
        "1e999",
        "-1e-999",
        "18446744073709551616",
        "0.1e",
        "NaN",
        "null",
        "true",
        "nul",
        "\u{FEFF}",
        " ",
        "\"é\u{1F642}\"",
    ];
    (0..rng.below(40)).map(|_| *rng.pick(PIECES)).collect()
}

/// JSON nested `depth` deep in arrays or objects.
fn nested_json(depth: usize, objects: bool) -> String {
    let (open, close) = if objects { ("{\"a\":", "}") } else { ("[", "]") };
    format!("{}0{}", open.repeat(depth), close.repeat(depth))
}

/// How a share-link case must turn out, beyond not panicking.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Anything,
    /// Nesting within serde_json's recursion limit (128) parses.
    Parses,
    /// Nesting past it is refused.
    Refused,
}

struct ShareCase {
    link: String,
    expect: Expect,
}

fn share_case(rng: &mut SplitMix64, valid_links: &[String]) -> Case<ShareCase> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut expect = Expect::Anything;
    let (what, link) = match rng.below(9) {
        0 => ("random text".to_string(), rng.text(200)),
        1 => ("\"v1.\" and random text".into(), format!("v1.{}", rng.text(100))),
        2 => {
            let mut link = rng.pick(valid_links).clone().into_bytes();
            let mut what = vec!["a valid link".to_string()];
            for _ in 0..1 + rng.below(4) {
                if link.is_empty() {
                    break;
                }
                let at = rng.below(link.len());
                match rng.below(4) {
                    0 => {
                        link[at] = *rng.pick(b"AZaz09-_.=+/ ");
                        what.push(format!("char {at} replaced"));
                    }
                    1 => {
                        link.truncate(at);
                        what.push(format!("cut to {at}"));
                    }
                    2 => {
                        link.remove(at);
                        what.push(format!("char {at} removed"));
                    }
                    _ => {
                        link.insert(at, *rng.pick(b"A_-="));
                        what.push(format!("char inserted at {at}"));
                    }
                }
            }
            (what.join(", "), String::from_utf8(link).expect("ASCII stays ASCII"))
        }
        3 => {
            let tag = *rng.pick(&[
                "v0",
                "v2",
                "v01",
                "V1",
                "v1 ",
                "",
                "v1.v1",
                "v18446744073709551617",
                "v-1",
            ]);
            (format!("version tag {tag:?}"), format!("{tag}.{}", &rng.pick(valid_links)[3..]))
        }
        4 => ("base64 of random bytes".into(), format!("v1.{}", b64.encode(rng.bytes(300)))),
        5 => {
            let json = json_soup(rng);
            (format!("deflated JSON soup {json:?}"), link_of_json(json.as_bytes()))
        }
        6 => {
            let depth = *rng.pick(&[1, 64, 100, 127, 129, 200, 1000, 100_000]);
            let objects = rng.chance(1, 2);
            expect = match depth {
                0..=100 => Expect::Parses,
                200.. => Expect::Refused,
                _ => Expect::Anything,
            };
            (
                format!("JSON nested {depth} deep"),
                link_of_json(nested_json(depth, objects).as_bytes()),
            )
        }
        7 => {
            let number = match rng.below(4) {
                0 => "1".repeat(1 + rng.below(20_000)),
                1 => format!("1e{}", rng.next_u64()),
                2 => format!("-0.{}1", "0".repeat(rng.below(20_000))),
                _ => format!("{}.{}", u128::MAX, "9".repeat(rng.below(1000))),
            };
            let json = match rng.chance(1, 2) {
                true => number.clone(),
                false => format!("{{\"steps\":{number},\"sigma\":{number},\"scores\":[{number}]}}"),
            };
            (format!("a number of {} chars", number.len()), link_of_json(json.as_bytes()))
        }
        _ => {
            // Around the inflate cap: just under it inflates, just over it must stop there.
            let len = MAX_JSON_BYTES - 2 + rng.below(5);
            (
                format!("a deflated string of {len} bytes"),
                link_of_json(format!("\"{}\"", "a".repeat(len - 2)).as_bytes()),
            )
        }
    };
    Case { what, size: link.len(), input: ShareCase { link, expect } }
}

/// Decodes as JSON and as a typed state. Every error reads as a share-link message; nesting
/// within serde_json's limit parses and beyond it is refused; a decoded value re-encodes to a
/// link that decodes to the same value.
fn decode_link(case: &ShareCase) -> Result<(), String> {
    let value = link::decode::<serde_json::Value>(&case.link);
    let typed = link::decode::<CodecState>(&case.link);
    for message in [
        value.as_ref().err().map(LinkError::to_string),
        typed.as_ref().err().map(LinkError::to_string),
    ]
    .into_iter()
    .flatten()
    {
        if !message.starts_with("This share link cannot be opened") {
            return Err(format!("an error message that does not say what failed: {message}"));
        }
    }
    match (case.expect, &value) {
        (Expect::Parses, Err(e)) => {
            return Err(format!("JSON nested within the limit refused: {e}"))
        }
        (Expect::Refused, Ok(_)) => {
            return Err("JSON nested past the recursion limit parsed".into())
        }
        _ => {}
    }
    if let Ok((value, _)) = &value {
        let again =
            link::decode::<serde_json::Value>(&link::encode(value)).map_err(|e| e.to_string())?;
        if again.0 != *value {
            return Err("a decoded value did not survive encode → decode".into());
        }
    }
    if let Ok((state, _)) = &typed {
        let again = link::decode::<CodecState>(&link::encode(state)).map_err(|e| e.to_string())?;
        if again.0 != *state {
            return Err(format!("a decoded state did not survive encode → decode: {state:?}"));
        }
    }
    Ok(())
}

/// Memory bound for share links: a small link may inflate to `MAX_JSON_BYTES` of JSON, so the
/// bound is on that, not on the link.
fn share_memory_bound(link_len: usize) -> usize {
    memory_bound(link_len + MAX_JSON_BYTES)
}

#[test]
fn share_link_decoding_survives_hostile_links() {
    let _serial = serial();
    let mut rng = SplitMix64::new(3);
    let valid_links: Vec<String> = (0..16)
        .map(|i| {
            let state = CodecState {
                text: rng.text(40),
                method: "saliency".into(),
                target: Some(CodecTarget::Text { text: rng.text(3), foil: None }),
                steps: i,
                sigma: rng.finite_f64(),
                scores: (0..rng.below(20)).map(|_| rng.unit() as f32).collect(),
                tags: [(rng.text(3), i as i64)].into_iter().collect(),
            };
            link::encode(&state)
        })
        .collect();
    let sample = valid_links[0].clone();
    assert_runner_catches(
        move || ShareCase { link: sample.clone(), expect: Expect::Parses },
        decode_link,
    );
    run_target("share", share_memory_bound, |rng| share_case(rng, &valid_links), decode_link);
}

// ---------------------------------------------------------------------------------------------
// The tokenizer

enum TokenizerCase {
    /// A GGUF file with mutated tokenizer metadata, and texts to tokenize if it loads.
    Metadata { file: Vec<u8>, texts: Vec<String> },
    /// A text for one of the valid tokenizers.
    Text { tokenizer: usize, text: String },
}

fn tokenizer_of(bytes: Vec<u8>) -> salient::engine::Result<TextTokenizer> {
    TextTokenizer::from_gguf(&GgufFile::parse(Arc::new(bytes))?)
}

#[test]
fn tokenizers_from_hostile_metadata_and_texts_survive() {
    let _serial = serial();
    let llama = Base::new(Family::Llama);
    let mut llama3 = llama.parts.clone();
    llama3.set("tokenizer.ggml.pre", Value::String("llama-bpe".into()));
    llama3.metadata.retain(|(key, _)| key != "tokenizer.ggml.add_bos_token"); // llama-bpe then adds BOS
    llama3.set(
        "tokenizer.ggml.bos_token_id",
        Value::U32(tiny_model(Family::Llama, tiny_config(Family::Llama)).end_of_text_id()),
    );
    // Every pre-tokenizer: GPT-2's, Qwen2's and Llama 3's regex splits on tiny vocabularies, and
    // the default model's SmolLM tokenizer (digits split) on its real one.
    let valid = Arc::new([
        tokenizer_of(llama.bytes.clone()).expect("the tiny llama's tokenizer builds"),
        tokenizer_of(Base::new(Family::Qwen2).bytes).expect("the tiny qwen2's tokenizer builds"),
        tokenizer_of(llama3.write()).expect("a llama-bpe tokenizer builds"),
        tokenizer_of(common::model_bytes()).expect("the default model's tokenizer builds"),
    ]);
    let tokenizers = valid.len();
    let check = move |case: &TokenizerCase| match case {
        TokenizerCase::Metadata { file, texts } => match tokenizer_of(file.clone()) {
            Ok(tokenizer) => {
                for text in texts {
                    // Mutated vocabularies may not cover every text: errors are fine, panics not.
                    let _ = (
                        tokenizer.tokenize(text),
                        tokenizer.single_token(text),
                        tokenizer.pad_token(),
                    );
                }
                Ok(())
            }
            Err(e) => non_empty_message(e.to_string()),
        },
        TokenizerCase::Text { tokenizer, text } => {
            check_spelling(&valid[*tokenizer], text).map(drop)
        }
    };
    let sample_file = llama.bytes.clone();
    assert_runner_catches(
        move || TokenizerCase::Metadata {
            file: sample_file.clone(),
            texts: vec!["the hat".into()],
        },
        check.clone(),
    );
    let generate = |rng: &mut SplitMix64| match rng.chance(1, 2) {
        true => {
            let mut parts = llama.parts.clone();
            let what: Vec<String> =
                (0..1 + rng.below(3)).map(|_| mutate_tokenizer(&mut parts, rng)).collect();
            let file = parts.write();
            let texts = (0..3).map(|_| rng.text(30)).collect();
            Case {
                what: what.join("; "),
                size: file.len(),
                input: TokenizerCase::Metadata { file, texts },
            }
        }
        false => {
            let tokenizer = rng.below(tokenizers);
            let text = match rng.chance(1, 4) {
                true => String::from_utf8_lossy(&rng.text_bytes(60)).into_owned(),
                false => rng.text(60),
            };
            Case {
                what: format!("tokenizer {tokenizer}, text {text:?}"),
                size: text.len(),
                input: TokenizerCase::Text { tokenizer, text },
            }
        }
    };
    run_target("tokenizer", memory_bound, generate, check);
}

// ---------------------------------------------------------------------------------------------
// The page's state, from outside to what the views compute

/// The three ways a result reaches the page from outside: a link's state (with its snapshot), an
/// exported file, and a run's output as the worker posts it (checked the same way).
#[derive(Clone, Copy, Debug)]
enum PageForm {
    Link,
    Saved,
    Output,
}

struct PageCase {
    form: PageForm,
    /// The link's payload, or the file's JSON.
    data: String,
}

fn token(rng: &mut SplitMix64, id: u32) -> Token {
    let text = rng.text(4);
    Token { id, byte_len: text.len(), text, special: false }
}

fn prediction(rng: &mut SplitMix64, id: u32) -> Prediction {
    Prediction { id, text: rng.text(3), prob: rng.unit() as f32 }
}

/// A result as the engine makes one: any method, a continuation, a faithfulness report.
fn valid_output(rng: &mut SplitMix64) -> RunOutput {
    let method = *rng.pick(METHODS);
    let signed = method.signed();
    let score = |rng: &mut SplitMix64| match signed {
        true => rng.unit() as f32 * 2.0 - 1.0,
        false => rng.unit() as f32,
    };
    let n = 1 + rng.below(30);
    let tokens: Vec<Token> = (0..n).map(|i| token(rng, 100 + i as u32)).collect();
    let scores = (0..n).map(|_| score(rng)).collect();
    let continuation = rng.chance(1, 2).then(|| {
        let extra: Vec<Token> = (0..1 + rng.below(6)).map(|i| token(rng, 900 + i as u32)).collect();
        let rows = (0..extra.len())
            .map(|j| ContinuationRow {
                target: Prediction { id: extra[j].id, ..prediction(rng, 0) },
                scores: (0..n + j).map(|_| score(rng)).collect(),
            })
            .collect();
        Continuation { tokens: [tokens.clone(), extra].concat(), output_start: n, rows }
    });
    let faithfulness = rng.chance(1, 2).then(|| Faithfulness {
        deletion_curve: (0..=10).map(|k| (k as f32 / 10.0, rng.unit())).collect(),
        comprehensiveness: rng.unit() - 0.5,
        sufficiency: rng.unit() - 0.5,
        random_comprehensiveness: rng.unit() - 0.5,
        random_sufficiency: rng.unit() - 0.5,
    });
    let chosen: Vec<_> = METHODS.iter().filter(|_| rng.chance(1, 3)).collect();
    let compared: Vec<MethodScores> = chosen
        .into_iter()
        .map(|m| MethodScores {
            method: m.name().into(),
            signed: m.signed(),
            scores: (0..n)
                .map(|_| if m.signed() { rng.unit() as f32 - 0.5 } else { rng.unit() as f32 })
                .collect(),
        })
        .collect();
    let agreements = compared
        .iter()
        .enumerate()
        .flat_map(|(i, a)| compared[i + 1..].iter().map(move |b| (a, b)))
        .map(|(a, b)| Agreement { a: a.method.clone(), b: b.method.clone(), spearman: Some(0.5) })
        .collect();
    RunOutput {
        attribution: Attribution {
            tokens,
            target: prediction(rng, 7),
            foil: rng.chance(1, 3).then(|| prediction(rng, 8)),
            target_kind: TargetKind::Prob,
            value: rng.unit(),
            top_k: (0..5).map(|i| prediction(rng, i)).collect(),
            method: method.name().into(),
            params: MethodParams::default(),
            signed,
            scores,
            completeness_error: rng.chance(1, 3).then(|| rng.unit()),
            path_gradients: rng.chance(1, 3).then(|| rng.below(32)),
            standard_errors: rng.chance(1, 3).then(|| (0..n).map(|_| rng.unit() as f32).collect()),
            evaluations: rng.chance(1, 3).then(|| rng.below(16384)),
            faithfulness,
            continuation,
            backend: if rng.chance(1, 2) { BackendKind::Cpu } else { BackendKind::Gpu },
        },
        baseline_value: rng.chance(1, 3).then(|| rng.unit()),
        compared,
        agreements,
    }
}

fn valid_settings(rng: &mut SplitMix64) -> Settings {
    Settings {
        text: rng.text(40),
        method: rng.pick(METHODS).name().into(),
        compare: METHODS.iter().filter(|_| rng.chance(1, 3)).map(|m| m.name().into()).collect(),
        continuation: rng.text(10),
        ..Settings::default()
    }
}

/// A hostile JSON value for one place in a page state.
fn hostile_json(rng: &mut SplitMix64, current: &serde_json::Value) -> (String, serde_json::Value) {
    use serde_json::{json, Value};
    let value = match rng.below(12) {
        0 => json!(-1),
        1 => json!(u64::MAX),
        2 => json!(1e308),
        3 => json!(-1e-300),
        4 => json!(""),
        5 => Value::String("é".repeat(1 + rng.below(3000))),
        6 => Value::String(rng.text(20)),
        7 => Value::Null,
        8 => json!([]),
        9 => json!({}),
        10 => match current {
            // Many copies of an element: lists past every bound, repeats to deduplicate.
            Value::Array(items) if !items.is_empty() => {
                let item = items[rng.below(items.len())].clone();
                Value::Array(vec![item; 1 + rng.below(1500)])
            }
            _ => json!(0.5),
        },
        _ => match current {
            Value::Array(items) if !items.is_empty() => {
                let mut items = items.clone();
                items.truncate(rng.below(items.len()));
                Value::Array(items)
            }
            Value::Number(n) => json!(-n.as_f64().unwrap_or(0.0)),
            _ => json!(true),
        },
    };
    (format!("{}", value).chars().take(60).collect(), value)
}

/// Every JSON pointer in `value`.
fn pointers(value: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                pointers(item, format!("{at}/{i}"), out);
            }
        }
        serde_json::Value::Object(fields) => {
            for (key, item) in fields {
                pointers(item, format!("{at}/{key}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn mutate_json(rng: &mut SplitMix64, mut value: serde_json::Value) -> (String, serde_json::Value) {
    let mut what = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let mut all = Vec::new();
        pointers(&value, String::new(), &mut all);
        let at = rng.pick(&all).clone();
        let Some(place) = value.pointer_mut(&at) else { continue };
        let (shown, hostile) = hostile_json(rng, place);
        *place = hostile;
        what.push(format!("{at} = {shown}"));
    }
    (what.join("; "), value)
}

fn page_case(rng: &mut SplitMix64) -> Case<PageCase> {
    let output = valid_output(rng);
    let settings = valid_settings(rng);
    let (form, value) = match rng.below(3) {
        0 => {
            let state = SharedState {
                model: serde_json::from_value(serde_json::json!({ "url": { "url": "models/m.gguf", "sha256": "ab".repeat(32), "bytes": 1 } })).unwrap(),
                settings: settings.clone(),
                snapshot: Some(Snapshot::of(&output.attribution)),
                report: None,
            };
            (PageForm::Link, serde_json::to_value(state).unwrap())
        }
        1 => {
            let saved = SavedResult {
                salient: "0".into(),
                model: SavedModel {
                    name: "m".into(),
                    sha256: "ab".repeat(32),
                    bytes: 1,
                    url: None,
                },
                settings,
                result: output.attribution,
                baseline_value: output.baseline_value,
            };
            (PageForm::Saved, serde_json::to_value(saved).unwrap())
        }
        _ => (PageForm::Output, serde_json::to_value(output).unwrap()),
    };
    let (what, value) = match rng.chance(1, 8) {
        true => ("unchanged".into(), value),
        false => mutate_json(rng, value),
    };
    let json = serde_json::to_string(&value).unwrap();
    let data = match form {
        PageForm::Link => link_of_json(json.as_bytes()),
        _ => json,
    };
    Case { what: format!("{form:?}: {what}"), size: data.len(), input: PageCase { form, data } }
}

/// The map drawn on the editor: for the text it was computed for, the page's text (anything a
/// link holds) and edits of it, the pieces hold exactly the editor's text, each span one of the
/// map's units.
fn editor_shading(map: &TokenMap, units: &[Unit], page_text: &str) -> Result<(), String> {
    let computed = spelled(&map.tokens);
    let edits = [
        computed.clone(),
        page_text.to_string(),
        format!("é{computed}"),
        computed.chars().skip(1).collect(),
        computed.chars().rev().collect(),
    ];
    for text in edits {
        let drawn = pieces(&text, &computed, &map.tokens, units);
        if drawn.iter().map(|p| p.text.as_str()).collect::<String>() != text {
            return Err("the editor's shading does not hold the editor's text".into());
        }
        if drawn.iter().any(|p| p.unit.is_some_and(|k| k >= units.len())) {
            return Err("the editor's shading names a unit the map does not have".into());
        }
    }
    Ok(())
}

/// What every view computes from a checked result, with the invariants the views rely on: each
/// shown map (the next-token map, each continuation row, one past the last) has one score per
/// token, its spans cover every token once in order under every grouping, colours stay on the
/// scale, the matrix's rows fit its columns, compared maps group like the main one, the exports
/// write, and a result compared with itself is the same.
fn view_everything(output: &Checked<RunOutput>, settings: &Settings) -> Result<(), String> {
    let a = &output.attribution;
    let rows = a.continuation.as_ref().map_or(0, |c| c.rows.len());
    let mut maps: Vec<TokenMap> =
        (0..=rows + 1).map(|j| shown_map(output, j.checked_sub(1)).map).collect();
    maps.extend(output.compared.iter().map(|c| TokenMap {
        tokens: a.tokens.clone(),
        scores: c.scores.clone(),
        signed: c.signed,
        errors: None,
    }));
    for map in &maps {
        if map.tokens.len() != map.scores.len() {
            return Err(format!("{} tokens, {} scores", map.tokens.len(), map.scores.len()));
        }
        for granularity in Granularity::ALL {
            for reduce in Reduce::ALL {
                for normalisation in Normalisation::ALL {
                    let view = ViewSettings {
                        granularity,
                        reduce,
                        normalisation,
                        ..settings.view.clone()
                    };
                    let (units, scale) = units(map, &view);
                    let mut next = 0;
                    for unit in &units {
                        if unit.first != next || unit.last < unit.first {
                            return Err(format!("spans skip or overlap at token {next}"));
                        }
                        next = unit.last + 1;
                        let norm = scale.norm(unit.score);
                        if !(-1.0..=1.0).contains(&norm) {
                            return Err(format!("a colour off the scale: {norm}"));
                        }
                        let _ = scale.colour(unit.score);
                        if map.errors.is_some()
                            != unit.error.is_some_and(|e| e.is_finite() && e >= 0.0)
                        {
                            return Err(format!("a span's standard error: {:?}", unit.error));
                        }
                    }
                    if next != map.tokens.len() {
                        return Err(format!("spans cover {next} of {} tokens", map.tokens.len()));
                    }
                    editor_shading(map, &units, &settings.text)?;
                    let _ = (scale.ticks(), scale.gradient());
                }
            }
        }
        let _ = spelled(&map.tokens);
    }
    if let Some(m) = matrix(output) {
        if m.rows.iter().any(|r| r.scores.len() > m.columns.len()) {
            return Err("a matrix row longer than its columns".into());
        }
    }
    let scale = Scale::new(&a.scores, a.signed, &settings.view);
    let shown = Shown::new(a, scale, Some("m"));
    let svg_text = svg(&shown).0;
    // XML 1.0's characters: no C0 control but tab, newline and return; no U+FFFE or U+FFFF.
    let xml_char = |c: char| !matches!(c, '\0'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}');
    if !svg_text.chars().all(xml_char) {
        return Err("the SVG holds a character XML forbids".into());
    }
    let _ = (csv(&shown), html(&shown));
    match compare_recomputed(a, a, 0.0) {
        Recomputed::Same { .. } => Ok(()),
        other => Err(format!("a result differs from itself: {other:?}")),
    }
}

/// Settings within the page's bounds, whatever the link asked for.
fn settings_bounded(s: &Settings) -> Result<(), String> {
    let known = |m: &String| METHODS.iter().any(|r| r.name() == m);
    let p = &s.params;
    let ok = known(&s.method)
        && s.compare.iter().all(known)
        && s.compare.windows(2).all(|w| w[0] != w[1])
        && s.compare.len() <= METHODS.len()
        && (MIN_STEPS..=MAX_STEPS).contains(&p.steps)
        && (1..=MAX_SAMPLES).contains(&p.samples)
        && p.sigma.is_finite()
        && s.view.intensity.is_finite()
        && s.text.len() <= MAX_TEXT_BYTES
        && s.continuation.len() <= MAX_TEXT_BYTES;
    ok.then_some(()).ok_or_else(|| format!("settings past the bounds: {s:?}"))
}

fn open_page_state(case: &PageCase) -> Result<(), String> {
    let shown = match case.form {
        PageForm::Link => match open_link(&case.data) {
            Err(e) => return non_empty_message(e.to_string()),
            Ok((state, _)) => {
                settings_bounded(&state.settings)?;
                match state.snapshot.map(|s| s.output(&state.settings.params)) {
                    Some(Ok(output)) => Some((output, state.settings)),
                    Some(Err(e)) => return non_empty_message(e.to_string()),
                    None => None,
                }
            }
        },
        PageForm::Saved => match serde_json::from_str::<SavedResult>(&case.data) {
            Err(e) => return non_empty_message(e.to_string()),
            Ok(saved) => {
                settings_bounded(&saved.settings)?;
                match saved.output() {
                    Ok(output) => Some((output, saved.settings)),
                    Err(e) => return non_empty_message(e.to_string()),
                }
            }
        },
        PageForm::Output => match serde_json::from_str::<RunOutput>(&case.data).map(check) {
            Err(e) => return non_empty_message(e.to_string()),
            Ok(Err(e)) => return non_empty_message(e.to_string()),
            Ok(Ok(output)) => Some((output, Settings::default())),
        },
    };
    match shown {
        Some((output, settings)) => {
            REACHED_VIEWS.fetch_add(1, Relaxed);
            view_everything(&output, &settings)
        }
        None => Ok(()),
    }
}

/// Cases whose result passed the check and went through every view function.
static REACHED_VIEWS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn page_state_from_outside_survives_to_the_views() {
    let _serial = serial();
    let mut rng = SplitMix64::new(5);
    let sample = page_case(&mut rng).input.data;
    assert_runner_catches(
        move || PageCase { form: PageForm::Saved, data: sample.clone() },
        open_page_state,
    );
    run_target("page-state", share_memory_bound, page_case, open_page_state);
    let reached = REACHED_VIEWS.load(Relaxed);
    eprintln!("fuzz page-state: {reached} cases passed the check and went through every view");
    assert!(reached > 0, "no case reached the views: the generator makes nothing valid");
}
