//! Qwen2 and Qwen2.5: llama blocks whose query, key and value projections always have biases, and
//! whose rotary positions pair the two halves of each head (llama.cpp's converter does not
//! permute qwen2 weights into the interleaved layout it gives llama). Hyper-parameters are read
//! from the `qwen2.*` keys; small models tie the output projection to the token embedding.

use super::llama::{read_family, Family};
use super::{Architecture, Bias, RopeLayout};
use crate::engine::error::Result;
use crate::engine::model::gguf::GgufFile;

const QWEN2: Family = Family { name: "qwen2", rope: RopeLayout::Halves, qkv_bias: Bias::Required };

pub(super) fn read(file: &GgufFile) -> Result<Architecture> {
    read_family(file, &QWEN2)
}
