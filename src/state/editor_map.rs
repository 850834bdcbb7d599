//! The map drawn in the editor itself: the shown map's spans laid on the editor's current text.
//! The text may have changed since the map was computed; a span keeps its shading only where its
//! characters are untouched (before or after the edited stretch, and not next to it, where the
//! tokenizer could now split differently), so shading never lands on characters it was not
//! computed for. Native, so the edits are tested here; the view turns pieces into elements.

use super::view::Unit;
use crate::engine::model::token_text::text_to_bytes;
use crate::engine::model::tokenizer::Token;

/// A stretch of the editor's text: plain, or one span of the map (`unit`: its index in the units).
/// A span with no characters of its own (a BOS the model adds; a token holding the last bytes of a
/// character whose first byte an earlier token holds) is a marker: empty `text`.
#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    pub text: String,
    pub unit: Option<usize>,
}

/// Byte ranges, in the text the map was computed for, of the characters each unit owns: a
/// character belongs to the token that holds its first byte.
fn owned_ranges(tokens: &[Token], units: &[Unit], computed: &str) -> Vec<(usize, usize)> {
    let mut bounds = Vec::with_capacity(tokens.len());
    let mut at = 0;
    for token in tokens {
        let len = if token.byte_len == 0 { 0 } else { text_to_bytes(&token.text).len() };
        bounds.push((at, at + len));
        at += len;
    }
    let up = |b: usize| {
        let mut b = b.min(computed.len());
        while !computed.is_char_boundary(b) {
            b += 1;
        }
        b
    };
    units.iter().map(|u| (up(bounds[u.first].0), up(bounds[u.last].1))).collect()
}

/// Where `before` and `after` differ: the common prefix and suffix lengths in bytes, on character
/// boundaries and not overlapping.
fn common_ends(before: &str, after: &str) -> (usize, usize) {
    let prefix = before
        .char_indices()
        .zip(after.chars())
        .find(|((_, a), b)| a != b)
        .map(|((i, _), _)| i)
        .unwrap_or(before.len().min(after.len()));
    let prefix = (0..=prefix).rev().find(|&i| after.is_char_boundary(i)).unwrap_or(0);
    let room = before.len().min(after.len()) - prefix;
    let suffix = before[prefix..]
        .chars()
        .rev()
        .zip(after[prefix..].chars().rev())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .scan(0, |sum, n| {
            *sum += n;
            Some(*sum)
        })
        .take_while(|&s| s <= room)
        .last()
        .unwrap_or(0);
    (prefix, suffix)
}

/// The editor's `text` cut into pieces: the units of a map computed for `computed` (whose tokens
/// are `tokens`) where their characters are unchanged in `text`, plain text elsewhere. Every
/// character of `text` is in exactly one piece, in order.
pub fn pieces(text: &str, computed: &str, tokens: &[Token], units: &[Unit]) -> Vec<Piece> {
    let ranges = owned_ranges(tokens, units, computed);
    let edited = text != computed;
    let (prefix, suffix) = common_ends(computed, text);
    let shift = |b: usize| b + text.len() - computed.len();
    // Kept units at their place in `text`, in order.
    let kept = ranges.iter().enumerate().filter_map(|(k, &(s, e))| match edited {
        false => Some((k, s, e)),
        true if e < prefix => Some((k, s, e)),
        true if s > computed.len() - suffix => Some((k, shift(s), shift(e))),
        true => None,
    });
    let mut out = Vec::new();
    let mut at = 0;
    for (k, s, e) in kept {
        if s > at {
            out.push(Piece { text: text[at..s].to_string(), unit: None });
        }
        out.push(Piece { text: text[s..e].to_string(), unit: Some(k) });
        at = e;
    }
    if at < text.len() {
        out.push(Piece { text: text[at..].to_string(), unit: None });
    }
    out
}

/// The unit at byte offset `at` of the text: the one holding the character after it, else (at the
/// end of the text) the one holding the character before it. A caret put at a token's start, as
/// Alt+arrows put it, shows that token.
pub fn unit_at(pieces: &[Piece], at: usize) -> Option<usize> {
    let mut start = 0;
    let mut before = None;
    for piece in pieces {
        let end = start + piece.text.len();
        if !piece.text.is_empty() {
            if start <= at && at < end {
                return piece.unit;
            }
            if end == at {
                before = piece.unit;
            }
        }
        start = end;
    }
    before
}

/// The start, in bytes, of the first unit that begins after `at` (`forward`) or the last that
/// begins before it: where Alt+arrow moves the caret.
pub fn next_unit_start(pieces: &[Piece], at: usize, forward: bool) -> Option<usize> {
    let mut start = 0;
    let mut starts = Vec::new();
    for piece in pieces {
        if piece.unit.is_some() && !piece.text.is_empty() {
            starts.push(start);
        }
        start += piece.text.len();
    }
    match forward {
        true => starts.into_iter().find(|&s| s > at),
        false => starts.into_iter().rev().find(|&s| s < at),
    }
}

/// Byte offset `at` of `text` in UTF-16 code units (what a textarea's selection counts), and back.
pub fn utf16_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].encode_utf16().count()
}

pub fn byte_of(text: &str, utf16: usize) -> usize {
    let mut units = 0;
    for (i, c) in text.char_indices() {
        if units >= utf16 {
            return i;
        }
        units += c.len_utf16();
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str, byte_len: usize) -> Token {
        Token { id: 0, text: text.to_string(), byte_len, special: false }
    }

    /// One unit per token.
    fn per_token(tokens: &[Token]) -> Vec<Unit> {
        (0..tokens.len())
            .map(|i| Unit { first: i, last: i, score: i as f32, error: None })
            .collect()
    }

    fn shown(pieces: &[Piece]) -> Vec<(String, Option<usize>)> {
        pieces.iter().map(|p| (p.text.clone(), p.unit)).collect()
    }

    fn joined(pieces: &[Piece]) -> String {
        pieces.iter().map(|p| p.text.as_str()).collect()
    }

    fn sentence() -> Vec<Token> {
        vec![token("", 0), token("The", 3), token(" cat", 4), token(" sat", 4), token(".", 1)]
    }

    #[test]
    fn an_unedited_text_is_all_units_with_a_marker_for_bos() {
        let tokens = sentence();
        let p = pieces("The cat sat.", "The cat sat.", &tokens, &per_token(&tokens));
        let want = [("", 0), ("The", 1), (" cat", 2), (" sat", 3), (".", 4)];
        assert_eq!(shown(&p), want.map(|(t, k)| (t.to_string(), Some(k))).to_vec());
    }

    #[test]
    fn an_edit_drops_the_touched_and_neighbouring_units_and_shifts_the_rest() {
        let tokens = sentence();
        let units = per_token(&tokens);
        // " cat" → " dog" changes "cat": that unit goes, and so does " sat", which touches the
        // edited stretch (the tokenizer may split it differently now); "The" ends before the
        // untouched space and stays, as does ".".
        let p = pieces("The dog sat.", "The cat sat.", &tokens, &units);
        assert_eq!(joined(&p), "The dog sat.");
        assert_eq!(p.iter().filter_map(|p| p.unit).collect::<Vec<_>>(), vec![0, 1, 4]);
        // "Then " typed before the text reads as "n The" inserted after "The": the units after
        // it shift and keep their characters.
        let p = pieces("Then The cat sat.", "The cat sat.", &tokens, &units);
        assert_eq!(joined(&p), "Then The cat sat.");
        let last = p.iter().find(|p| p.unit == Some(3)).unwrap();
        assert_eq!(last.text, " sat");
        assert_eq!(p.iter().filter_map(|p| p.unit).collect::<Vec<_>>(), vec![0, 3, 4]);
        // Deleting everything keeps nothing but the text.
        let p = pieces("", "The cat sat.", &tokens, &units);
        assert!(p.is_empty());
    }

    #[test]
    fn a_character_split_across_tokens_belongs_to_the_first_and_the_rest_is_a_marker() {
        // "é" is C3 A9: one token holds C3, the next A9 and "t".
        let tokens = vec![token("\\xC3", 1), token("\\xA9t", 2)];
        let p = pieces("ét", "ét", &tokens, &per_token(&tokens));
        assert_eq!(shown(&p), vec![("é".to_string(), Some(0)), ("t".to_string(), Some(1))]);
        let tokens = vec![token("a\\xC3", 2), token("\\xA9", 1)];
        let p = pieces("aé", "aé", &tokens, &per_token(&tokens));
        assert_eq!(shown(&p), vec![("aé".to_string(), Some(0)), (String::new(), Some(1))]);
    }

    #[test]
    fn groups_keep_their_extent() {
        let tokens = sentence();
        let units = vec![
            Unit { first: 0, last: 2, score: 1.0, error: None },
            Unit { first: 3, last: 4, score: 2.0, error: None },
        ];
        let p = pieces("The cat sat.", "The cat sat.", &tokens, &units);
        assert_eq!(shown(&p), vec![("The cat".into(), Some(0)), (" sat.".into(), Some(1))]);
    }

    #[test]
    fn every_character_is_in_one_piece_whatever_the_edit() {
        let tokens = vec![token("ä", 2), token("ö x", 4), token(" 日本", 7), token("語", 3)];
        let computed = "äö x 日本語";
        let units = per_token(&tokens);
        for text in [
            "",
            "ä",
            "äöx 日本語",
            "ö x 日本語",
            "äö x 日本語!",
            "日本語",
            "xäö x 日本",
            "äö y 日本語",
        ] {
            let p = pieces(text, computed, &tokens, &units);
            assert_eq!(joined(&p), text, "{text}");
            for piece in p.iter().filter(|p| p.unit.is_some()) {
                let (s, e) = owned_ranges(&tokens, &units, computed)[piece.unit.unwrap()];
                assert_eq!(piece.text, &computed[s..e], "a kept unit keeps its characters: {text}");
            }
        }
    }

    #[test]
    fn the_caret_finds_its_unit_and_alt_arrows_jump_between_units() {
        let tokens = sentence();
        let p = pieces("The cat sat.", "The cat sat.", &tokens, &per_token(&tokens));
        assert_eq!(unit_at(&p, 0), Some(1));
        assert_eq!(unit_at(&p, 2), Some(1));
        assert_eq!(unit_at(&p, 3), Some(2));
        assert_eq!(unit_at(&p, 4), Some(2));
        assert_eq!(unit_at(&p, 12), Some(4));
        assert_eq!(next_unit_start(&p, 0, true), Some(3));
        assert_eq!(next_unit_start(&p, 5, true), Some(7));
        assert_eq!(next_unit_start(&p, 5, false), Some(3));
        assert_eq!(next_unit_start(&p, 11, true), None);
        let plain = pieces("x", "The", &[token("The", 3)], &per_token(&[token("The", 3)]));
        assert_eq!(unit_at(&plain, 1), None);
    }

    #[test]
    fn utf16_offsets_round_trip() {
        let text = "a😀b日";
        for (byte, unit) in [(0, 0), (1, 1), (5, 3), (6, 4), (9, 5)] {
            assert_eq!(utf16_of(text, byte), unit);
            assert_eq!(byte_of(text, unit), byte);
        }
        assert_eq!(byte_of(text, 99), text.len());
    }
}
