//! A loaded model: its tokenizer and its architecture (sizes, kinds and weights, `arch`) from one
//! GGUF file's bytes, and what a model is read from: the GGUF file (`gguf`), its weight matrices
//! (`weights`) and tokenizer (`tokenizer`, `token_text`). Backend-free: the CPU and the GPU each
//! build their decoder from a `Model`.

pub mod arch;
pub mod gguf;
pub mod token_text;
pub mod tokenizer;
pub mod weights;

use crate::engine::error::{EngineError, Result};
use crate::engine::model::arch::{Architecture, DecoderConfig};
use crate::engine::model::gguf::GgufFile;
use crate::engine::model::tokenizer::{TextTokenizer, Token};
use crate::engine::model::weights::WeightStorage;
use candle_core::DType;
use std::sync::Arc;

pub struct Model {
    pub tokenizer: TextTokenizer,
    pub architecture: Architecture,
    /// The precision runs compute in: f32, or f64 for the tests' checks of gradients.
    pub dtype: DType,
    /// The GGUF file's size: its bytes stay in memory with the model (the weights live in them).
    file_bytes: usize,
}

impl Model {
    /// Loads in f32, the precision the page and the CLI compute in, weights kept encoded.
    pub fn load(file: Vec<u8>) -> Result<Self> {
        Self::load_with(file, DType::F32, WeightStorage::Encoded)
    }

    /// `DType::F64` gives the same function in double precision (tests use it to check gradients).
    pub fn load_with_dtype(file: Vec<u8>, dtype: DType) -> Result<Self> {
        Self::load_with(file, dtype, WeightStorage::Encoded)
    }

    /// `storage` trades memory for speed: the same function either way, bit for bit.
    pub fn load_with(file: Vec<u8>, dtype: DType, storage: WeightStorage) -> Result<Self> {
        let file_bytes = file.len();
        let file = GgufFile::parse(Arc::new(file))?.with_weight_storage(storage);
        // The architecture first: "unsupported architecture" is the message a user needs.
        let architecture = arch::read(&file)?;
        let tokenizer = TextTokenizer::from_gguf(&file)?;
        if tokenizer.vocab_size() != architecture.config.vocab {
            return Err(EngineError::CorruptGguf(format!(
                "the tokenizer has {} tokens, the model {}",
                tokenizer.vocab_size(),
                architecture.config.vocab
            )));
        }
        Ok(Self { tokenizer, architecture, dtype, file_bytes })
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.architecture.config
    }

    pub fn file_bytes(&self) -> usize {
        self.file_bytes
    }

    /// Tokens for a text the model can read: not empty, not longer than its context or than
    /// `max_tokens` when given.
    pub fn tokenize_input(&self, text: &str, max_tokens: Option<usize>) -> Result<Vec<Token>> {
        let tokens = self.tokenizer.tokenize(text)?;
        if tokens.iter().all(|t| t.byte_len == 0) {
            return Err(EngineError::EmptyText);
        }
        let context = self.config().context_length;
        let max = max_tokens.map_or(context, |m| m.min(context));
        if tokens.len() > max {
            return Err(EngineError::TextTooLong { tokens: tokens.len(), max, context });
        }
        Ok(tokens)
    }
}
