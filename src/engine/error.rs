//! One error type for the engine. Every variant's message is written for the person using the
//! page or the CLI: it says what is wrong and, where it can, what to do.

use std::fmt;

#[derive(Debug)]
pub enum EngineError {
    /// The bytes are not a GGUF file at all.
    NotGguf {
        first_bytes: String,
    },
    /// A GGUF file that candle's reader rejects (truncated, corrupt header or tensor table).
    CorruptGguf(String),
    UnsupportedArchitecture {
        found: String,
        supported: Vec<&'static str>,
    },
    UnsupportedTokenizer(String),
    /// A tensor stored in an encoding the engine cannot decode (llama.cpp's IQ types, say).
    UnsupportedEncoding {
        tensor: String,
        encoding: String,
        supported: Vec<&'static str>,
    },
    MissingMetadata(String),
    MissingTensor(String),
    BadTensorShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    EmptyText,
    /// `max` is the model's context, or a smaller limit the caller set (the page's memory bound).
    TextTooLong {
        tokens: usize,
        max: usize,
        context: usize,
    },
    UnknownTarget(String),
    UnknownMethod {
        found: String,
        known: Vec<&'static str>,
    },
    InvalidRequest(String),
    /// A stop was requested (the run context's `StopToken`) before the computation ended.
    Stopped,
    /// The GPU backend failed (no adapter, a device lost, a refused allocation or shader): the
    /// front end says so and computes on the CPU instead.
    Gpu(String),
    /// An error inside candle or tokenizers that none of the cases above explains.
    Internal(String),
}

pub type Result<T> = std::result::Result<T, EngineError>;

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use EngineError::*;
        match self {
            NotGguf { first_bytes } => write!(
                f,
                "This file is not a GGUF model (it starts with {first_bytes}, a GGUF file starts with \"GGUF\")."
            ),
            CorruptGguf(why) => write!(f, "This GGUF file is damaged or truncated: {why}."),
            UnsupportedArchitecture { found, supported } => write!(
                f,
                "Model architecture \"{found}\" is not supported yet (supported: {}).",
                supported.join(", ")
            ),
            UnsupportedTokenizer(what) => write!(f, "Unsupported tokenizer in this GGUF: {what}."),
            UnsupportedEncoding { tensor, encoding, supported } => write!(
                f,
                "Tensor \"{tensor}\" uses the {encoding} encoding, which Salient does not support \
                 (supported: {}). Use a file quantized to one of those.",
                supported.join(", ")
            ),
            MissingMetadata(key) => write!(f, "The GGUF file lacks the metadata key \"{key}\"."),
            MissingTensor(name) => write!(f, "The GGUF file lacks the tensor \"{name}\"."),
            BadTensorShape { name, expected, found } => write!(
                f,
                "Tensor \"{name}\" has shape {found:?}, the metadata implies {expected:?}."
            ),
            EmptyText => write!(f, "The text is empty: type something to attribute."),
            TextTooLong { tokens, max, context } if max < context => write!(
                f,
                "The text is {tokens} tokens long; at most {max} can be attributed here \
                 (the model itself reads up to {context}). Shorten it."
            ),
            TextTooLong { tokens, max, .. } => write!(
                f,
                "The text is {tokens} tokens long; this model reads at most {max}. Shorten it."
            ),
            UnknownTarget(what) => write!(f, "Cannot use {what} as the target token."),
            UnknownMethod { found, known } => {
                write!(f, "Unknown method \"{found}\" (known: {}).", known.join(", "))
            }
            InvalidRequest(what) => write!(f, "{what}"),
            Stopped => write!(f, "The run was stopped before it finished."),
            Gpu(what) => write!(f, "The GPU could not compute this: {what}."),
            Internal(what) => write!(f, "Internal error: {what}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// A parallel map that did not run because a stop was requested: inside a candle op, which
/// carries only its text, it becomes [`EngineError::Stopped`] again.
#[derive(Debug)]
pub struct Stopped;

const STOPPED: &str = "the computation was stopped on request";

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(STOPPED)
    }
}

impl std::error::Error for Stopped {}

impl From<candle_core::Error> for EngineError {
    fn from(e: candle_core::Error) -> Self {
        // A stop surfaces as the failure of the candle op that was running, whose error keeps
        // only the text of `Stopped`.
        let text = e.to_string();
        match text.contains(STOPPED) {
            true => EngineError::Stopped,
            false => EngineError::Internal(text),
        }
    }
}
