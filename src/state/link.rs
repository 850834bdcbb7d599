//! Share links: a value serialised as JSON, deflated and written in base64url after a version
//! tag, so a whole page state fits in a URL fragment (which browsers never send to a server).
//!
//! `v1.` + base64url(deflate(JSON)). A later format gets a new tag; decoders for every older
//! tag stay, so links made today keep opening.
//!
//! Decoding is hostile-input safe: the link's length is capped before anything else, the
//! inflated size is capped too (a deflate bomb stops at the cap), and every failure is a
//! message, never a panic.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;

/// The version written by [`encode`].
pub const CURRENT_VERSION: u32 = 1;
/// Longest link payload accepted (browsers and chat apps cut URLs near 64 KiB anyway).
pub const MAX_LINK_CHARS: usize = 256 * 1024;
/// Largest inflated JSON accepted.
pub const MAX_JSON_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    Empty,
    TooLong { chars: usize },
    UnknownVersion(String),
    NotBase64,
    NotDeflate,
    TooLarge,
    NotJson(String),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self {
            LinkError::Empty => "it holds no state".to_string(),
            LinkError::TooLong { chars } => {
                format!("it is {chars} characters long (at most {MAX_LINK_CHARS})")
            }
            LinkError::UnknownVersion(tag) => {
                format!("its format \"{tag}\" is unknown (this page reads up to v{CURRENT_VERSION}; a newer Salient made it?)")
            }
            LinkError::NotBase64 => {
                "it is not valid base64url: it may have been cut or altered".into()
            }
            LinkError::NotDeflate => "its data is corrupt: it may have been cut or altered".into(),
            LinkError::TooLarge => {
                format!("its data unpacks to more than {} MiB", MAX_JSON_BYTES >> 20)
            }
            LinkError::NotJson(e) => format!("its content does not describe a Salient state ({e})"),
        };
        write!(f, "This share link cannot be opened: {why}.")
    }
}

impl std::error::Error for LinkError {}

/// `value` as a link payload in the current version.
pub fn encode<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).expect("share state serialises to JSON");
    let packed = miniz_oxide::deflate::compress_to_vec(&json, 9);
    format!("v{CURRENT_VERSION}.{}", URL_SAFE_NO_PAD.encode(packed))
}

/// The value a link payload holds, and the version it was written in.
pub fn decode<T: DeserializeOwned>(payload: &str) -> Result<(T, u32), LinkError> {
    let payload = payload.trim();
    if payload.is_empty() {
        return Err(LinkError::Empty);
    }
    if payload.len() > MAX_LINK_CHARS {
        return Err(LinkError::TooLong { chars: payload.chars().count() });
    }
    let (tag, body) = payload.split_once('.').unwrap_or((payload, ""));
    match tag {
        "v1" => Ok((decode_v1(body)?, 1)),
        other => Err(LinkError::UnknownVersion(other.chars().take(16).collect())),
    }
}

fn decode_v1<T: DeserializeOwned>(body: &str) -> Result<T, LinkError> {
    let packed = URL_SAFE_NO_PAD.decode(body).map_err(|_| LinkError::NotBase64)?;
    let json = miniz_oxide::inflate::decompress_to_vec_with_limit(&packed, MAX_JSON_BYTES)
        .map_err(|e| match e.status {
            miniz_oxide::inflate::TINFLStatus::HasMoreOutput => LinkError::TooLarge,
            _ => LinkError::NotDeflate,
        })?;
    serde_json::from_slice(&json).map_err(|e| LinkError::NotJson(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct State {
        text: String,
        scores: Vec<f32>,
    }

    fn state() -> State {
        State {
            text: "Ünïcødé <script>alert(1)</script> 東京 🙂\n".repeat(3),
            scores: vec![0.5, -1.25, 3.0e-7],
        }
    }

    #[test]
    fn round_trips_and_is_url_safe() {
        let link = encode(&state());
        assert!(link.starts_with("v1."));
        assert!(link.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "{link}");
        assert_eq!(decode::<State>(&link).unwrap(), (state(), 1));
        // Repetitive text compresses: the link is shorter than the JSON.
        assert!(link.len() < serde_json::to_string(&state()).unwrap().len());
    }

    #[test]
    fn hostile_links_give_messages() {
        let link = encode(&state());
        assert_eq!(decode::<State>(""), Err(LinkError::Empty));
        assert!(
            matches!(decode::<State>("v9.abc"), Err(LinkError::UnknownVersion(t)) if t == "v9")
        );
        assert_eq!(decode::<State>("v1.***"), Err(LinkError::NotBase64));
        let cut = 3 + (link.len() - 3) / 2 / 4 * 4; // still whole base64 quads, half the deflate stream
        assert_eq!(decode::<State>(&link[..cut]), Err(LinkError::NotDeflate));
        let not_state = format!(
            "v1.{}",
            URL_SAFE_NO_PAD.encode(miniz_oxide::deflate::compress_to_vec(b"[1,2]", 9))
        );
        assert!(matches!(decode::<State>(&not_state), Err(LinkError::NotJson(_))));
        let huge = "v1.".to_string() + &"A".repeat(MAX_LINK_CHARS);
        assert!(matches!(decode::<State>(&huge), Err(LinkError::TooLong { .. })));
        // A deflate bomb: 64 MiB of zeros packs into a few KiB and must stop at the cap.
        let bomb = format!(
            "v1.{}",
            URL_SAFE_NO_PAD.encode(miniz_oxide::deflate::compress_to_vec(&vec![b' '; 64 << 20], 9))
        );
        assert!(bomb.len() < MAX_LINK_CHARS);
        assert_eq!(decode::<State>(&bomb), Err(LinkError::TooLarge));
        for e in [LinkError::Empty, LinkError::NotBase64, LinkError::TooLarge] {
            assert!(e.to_string().starts_with("This share link cannot be opened"));
        }
    }
}
