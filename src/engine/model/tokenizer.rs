//! The tokenizer, built from the GGUF metadata alone (one file is a whole model): the vocabulary,
//! merges, token types and pre-tokenizer name become a `tokenizers` byte-level BPE.

use crate::engine::error::{EngineError, Result};
use crate::engine::model::gguf::GgufFile;
use crate::engine::model::token_text::{bytes_to_text, ByteLevelDecoder};
use serde::Serialize;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{
    AddedToken, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
    SplitDelimiterBehavior, Tokenizer,
};

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// One input token as the model sees it.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Token {
    pub id: u32,
    /// The token's bytes as text (`\xNN` for bytes of an incomplete character).
    pub text: String,
    /// How many bytes of the input this token covers (0 for an inserted BOS).
    pub byte_len: usize,
    /// Control tokens such as `<|im_start|>`.
    pub special: bool,
}

pub struct TextTokenizer {
    inner: Tokenizer,
    /// Per id: the bytes the token stands for (control tokens: their literal spelling).
    token_bytes: Vec<Vec<u8>>,
    special: Vec<bool>,
    bos: Option<u32>,
    /// The padding token, else unknown, else end-of-text: the "no information" token.
    pad: Option<u32>,
    /// Per byte value: whether a (non-control) token stands for that byte alone.
    byte_has_token: [bool; 256],
}

impl TextTokenizer {
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let kind = file.string("tokenizer.ggml.model")?;
        if kind != "gpt2" {
            return Err(EngineError::UnsupportedTokenizer(format!(
                "\"{kind}\" (only byte-level BPE, \"gpt2\", is supported)"
            )));
        }
        let spellings: Vec<String> = file
            .array("tokenizer.ggml.tokens")?
            .iter()
            .map(|v| v.to_string().cloned())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| {
                EngineError::CorruptGguf("tokenizer.ggml.tokens holds a non-string".into())
            })?;
        let merges: Vec<(String, String)> = file
            .array("tokenizer.ggml.merges")?
            .iter()
            .map(|v| {
                let s = v.to_string().map_err(|_| bad_merge("a non-string"))?;
                let (a, b) = s.split_once(' ').ok_or_else(|| bad_merge(s))?;
                Ok((a.to_string(), b.to_string()))
            })
            .collect::<Result<_>>()?;
        let types: Vec<i32> = match file.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(|_| {
                    EngineError::CorruptGguf("tokenizer.ggml.token_type is not an array".into())
                })?
                .iter()
                .map(|t| t.to_i32().unwrap_or(1))
                .collect(),
            None => vec![1; spellings.len()],
        };
        if types.len() != spellings.len() {
            return Err(EngineError::CorruptGguf(format!(
                "{} token types for {} tokens",
                types.len(),
                spellings.len()
            )));
        }

        let vocab: ahash::AHashMap<String, u32> =
            spellings.iter().enumerate().map(|(i, s)| (s.clone(), i as u32)).collect();
        if vocab.len() != spellings.len() {
            return Err(EngineError::CorruptGguf("the vocabulary has duplicate tokens".into()));
        }
        // tokenizers' BPE builder panics (a slice index) on a merge whose join is longer than
        // every token, so joins missing from the vocabulary are refused here.
        if let Some((a, b)) = merges.iter().find(|(a, b)| !vocab.contains_key(&format!("{a}{b}"))) {
            return Err(EngineError::CorruptGguf(format!(
                "tokenizer.ggml.merges joins {a:?} and {b:?} into a token the vocabulary lacks"
            )));
        }
        let pre = pre_tokenization(&file.string("tokenizer.ggml.pre").unwrap_or_default())?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .ignore_merges(pre.ignore_merges)
            .build()
            .map_err(|e| EngineError::UnsupportedTokenizer(format!("BPE: {e}")))?;
        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(pre.pre_tokenizer));

        let special: Vec<bool> = types.iter().map(|t| *t == TOKEN_TYPE_CONTROL).collect();
        let added: Vec<AddedToken> = spellings
            .iter()
            .zip(&types)
            .filter(|(_, t)| **t == TOKEN_TYPE_CONTROL || **t == TOKEN_TYPE_USER_DEFINED)
            .map(|(s, t)| AddedToken::from(s.clone(), *t == TOKEN_TYPE_CONTROL))
            .collect();
        inner
            .add_special_tokens(added)
            .map_err(|e| EngineError::UnsupportedTokenizer(format!("added tokens: {e}")))?;

        let decoder = ByteLevelDecoder::new();
        let token_bytes: Vec<Vec<u8>> = spellings
            .iter()
            .zip(&special)
            .map(|(s, sp)| if *sp { s.as_bytes().to_vec() } else { decoder.bytes(s) })
            .collect();
        let mut byte_has_token = [false; 256];
        for (bytes, _) in token_bytes.iter().zip(&special).filter(|(b, sp)| b.len() == 1 && !**sp) {
            byte_has_token[bytes[0] as usize] = true;
        }
        let add_bos = file.bool_or("tokenizer.ggml.add_bos_token", pre.add_bos)?;
        // Ids are checked against the vocabulary before they narrow to u32 (a wrapped id would pass).
        let bos = match add_bos {
            true => match file.usize("tokenizer.ggml.bos_token_id")? {
                id if id < spellings.len() => Some(id as u32),
                id => {
                    return Err(EngineError::CorruptGguf(format!(
                        "the beginning-of-text token {id} is not in the vocabulary of {} tokens",
                        spellings.len()
                    )))
                }
            },
            false => None,
        };
        let pad = ["padding", "unknown", "eos"]
            .iter()
            .find_map(|role| file.usize(&format!("tokenizer.ggml.{role}_token_id")).ok())
            .filter(|id| *id < spellings.len())
            .map(|id| id as u32);
        Ok(Self { inner, token_bytes, special, bos, pad, byte_has_token })
    }

    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// The token whose embedding stands for "no information" (the `pad` baseline).
    pub fn pad_token(&self) -> Result<u32> {
        self.pad.ok_or_else(|| {
            EngineError::InvalidRequest(
                "This model names no padding, unknown or end-of-text token: use the zero baseline."
                    .into(),
            )
        })
    }

    /// Ids for a text, with the BOS token first when the model asks for one.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.check_spellable(text)?;
        let encoding =
            self.inner.encode(text, false).map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok(self.bos.into_iter().chain(encoding.get_ids().iter().copied()).collect())
    }

    /// BPE without an unknown token drops the bytes it has no token for, silently: a text whose
    /// characters use such a byte (SmolLM2 has none for U+0004, U+0006, U+0013, U+0014, U+0016,
    /// U+001D and U+40000..U+BFFFF) is refused instead, so tokens always spell their text.
    fn check_spellable(&self, text: &str) -> Result<()> {
        match text.chars().find(|c| c.to_string().bytes().any(|b| !self.byte_has_token[b as usize])) {
            Some(c) => Err(EngineError::InvalidRequest(format!(
                "The text holds the character U+{:04X}, which this model's vocabulary cannot spell. Remove it.",
                c as u32
            ))),
            None => Ok(()),
        }
    }

    pub fn token(&self, id: u32) -> Result<Token> {
        let bytes = self.token_bytes.get(id as usize).ok_or_else(|| {
            EngineError::UnknownTarget(format!(
                "id {id} (the vocabulary has {} tokens)",
                self.vocab_size()
            ))
        })?;
        Ok(Token {
            id,
            text: bytes_to_text(bytes),
            byte_len: bytes.len(),
            special: self.special[id as usize],
        })
    }

    /// Tokens for a text, each with its bytes shown faithfully.
    pub fn tokenize(&self, text: &str) -> Result<Vec<Token>> {
        let ids = self.encode(text)?;
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                let mut token = self.token(*id)?;
                if i == 0 && self.bos.is_some() {
                    token.byte_len = 0;
                }
                Ok(token)
            })
            .collect()
    }

    /// Tokens for text that continues an input (a continuation the model is to be explained on):
    /// no BOS, since the text does not start a sequence.
    pub fn tokenize_continuation(&self, text: &str) -> Result<Vec<Token>> {
        self.check_spellable(text)?;
        let encoding =
            self.inner.encode(text, false).map_err(|e| EngineError::Internal(e.to_string()))?;
        encoding.get_ids().iter().map(|id| self.token(*id)).collect()
    }

    /// The one token a piece of text stands for (" Paris" → 7042), or a message saying why not.
    pub fn single_token(&self, text: &str) -> Result<u32> {
        let encoding =
            self.inner.encode(text, false).map_err(|e| EngineError::Internal(e.to_string()))?;
        match encoding.get_ids() {
            [id] => Ok(*id),
            [] => Err(EngineError::UnknownTarget("an empty token text".into())),
            ids => {
                let pieces: Vec<String> = ids
                    .iter()
                    .map(|id| format!("{:?}", bytes_to_text(&self.token_bytes[*id as usize])))
                    .collect();
                Err(EngineError::UnknownTarget(format!(
                    "{text:?}: it is {} tokens ({}), a target must be one token",
                    ids.len(),
                    pieces.join(" + ")
                )))
            }
        }
    }
}

fn bad_merge(what: impl std::fmt::Display) -> EngineError {
    EngineError::CorruptGguf(format!("tokenizer.ggml.merges holds {what}, not \"left right\""))
}

/// The split of Llama 3 and Qwen2 (llama.cpp's `LLAMA3` and `QWEN2` regexes), which differ only
/// in `digits`, the pattern for a piece of digits. The alternatives, tried in order: English
/// contractions (spelled case by case, as llama.cpp does); letters after at most one other
/// character; digits; punctuation runs with the newlines after them; newline runs; spaces before
/// a non-space (a run of them leaves its last space to what follows); other spaces.
fn llama3_like_split(digits: &str) -> String {
    [
        r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])",
        r"[^\r\n\p{L}\p{N}]?\p{L}+",
        digits,
        r" ?[^\s\p{L}\p{N}]+[\r\n]*",
        r"\s*[\r\n]+",
        r"\s+(?!\S)",
        r"\s+",
    ]
    .join("|")
}

/// What a `tokenizer.ggml.pre` name means: the split before BPE, and the settings llama.cpp ties
/// to it.
struct PreTokenization {
    pre_tokenizer: PreTokenizerWrapper,
    /// Take a piece that is a whole vocabulary entry as is, without merging (Llama 3).
    ignore_merges: bool,
    /// Start texts with BOS when the file has no `tokenizer.ggml.add_bos_token`.
    add_bos: bool,
}

/// llama.cpp's pre-tokenizer names as `tokenizers` pre-tokenizers.
fn pre_tokenization(name: &str) -> Result<PreTokenization> {
    let byte_level = ByteLevel::new(false, true, true);
    let plain =
        |pre_tokenizer| PreTokenization { pre_tokenizer, ignore_merges: false, add_bos: false };
    // The regex does the splitting; byte-level only maps bytes to GPT-2's printable alphabet.
    let regex_then_bytes = |regex: String| -> Result<PreTokenizerWrapper> {
        let split = Split::new(SplitPattern::Regex(regex), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| EngineError::Internal(format!("pre-tokenizer regex: {e}")))?;
        Ok(Sequence::new(vec![split.into(), ByteLevel::new(false, true, false).into()]).into())
    };
    match name {
        "" | "default" | "gpt2" | "gpt-2" => Ok(plain(byte_level.into())),
        // SmolLM: GPT-2's split, with every digit its own token.
        "smollm" => {
            Ok(plain(Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()))
        }
        // Qwen2: every digit its own piece.
        "qwen2" => Ok(plain(regex_then_bytes(llama3_like_split(r"\p{N}"))?)),
        // Llama 3: digits in threes.
        "llama-bpe" | "llama3" | "llama-v3" => Ok(PreTokenization {
            pre_tokenizer: regex_then_bytes(llama3_like_split(r"\p{N}{1,3}"))?,
            ignore_merges: true,
            add_bos: true,
        }),
        other => Err(EngineError::UnsupportedTokenizer(format!(
            "pre-tokenizer \"{other}\" (supported: gpt2, smollm, qwen2, llama-bpe)"
        ))),
    }
}

/// The pieces the pre-tokenizer named `pre` (`tokenizer.ggml.pre`) cuts `text` into before BPE
/// merges within each piece: for tests and diagnostics.
pub fn pre_tokenize(pre: &str, text: &str) -> Result<Vec<String>> {
    let mut pieces = PreTokenizedString::from(text);
    pre_tokenization(pre)?
        .pre_tokenizer
        .pre_tokenize(&mut pieces)
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    Ok(pieces
        .get_splits(OffsetReferential::Original, OffsetType::Byte)
        .into_iter()
        .map(|(_, (start, end), _)| text[start..end].to_string())
        .collect())
}
