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
        let to_byte = byte_level_alphabet().iter().enumerate().map(|(b, c)| (*c, b as u8)).collect();
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
/// `\xNN` (a token can hold part of a character, e.g. half an emoji).
pub fn bytes_to_text(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).expect("checked by valid_up_to"));
                let bad = e.error_len().unwrap_or(after.len());
                for b in &after[..bad] {
                    out.push_str(&format!("\\x{b:02X}"));
                }
                rest = &after[bad..];
            }
        }
    }
    out
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
    fn whitespace_is_made_visible() {
        assert_eq!(visible(" a\n\tb\r\u{7}"), "␣a↵⇥b␍\\u{0007}");
    }
}
