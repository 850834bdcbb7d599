//! Shared by the native test files: the default model file, a seeded random source, and a
//! method's scores where nothing waits.
#![allow(dead_code)] // each test file uses a different part

pub mod gguf_builder;
pub mod reference;

use candle_core::DType;
use salient::engine::attribution::methods::{AttributionMethod, MethodParams, Scores};
use salient::engine::runtime::ready::now;
use salient::engine::{Model, Problem, Result};

/// The default model, fetched by `make model` (never committed).
pub fn model_path() -> String {
    std::env::var("SALIENT_MODEL").unwrap_or_else(|_| {
        format!("{}/{}", env!("CARGO_MANIFEST_DIR"), salient::state::default_model::url())
    })
}

pub fn model_bytes() -> Vec<u8> {
    let path = model_path();
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("cannot read the default model at {path} ({e}); run `make model`")
    })
}

pub fn load_model(dtype: DType) -> Model {
    Model::load_with_dtype(model_bytes(), dtype).expect("the default model loads")
}

/// xorshift64*: reproducible test randomness without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545F4914F6CDD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.next_f64().max(1e-300), self.next_f64());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Says that a test could not run here and why, on the test binary's own stderr (the harness's
/// capture only takes `print!`s), as `SKIP name (why)`: `scripts/test.sh` counts these lines as
/// skipped checks, never as passed ones.
pub fn skip(name: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP {name} ({why})");
}

/// A method's scores on the CPU, whose computation never waits: its future is ready at once.
pub trait AttributeNow {
    fn attribute_now(&self, problem: &Problem, params: &MethodParams) -> Result<Scores>;
}

impl<M: AttributionMethod + ?Sized> AttributeNow for M {
    fn attribute_now(&self, problem: &Problem, params: &MethodParams) -> Result<Scores> {
        now(self.attribute(problem, params))
    }
}
