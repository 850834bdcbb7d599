//! The default model: the file the page loads when nothing names another, with its size and
//! digest. Declared once, in `default-model.env` at the repository's root, which the scripts, the
//! Makefile and the tests read too.

const DECLARATION: &str = include_str!("../../default-model.env");

fn value(key: &str) -> &'static str {
    let line = DECLARATION.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix('='));
    line.unwrap_or_default().trim()
}

pub fn file_name() -> &'static str {
    value("MODEL_FILE")
}

pub fn bytes() -> u64 {
    value("MODEL_BYTES").parse().unwrap_or(0)
}

pub fn sha256() -> &'static str {
    value("MODEL_SHA256")
}

/// Where the page serves it, relative to the page.
pub fn url() -> String {
    format!("models/{}", file_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declaration_is_complete() {
        assert!(file_name().ends_with(".gguf") && !file_name().contains('/'), "{}", file_name());
        assert!(bytes() > 0);
        assert!(sha256().len() == 64 && sha256().bytes().all(|b| b.is_ascii_hexdigit()));
    }

    /// The page's preset list names the same file, size and digest as its default.
    #[test]
    fn the_preset_list_s_default_is_this_model() {
        let presets: serde_json::Value =
            serde_json::from_str(include_str!("../../public/models.json")).unwrap();
        let defaults: Vec<&serde_json::Value> =
            presets["models"].as_array().unwrap().iter().filter(|m| m["default"] == true).collect();
        assert_eq!(defaults.len(), 1, "one default preset");
        assert_eq!(defaults[0]["url"], url());
        assert_eq!(defaults[0]["bytes"], bytes());
        assert_eq!(defaults[0]["sha256"], sha256());
    }
}
