//! ARCHITECTURE.md stays true: every file or folder it names in backticks exists, and every Rust
//! item it names (`RunContext`, `Problem::new`, `engine::run`, `METHODS`) is defined in `src/`.
//! Lowercase single words are not read as items (they could be anything); the "Before" column of
//! the moved-files table names paths that are gone on purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The text's backticked spans outside fenced code blocks, leaving out the first cell of each row
/// of the table under `## Moved files`.
fn named(text: &str) -> Vec<String> {
    let (mut spans, mut fenced, mut moved) = (Vec::new(), false, false);
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if line.starts_with("## ") {
            moved = line == "## Moved files";
        }
        if fenced {
            continue;
        }
        let line = match (moved, line.strip_prefix('|')) {
            (true, Some(row)) => row.split_once('|').map_or("", |(_, rest)| rest),
            _ => line,
        };
        spans.extend(line.split('`').skip(1).step_by(2).map(String::from));
    }
    spans
}

fn is_path(span: &str) -> bool {
    const EXTENSIONS: [&str; 12] =
        ["rs", "md", "mjs", "js", "sh", "toml", "json", "html", "py", "wgsl", "env", "css"];
    let extension = span.rsplit_once('.').map(|(_, e)| e);
    !span.contains(' ')
        && (span.contains('/') || extension.is_some_and(|e| EXTENSIONS.contains(&e)))
}

fn is_item(span: &str) -> bool {
    let span = span.trim_end_matches("()");
    let word = |w: &str| {
        !w.is_empty()
            && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !w.starts_with(|c: char| c.is_ascii_digit())
    };
    span.split("::").all(word) && (span.contains("::") || span.starts_with(char::is_uppercase))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        // Build output and downloads are not part of a fresh clone.
        let ignored = ["target", "node_modules", "dist", "test-out", "bench-out"];
        if ignored.iter().any(|i| name == *i) || name.to_string_lossy().starts_with('.') {
            continue;
        }
        out.push(path.clone());
        if path.is_dir() {
            files_under(&path, out);
        }
    }
}

/// A path as written: from the repository's root, or (a file or folder named within its folder's
/// section, `ops/`, `linear.rs`) the end of some path in the repository.
fn path_exists(span: &str, all: &[String]) -> bool {
    if span.starts_with('~') || span.contains('*') || span.contains('$') {
        return true; // a place on the user's machine, or a pattern
    }
    let span = span.trim_end_matches('/');
    root().join(span).exists() || all.iter().any(|p| p.ends_with(&format!("/{span}")))
}

/// The names each source file defines or re-exports, by module path (`engine::cpu::ops::linear`).
fn definitions() -> BTreeMap<String, BTreeSet<String>> {
    let mut paths = Vec::new();
    files_under(&root().join("src"), &mut paths);
    let mut defined = BTreeMap::new();
    for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "rs")) {
        let relative = path.strip_prefix(root().join("src")).unwrap().with_extension("");
        let mut module: Vec<String> =
            relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
            module.pop();
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let mut names = BTreeSet::new();
        for line in source.lines() {
            let line = line.trim_start();
            let line =
                line.strip_prefix("pub(crate) ").or(line.strip_prefix("pub ")).unwrap_or(line);
            let line = line.strip_prefix("async ").unwrap_or(line);
            for keyword in
                ["fn ", "struct ", "enum ", "trait ", "type ", "const ", "static ", "mod "]
            {
                if let Some(rest) = line.strip_prefix(keyword) {
                    let name: String =
                        rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    names.insert(name);
                }
            }
            // Enum variants, and the names a `pub use` re-exports.
            let word: String =
                line.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if word.starts_with(char::is_uppercase)
                && line[word.len()..].trim_start().starts_with(['(', '{', ','])
            {
                names.insert(word);
            }
            if let Some(list) = line.strip_prefix("use ").filter(|_| source.contains("pub use")) {
                names.extend(
                    list.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .filter(|w| !w.is_empty())
                        .map(String::from),
                );
            }
        }
        defined.insert(module.join("::"), names);
    }
    defined
}

/// `engine::run`, `runtime::ready::now`: a module (its path's end) that defines the last name.
/// `Problem::new`, `EngineError`: a file that defines the first name and the last.
fn item_exists(span: &str, defined: &BTreeMap<String, BTreeSet<String>>) -> bool {
    let parts: Vec<&str> = span.trim_end_matches("()").split("::").collect();
    let (last, first) = (parts[parts.len() - 1], parts[0]);
    let prefix = parts[..parts.len() - 1].join("::");
    let in_module = !prefix.is_empty()
        && defined.iter().any(|(module, names)| {
            (module == &prefix || module.ends_with(&format!("::{prefix}"))) && names.contains(last)
        });
    in_module || defined.values().any(|names| names.contains(first) && names.contains(last))
}

#[test]
fn architecture_md_names_only_what_exists() {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    assert!(text.lines().count() < 400, "ARCHITECTURE.md is to stay under 400 lines");
    let mut all = Vec::new();
    files_under(root(), &mut all);
    let all: Vec<String> = all.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let defined = definitions();
    let spans = named(&text);
    let (mut paths, mut items, mut missing) = (0, 0, Vec::new());
    for span in &spans {
        if is_path(span) {
            paths += 1;
            if !path_exists(span, &all) {
                missing.push(format!("path {span}"));
            }
        } else if is_item(span) {
            items += 1;
            if !item_exists(span, &defined) {
                missing.push(format!("item {span}"));
            }
        }
    }
    assert!(paths > 40 && items > 30, "{paths} paths and {items} items read");
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names what does not exist:\n{}",
        missing.join("\n")
    );
}

/// The checks can fail: a path, a module's item and a type's method that do not exist.
#[test]
fn the_checks_catch_what_is_gone() {
    let mut all = Vec::new();
    files_under(root(), &mut all);
    let all: Vec<String> = all.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let defined = definitions();
    assert!(path_exists("src/engine/cpu/ops/", &all) && path_exists("linear.rs", &all));
    assert!(!path_exists("src/engine/frozen_linear.rs", &all));
    assert!(item_exists("engine::run", &defined) && item_exists("Problem::new", &defined));
    assert!(!item_exists("engine::fly", &defined) && !item_exists("Problem::fly", &defined));
    assert!(is_item("RunOutput::check") && !is_item("salient attribute") && !is_item("run"));
    assert_eq!(
        named("a `x` b\n| `old.rs` | `new.rs` |\n## Moved files\n| `old.rs` | `new.rs` |"),
        ["x", "old.rs", "new.rs", "new.rs"]
    );
}
