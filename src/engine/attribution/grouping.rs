//! Per-token scores summed over words or sentences, for reading an attribution at the level people
//! think in. Byte-level BPE tokens do not line up with words: " Hello" carries its leading space,
//! SmolLM splits numbers into single digits, and one CJK character can be split over two tokens.
//! So boundaries are decided on the characters the tokens' bytes spell, and a group is always a
//! run of whole tokens.

use crate::engine::model::token_text::{bytes_to_text, text_to_bytes};
use crate::engine::model::tokenizer::Token;
use serde::{Deserialize, Serialize};
use std::ops::Range;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    #[default]
    Token,
    Word,
    Sentence,
}

impl Granularity {
    pub const ALL: [Granularity; 3] =
        [Granularity::Token, Granularity::Word, Granularity::Sentence];

    /// The name used in the CLI's `--group` and the page.
    pub fn name(self) -> &'static str {
        match self {
            Granularity::Token => "token",
            Granularity::Word => "word",
            Granularity::Sentence => "sentence",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name() == name)
    }
}

/// A run of tokens and their scores taken together.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Index of the first token.
    pub first: usize,
    /// Index of the last token (inclusive).
    pub last: usize,
    /// The tokens' text together (a character split over tokens reads whole here).
    pub text: String,
    pub sum: f32,
    /// The largest |score| in the group.
    pub max_abs: f32,
}

/// Characters after which a sentence ends (at the end of the token holding them).
const SENTENCE_ENDS: [char; 7] = ['.', '!', '?', '。', '！', '？', '\n'];
/// Marks that may follow a sentence end and still belong to that sentence (with whitespace).
const SENTENCE_TRAILERS: &str = ".!?。！？…\"')]}”’」』）»";

/// `tokens` cut into consecutive groups covering every token exactly once, in order.
pub fn group(tokens: &[Token], scores: &[f32], granularity: Granularity) -> Vec<Group> {
    assert_eq!(tokens.len(), scores.len(), "one score per token");
    let (stream, infos) = read_tokens(tokens);
    let starts = group_starts(&infos, granularity);
    let mut groups = Vec::new();
    let mut first = 0;
    for last in 0..tokens.len() {
        if last + 1 < tokens.len() && !starts[last + 1] {
            continue;
        }
        let run = &scores[first..=last];
        let text = match tokens[first].special {
            true => tokens[first].text.clone(), // a special token is always alone
            false => bytes_to_text(&stream[infos[first].bytes.start..infos[last].bytes.end]),
        };
        groups.push(Group {
            first,
            last,
            text,
            sum: run.iter().sum(),
            max_abs: run.iter().fold(0.0, |m, s| m.max(s.abs())),
        });
        first = last + 1;
    }
    groups
}

/// What grouping needs to know about a token, read from its bytes in context.
struct TokenInfo {
    special: bool,
    /// The token's bytes in the byte stream of the whole text (empty for special tokens).
    bytes: Range<usize>,
    /// Its first byte begins a character (rather than continuing one split across tokens).
    starts_char: bool,
    /// The character beginning at its first byte.
    first: Option<char>,
    /// The character its last byte belongs to.
    last: Option<char>,
    /// Only whitespace and closing marks: after a sentence end it still belongs to that sentence.
    trails_sentence: bool,
    /// A sentence-ending character ends within it.
    ends_sentence: bool,
}

/// The bytes of all non-special tokens in a row, and each token's place and characters in them.
fn read_tokens(tokens: &[Token]) -> (Vec<u8>, Vec<TokenInfo>) {
    let mut stream = Vec::new();
    let ranges: Vec<Range<usize>> = tokens
        .iter()
        .map(|t| {
            let start = stream.len();
            if !t.special {
                stream.extend(text_to_bytes(&t.text));
            }
            start..stream.len()
        })
        .collect();
    let mut char_starting_at = vec![None; stream.len()];
    let mut char_of_byte = vec![char::REPLACEMENT_CHARACTER; stream.len()];
    let mut sentence_end_at = vec![false; stream.len()];
    for (range, c) in characters(&stream) {
        char_starting_at[range.start] = Some(c);
        char_of_byte[range.clone()].fill(c);
        sentence_end_at[range.end - 1] = SENTENCE_ENDS.contains(&c);
    }
    let infos = tokens
        .iter()
        .zip(ranges)
        .map(|(token, bytes)| TokenInfo {
            special: token.special,
            starts_char: bytes.is_empty() || char_starting_at[bytes.start].is_some(),
            first: (!bytes.is_empty()).then(|| char_starting_at[bytes.start]).flatten(),
            last: bytes.clone().last().map(|b| char_of_byte[b]),
            trails_sentence: !token.special
                && !token.text.is_empty()
                && token.text.chars().all(|c| c.is_whitespace() || SENTENCE_TRAILERS.contains(c)),
            ends_sentence: bytes.clone().any(|b| sentence_end_at[b]),
            bytes,
        })
        .collect();
    (stream, infos)
}

/// For each token, whether a new group starts at it.
fn group_starts(infos: &[TokenInfo], granularity: Granularity) -> Vec<bool> {
    let n = infos.len();
    if granularity == Granularity::Token {
        return vec![true; n];
    }
    // A "." or "," between digits belongs to the number ("3.14", "12,000"), not to the sentence.
    let separates_digits = |i: usize| {
        let is_digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
        let (before, token, after) =
            (i.checked_sub(1).map(|p| &infos[p]), &infos[i], infos.get(i + 1));
        matches!(token.first, Some('.' | ','))
            && token.bytes.len() == 1
            && before.is_some_and(|b| is_digit(b.last))
            && after.is_some_and(|a| a.starts_char && is_digit(a.first))
    };
    let mut sentence_starts = vec![true; n];
    let mut ended = false; // a sentence has ended and only trailing marks or whitespace followed
    for (i, info) in infos.iter().enumerate() {
        if i > 0 {
            let previous = &infos[i - 1];
            sentence_starts[i] = info.special
                || previous.special
                || (ended && info.starts_char && !info.trails_sentence);
        }
        ended = (ended && !sentence_starts[i]) || (info.ends_sentence && !separates_digits(i));
    }
    if granularity == Granularity::Sentence {
        return sentence_starts;
    }
    // Sentence boundaries are word boundaries too, so sentences are runs of whole words.
    (0..n)
        .map(|i| {
            let in_number = i > 0 && (separates_digits(i - 1) || separates_digits(i));
            sentence_starts[i] || (i > 0 && starts_word(&infos[i - 1], &infos[i], in_number))
        })
        .collect()
}

/// Whether `token` starts a word after `previous` (both ordinary tokens in one sentence).
fn starts_word(previous: &TokenInfo, token: &TokenInfo, in_number: bool) -> bool {
    if !token.starts_char || in_number {
        return false; // the rest of a character split across tokens, or the inside of a number
    }
    let (Some(first), Some(last)) = (token.first, previous.last) else {
        return true;
    };
    if first.is_whitespace() || is_cjk(first) || is_cjk(last) {
        return true; // CJK text has no spaces: each ideograph, kana or hangul syllable is a word
    }
    // A punctuation mark stands alone, except a run of the same mark ("!!!", "--").
    (is_punctuation(first) || is_punctuation(last)) && first != last
}

/// Characters of `bytes` with their byte ranges; each byte of an invalid sequence is one U+FFFD.
fn characters(bytes: &[u8]) -> Vec<(Range<usize>, char)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for chunk in bytes.utf8_chunks() {
        for (at, c) in chunk.valid().char_indices() {
            out.push((offset + at..offset + at + c.len_utf8(), c));
        }
        offset += chunk.valid().len();
        for _ in chunk.invalid() {
            out.push((offset..offset + 1, char::REPLACEMENT_CHARACTER));
            offset += 1;
        }
    }
    out
}

/// CJK ideographs, kana and hangul: scripts written without spaces between words.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // hiragana, katakana
        | 0x31F0..=0x31FF    // katakana extensions
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xFF66..=0xFF9F    // half-width katakana
        | 0x1100..=0x11FF    // hangul jamo
        | 0x3130..=0x318F    // hangul compatibility jamo
        | 0xAC00..=0xD7AF    // hangul syllables
        | 0x20000..=0x3134F) // CJK extensions B to G
}

/// ASCII punctuation and symbols, and the common non-ASCII marks (quotes, dashes, CJK and
/// full-width punctuation). Rust's standard library has no Unicode punctuation class.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(c as u32,
            0x00A1..=0x00BF      // ¡ « » ¿ and Latin-1 signs
            | 0x2010..=0x2027    // dashes, quotes, bullets, ellipsis
            | 0x2030..=0x205E    // per mille, primes, other marks
            | 0x3000..=0x303F    // CJK symbols and punctuation (、。「」…)
            | 0xFF01..=0xFF0F    // full-width ！＂＃…／
            | 0xFF1A..=0xFF20
            | 0xFF3B..=0xFF40
            | 0xFF5B..=0xFF65)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_keep_their_byte_ranges() {
        let chars = characters("a東\u{FF}".as_bytes());
        assert_eq!(chars, vec![(0..1, 'a'), (1..4, '東'), (4..6, 'ÿ')]);
        let chars = characters(b"a\xE6\x9Db");
        let bad = char::REPLACEMENT_CHARACTER;
        assert_eq!(chars, vec![(0..1, 'a'), (1..2, bad), (2..3, bad), (3..4, 'b')]);
    }
}
