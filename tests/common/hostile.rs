//! Hostile inputs for tests/fuzz.rs and tests/properties.rs (each includes this file with
//! `#[path]`; the other test files do not need it): SplitMix64, the random texts and bytes built
//! from it, and the invariant every tokenization must keep.
#![allow(dead_code)] // each including file uses a different part

use salient::engine::model::token_text::text_to_bytes;
use salient::engine::model::tokenizer::TextTokenizer;

/// The engine's SplitMix64 (`salient::engine::attribution::stats`), with the draws the generators below need.
pub struct SplitMix64(salient::engine::runtime::random::SplitMix64);

/// Characters a text generator draws from, grouped so each kind shows up often: ASCII, controls,
/// whitespace, Latin-1 and combining marks, CJK, emoji (with joiners and variation selectors),
/// the byte-level alphabet's own characters, and the pieces of a literal `\xNN` escape.
const CHAR_POOLS: &[&[char]] = &[
    &[
        'a', 'b', 'e', 'h', 't', 'x', 'A', 'Z', '0', '7', '9', '.', ',', '!', '?', '<', '>', '|',
        '"', '\'',
    ],
    &[
        '\0', '\u{1}', '\u{7}', '\u{8}', '\u{1B}', '\u{7F}', '\u{80}', '\u{9F}', '\u{AD}',
        '\u{FEFF}',
    ],
    &[' ', '\n', '\r', '\t', '\u{A0}', '\u{2028}', '\u{3000}', '\u{200B}', '\u{2003}', '\u{85}'],
    &['é', 'ß', 'ÿ', 'Ā', 'ı', '\u{300}', '\u{301}', '\u{308}', '\u{20DD}', '\u{FE0F}'],
    &['東', '京', '日', '本', 'の', 'ア', '한', '국', '中', '\u{2A6D6}'],
    &['🙂', '👍', '🏽', '\u{200D}', '👩', '🚀', '🇫', '🇷', '\u{E0067}', '\u{10FFFF}'],
    &['Ġ', 'Ċ', 'ĉ', 'Ā', 'Ń', 'ł', '\u{FFFD}', '\u{E000}', '\u{D7FF}', '\u{FFFF}'],
    &['\\', '\\', 'x', 'x', '8', 'F', 'E', 'A', '0', 'C'],
];

/// Special token spellings worth splicing into texts (the model's control tokens and near misses).
const SPECIAL_SNIPPETS: &[&str] = &[
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|im_start",
    "<|endoftext|",
    "<||>",
    "\\xE6",
    "\\\\xFF",
];

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(salient::engine::runtime::random::SplitMix64::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`n > 0`); the modulo bias is far below what a test could notice.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        self.next_u64() % denominator < numerator
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A finite f64 of any magnitude: ordinary values, tiny and huge exponents, ±0, subnormals.
    pub fn finite_f64(&mut self) -> f64 {
        match self.below(4) {
            0 => self.unit() * 2.0 - 1.0,
            1 => *self.pick(&[
                0.0,
                -0.0,
                f64::MIN_POSITIVE,
                5e-324,
                f64::MAX,
                f64::MIN,
                f64::EPSILON,
                1e300,
            ]),
            _ => loop {
                let x = f64::from_bits(self.next_u64());
                if x.is_finite() {
                    break x;
                }
            },
        }
    }

    pub fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// Any Unicode scalar value, surrogates excluded.
    pub fn any_char(&mut self) -> char {
        loop {
            if let Some(c) = char::from_u32(self.below(0x11_0000) as u32) {
                break c;
            }
        }
    }

    /// Text of up to `max_chars` characters, drawn mostly from one or two pools (so runs of
    /// combining marks, emoji sequences and escape look-alikes form), with special-token
    /// spellings spliced in now and then.
    pub fn text(&mut self, max_chars: usize) -> String {
        let len = self.below(max_chars + 1);
        let pools = [*self.pick(CHAR_POOLS), *self.pick(CHAR_POOLS)];
        let mut out = String::new();
        while out.chars().count() < len {
            match self.below(20) {
                0 => out.push(self.any_char()),
                1 => out.push_str(self.pick::<&str>(SPECIAL_SNIPPETS)),
                2..=4 => {
                    let pool = *self.pick(CHAR_POOLS);
                    out.push(*self.pick(pool));
                }
                _ => {
                    let pool = pools[self.below(2)];
                    out.push(*self.pick(pool));
                }
            }
        }
        out
    }

    /// Bytes that are mostly text but may hold invalid UTF-8: a text's bytes with some bytes
    /// replaced, dropped (splitting characters) or inserted.
    pub fn text_bytes(&mut self, max_chars: usize) -> Vec<u8> {
        let mut bytes = self.text(max_chars).into_bytes();
        for _ in 0..self.below(4) {
            let at = self.below(bytes.len() + 1);
            match self.below(3) {
                0 if at < bytes.len() => bytes[at] = self.next_u64() as u8,
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.insert(
                    at,
                    *self.pick(&[0x80, 0xBF, 0xC0, 0xC3, 0xE6, 0xF0, 0xF4, 0xF8, 0xFF]),
                ),
            }
        }
        bytes
    }
}

/// How a tokenizer treated a text.
#[derive(Debug, PartialEq)]
pub enum Spelling {
    /// The tokens spell the text exactly.
    Exact,
    /// The tokenizer refused the text with this message.
    Refused(String),
}

/// The invariant the page relies on: the tokens of `text` spell it exactly. Their bytes (read
/// back from each shown text) concatenate to the text's bytes, each token's `byte_len` is its byte
/// count, and the ids are `encode`'s. Refusing the text with a message keeps it too; returning
/// tokens that lose, add or change bytes breaks it (`Err`).
pub fn check_spelling(tokenizer: &TextTokenizer, text: &str) -> Result<Spelling, String> {
    let tokens = match tokenizer.tokenize(text) {
        Ok(tokens) => tokens,
        Err(e) if !e.to_string().trim().is_empty() => return Ok(Spelling::Refused(e.to_string())),
        Err(_) => return Err(format!("tokenize({text:?}) failed with an empty message")),
    };
    let ids = tokenizer
        .encode(text)
        .map_err(|e| format!("encode({text:?}) failed where tokenize did not: {e}"))?;
    if ids != tokens.iter().map(|t| t.id).collect::<Vec<_>>() {
        return Err(format!("tokenize and encode disagree on {text:?}"));
    }
    let mut spelled = Vec::with_capacity(text.len());
    for token in &tokens {
        let bytes = text_to_bytes(&token.text);
        // An inserted BOS covers no byte of the text.
        if token.byte_len > 0 && bytes.len() != token.byte_len {
            return Err(format!(
                "token {:?} has byte_len {}, its text {} bytes",
                token.text,
                token.byte_len,
                bytes.len()
            ));
        }
        spelled.extend(if token.byte_len > 0 { bytes } else { Vec::new() });
    }
    match spelled == text.as_bytes() {
        true => Ok(Spelling::Exact),
        false => Err(format!(
            "the tokens of {text:?} spell {:?}: {:?}",
            String::from_utf8_lossy(&spelled),
            tokens.iter().map(|t| &t.text).collect::<Vec<_>>()
        )),
    }
}
