//! Qwen2 and Qwen2.5: llama blocks whose query, key and value projections always have biases, and
//! whose rotary positions pair the two halves of each head (llama.cpp's converter does not
//! permute qwen2 weights into the interleaved layout it gives llama). Hyper-parameters are read
//! from the `qwen2.*` keys; small models tie the output projection to the token embedding.

use crate::engine::cpu::arch::llama::{Family, Llama};
use crate::engine::cpu::arch::{Bias, Decoder};
use crate::engine::cpu::layers::RopeLayout;
use crate::engine::error::Result;
use crate::engine::model::gguf::GgufFile;
use candle_core::DType;

const QWEN2: Family = Family { name: "qwen2", rope: RopeLayout::Halves, qkv_bias: Bias::Required };

pub fn load(file: &GgufFile, dtype: DType) -> Result<Box<dyn Decoder>> {
    Llama::load_family(file, dtype, &QWEN2)
}
