//! `salient bench`: load, forward and attribution times on a text of an exact token count, and
//! the process's peak memory. Medians over runs; figures only, no pass/fail.

use salient::engine::{explain, methods, MethodParams, Model, Problem, TargetSpec};
use std::time::Instant;

/// Plain prose, long enough to cut texts of up to 512 tokens from.
const PROSE: &str = "The river town woke slowly that morning. Fishermen pulled their boats onto the gravel, \
counting the night's catch while gulls argued over the scraps. In the bakery on the corner, the first loaves \
came out of the oven at six, and the smell drifted down the main street past the shuttered post office and the \
old stone church. Nobody remembered exactly when the bridge had been built, but everyone agreed it had survived \
three floods and one very determined lorry driver. The mayor, a patient woman who kept bees behind the town hall, \
liked to say that the bridge was the only thing in town older than her arguments with the council. Children \
crossed it on their way to school, dropping sticks on one side and racing to the other to see whose stick came \
out first. In summer, tourists came for the walking trails and the cheap cider; in winter, the town belonged to \
the people who lived there, and to the fog that settled in the valley for days at a time. The library opened on \
Tuesdays and Fridays, and its single librarian had read every book on its shelves at least twice. She kept a list \
of the books people asked for and could not find, and once a year she took the train to the city to buy as many \
of them as the budget allowed. When the railway company threatened to close the station, the whole town wrote \
letters, and for once the letters worked. The station stayed open, the trains kept running twice a day, and the \
stationmaster planted roses along the platform to celebrate. Years later, visitors still asked about the roses, \
and the stationmaster, by then retired, would tell the story to anyone who would listen, adding a new detail \
each time, until the tale of the letters had become something close to a legend in the valley and beyond it.";

pub struct BenchArgs {
    pub model: String,
    pub tokens: usize,
    pub runs: usize,
    pub method: String,
}

/// A text of exactly `n` tokens cut from `PROSE` (repeated as needed), or the nearest below.
pub fn text_of_tokens(model: &Model, n: usize) -> Result<String, String> {
    let mut source = PROSE.to_string();
    while model.tokenizer.encode(&source).map_err(|e| e.to_string())?.len() < n {
        source = format!("{source} {PROSE}");
    }
    let tokens = model.tokenizer.tokenize(&source).map_err(|e| e.to_string())?;
    // Cut at token boundaries; re-tokenizing a prefix can merge differently at the edge, so back off.
    let mut keep = n;
    loop {
        let bytes: usize = tokens[..keep].iter().map(|t| t.byte_len).sum();
        let text = String::from_utf8_lossy(&source.as_bytes()[..bytes]).into_owned();
        if model.tokenizer.encode(&text).map_err(|e| e.to_string())?.len() <= n {
            return Ok(text);
        }
        keep -= 1;
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len() % 2 == 1 { xs[mid] } else { (xs[mid - 1] + xs[mid]) / 2.0 }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Peak resident memory of this process (Linux), in bytes.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

pub fn run(args: &BenchArgs) -> Result<serde_json::Value, String> {
    methods::by_name(&args.method).map_err(|e| e.to_string())?;
    let bytes = std::fs::read(&args.model).map_err(|e| format!("cannot read {}: {e}", args.model))?;
    let mut load_ms = Vec::new();
    let mut model = None;
    for _ in 0..args.runs.max(1) {
        let t = Instant::now();
        model = Some(Model::load(bytes.clone()).map_err(|e| e.to_string())?);
        load_ms.push(ms_since(t));
    }
    let model = model.expect("at least one load");
    let text = text_of_tokens(&model, args.tokens)?;
    let (mut forward_ms, mut attribute_ms, mut total_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut token_count = 0;
    for _ in 0..args.runs.max(1) {
        let t = Instant::now();
        let problem = Problem::new(&model, &text, &TargetSpec::top(), None).map_err(|e| e.to_string())?;
        forward_ms.push(ms_since(t));
        let t2 = Instant::now();
        let result = explain(&problem, &args.method, &MethodParams::default(), 5).map_err(|e| e.to_string())?;
        attribute_ms.push(ms_since(t2));
        total_ms.push(ms_since(t));
        token_count = result.tokens.len();
    }
    Ok(serde_json::json!({
        "method": args.method,
        "tokens": token_count,
        "runs": args.runs,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "load_ms": median(load_ms),
        "forward_ms": median(forward_ms),
        "attribute_ms": median(attribute_ms),
        "total_ms": median(total_ms),
        "peak_rss_bytes": peak_rss_bytes(),
        "text": text,
    }))
}
