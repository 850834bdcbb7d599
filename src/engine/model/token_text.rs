//! How a byte-level BPE token is shown to people. Byte-level vocabularies spell bytes as
//! printable characters (GPT-2's table: a space is "Ġ", a newline "Ċ"); we map them back to the
//! bytes the model really saw and then show those bytes faithfully.

/// GPT-2's byte → printable-char table, inverted: `char → byte`.
fn byte_level_alphabet() -> [char; 256] {
    let mut chars = ['\0'; 256];
    let mut next_unprintable = 0u32;
    for byte in 0..=255u8 {
        let printable = matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        chars[byte as usize] = if printable {
            byte as char
        } else {
            next_unprintable += 1;
            char::from_u32(255 + next_unprintable).expect("valid code point")
        };
    }
    chars
}

/// Decodes byte-level token spellings ("ĠParis") to the bytes they stand for (b" Paris").
pub struct ByteLevelDecoder {
    to_byte: std::collections::HashMap<char, u8>,
}

impl ByteLevelDecoder {
    pub fn new() -> Self {
        let to_byte =
            byte_level_alphabet().iter().enumerate().map(|(b, c)| (*c, b as u8)).collect();
        Self { to_byte }
    }

    /// The bytes a token spelling stands for; characters outside the alphabet keep their UTF-8.
    pub fn bytes(&self, spelling: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(spelling.len());
        for c in spelling.chars() {
            match self.to_byte.get(&c) {
                Some(b) => out.push(*b),
                None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        out
    }
}

impl Default for ByteLevelDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Text for a token's bytes: valid UTF-8 as is, each byte of an incomplete or invalid sequence as
/// `\xNN` (a token can hold part of a character, e.g. half an emoji). Such bytes are always
/// ≥ 0x80, so `NN` is upper-case hex from `80` to `FF`. So that [`text_to_bytes`] can tell an
/// escape from text that spells one, backslashes right before `x[8-F][0-9A-F]` are doubled (only
/// there: other backslashes, `\n` in code say, show as they are).
pub fn bytes_to_text(bytes: &[u8]) -> String {
    let pieces = pieces(bytes);
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < pieces.len() {
        match pieces[i] {
            Piece::Char('\\') => {
                let run = pieces[i..].iter().take_while(|p| **p == Piece::Char('\\')).count();
                let doubled = reads_as_escape(&pieces[i + run..]);
                out.push_str(&"\\".repeat(if doubled { 2 * run } else { run }));
                i += run;
                continue;
            }
            Piece::Char(c) => out.push(c),
            Piece::Byte(b) => out.push_str(&format!("\\x{b:02X}")),
        }
        i += 1;
    }
    out
}

/// The bytes a [`bytes_to_text`] text stands for (its exact inverse). Any other text reads as its
/// own UTF-8, escapes aside.
pub fn text_to_bytes(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.extend_from_slice(&rest.as_bytes()[..at]);
        let run = rest[at..].bytes().take_while(|b| *b == b'\\').count();
        let after = &rest[at + run..];
        match escaped_byte(after) {
            Some(byte) => {
                // `2k + 1` backslashes: k literal ones and an escape; `2k`: k literal ones.
                out.extend(std::iter::repeat_n(b'\\', run / 2));
                match run % 2 {
                    1 => {
                        out.push(byte);
                        rest = &after[3..];
                    }
                    _ => rest = after,
                }
            }
            None => {
                out.extend(std::iter::repeat_n(b'\\', run));
                rest = after;
            }
        }
    }
    out.extend_from_slice(rest.as_bytes());
    out
}

/// A token's bytes as characters and the bytes no character holds.
#[derive(Clone, Copy, PartialEq)]
enum Piece {
    Char(char),
    Byte(u8),
}

fn pieces(bytes: &[u8]) -> Vec<Piece> {
    bytes
        .utf8_chunks()
        .flat_map(|chunk| {
            chunk
                .valid()
                .chars()
                .map(Piece::Char)
                .chain(chunk.invalid().iter().map(|b| Piece::Byte(*b)))
        })
        .collect()
}

/// Whether `pieces` start with an escaped byte or with text that reads as the rest of one (`x`,
/// then upper-case hex from `80` to `FF`): a backslash before them must be doubled.
fn reads_as_escape(pieces: &[Piece]) -> bool {
    match pieces {
        [Piece::Byte(_), ..] => true,
        [Piece::Char('x'), Piece::Char(hi), Piece::Char(lo), ..] => {
            escaped_byte(&format!("x{hi}{lo}")).is_some()
        }
        _ => false,
    }
}

/// The byte `text` escapes, if it starts with what follows the backslash of an escape.
fn escaped_byte(text: &str) -> Option<u8> {
    let hex = text.strip_prefix('x')?.get(..2)?;
    let upper = hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F'));
    u8::from_str_radix(hex, 16).ok().filter(|b| upper && *b >= 0x80)
}

/// The token's text with invisible characters made visible, for tooltips and the CLI's table:
/// space ␣, newline ↵, carriage return ␍, tab ⇥, other control characters as `\u{..}`.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            ' ' => out.push('␣'),
            '\n' => out.push('↵'),
            '\r' => out.push('␍'),
            '\t' => out.push('⇥'),
            c if c.is_control() => out.push_str(&format!("\\u{{{:04X}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_spelling_maps_back_to_bytes() {
        let d = ByteLevelDecoder::new();
        assert_eq!(d.bytes("ĠParis"), b" Paris");
        assert_eq!(d.bytes("Ċ"), b"\n");
        assert_eq!(d.bytes("ĉ"), b"\t");
        // Every byte round-trips through the alphabet.
        let alphabet = byte_level_alphabet();
        for b in 0..=255u8 {
            assert_eq!(d.bytes(&alphabet[b as usize].to_string()), vec![b]);
        }
    }

    #[test]
    fn partial_utf8_is_escaped_not_lost() {
        let thumbs = "👍".as_bytes();
        assert_eq!(bytes_to_text(&thumbs[..2]), "\\xF0\\x9F");
        assert_eq!(bytes_to_text(b"a\xFFb"), "a\\xFFb");
        assert_eq!(bytes_to_text("日本".as_bytes()), "日本");
    }

    #[test]
    fn text_that_spells_an_escape_stays_distinct_from_the_byte() {
        // Before the doubling, b"\\xE6" and b"\xE6" both showed as `\xE6`.
        assert_eq!(bytes_to_text(b"\\xE6"), "\\\\xE6");
        assert_eq!(bytes_to_text(b"\xE6"), "\\xE6");
        assert_eq!(bytes_to_text(b"\\\xE6"), "\\\\\\xE6"); // a backslash, then the byte
        assert_eq!(bytes_to_text(b"C:\\new \\x41"), "C:\\new \\x41"); // nothing to confuse: shown as is
        for bytes in
            [&b"\\xE6"[..], b"\xE6", b"\\\xE6", b"\\\\xE6\\", b"a\xFF\\", b"\\x8", b"\\xe6"]
        {
            assert_eq!(text_to_bytes(&bytes_to_text(bytes)), bytes, "{bytes:?}");
        }
    }

    #[test]
    fn whitespace_is_made_visible() {
        assert_eq!(visible(" a\n\tb\r\u{7}"), "␣a↵⇥b␍\\u{0007}");
    }
}
