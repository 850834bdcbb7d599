//! What a model download's server says about it, read as a hostile value: the size in its
//! Content-Length header is used for the memory check before any byte is stored, so only a plain
//! count of bytes counts.

/// The largest size taken at its word: 2⁵³ bytes, where f64 still counts every byte.
const MAX_DECLARED_BYTES: u64 = 1 << 53;

/// The size a Content-Length header declares: digits only, at most 2⁵³. `1e30`, `inf`, `-1`,
/// `+5`, `0x10` or a list of values say nothing (`None`: the size is unknown).
pub fn content_length(header: &str) -> Option<u64> {
    let digits = header.trim();
    let plain =
        !digits.is_empty() && digits.len() <= 16 && digits.bytes().all(|b| b.is_ascii_digit());
    plain.then(|| digits.parse::<u64>().ok()).flatten().filter(|n| *n <= MAX_DECLARED_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_count_of_bytes_is_a_size() {
        assert_eq!(content_length("98362432"), Some(98_362_432));
        assert_eq!(content_length(" 5000000000 "), Some(5_000_000_000));
        assert_eq!(content_length("0"), Some(0));
        for header in [
            "",
            "1e30",
            "inf",
            "Infinity",
            "NaN",
            "-1",
            "+5",
            "0x10",
            "5, 5",
            "1.5",
            "9007199254740993",
        ] {
            assert_eq!(content_length(header), None, "{header:?}");
        }
    }
}
