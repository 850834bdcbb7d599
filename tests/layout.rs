//! The folder rule of ARCHITECTURE.md, checked on the source: each folder imports only from the
//! folders below it, and no two files or folders import each other, directly or round a loop.
//! Imports are read from the text (`use` trees, and `crate::…`, `super::…` and `salient::…` paths
//! in code), which is all this tree uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module prefixes, the most specific first wins, and the prefixes each may import besides its
/// own. `engine::error` is everyone's; the engine's root files (`mod.rs`, `api.rs`) sit on top of
/// the engine.
const RULES: &[(&str, &[&str])] = &[
    ("engine::error", &[]),
    ("engine::runtime", &["engine::error"]),
    ("engine::model", &["engine::error", "engine::runtime"]),
    ("engine::cpu::kernels", &["engine::error", "engine::runtime", "engine::model"]),
    (
        "engine::cpu::ops",
        &["engine::error", "engine::runtime", "engine::model", "engine::cpu::kernels"],
    ),
    ("engine::cpu", &["engine::error", "engine::runtime", "engine::model"]),
    ("engine::gpu", &["engine::error", "engine::runtime", "engine::model"]),
    (
        "engine::attribution",
        &["engine::error", "engine::runtime", "engine::model", "engine::cpu", "engine::gpu"],
    ),
    ("engine::evaluation::metrics", &["engine::error", "engine::runtime"]),
    ("engine", &["engine"]),
    ("state", &["engine"]),
    (
        "web::page::view",
        &["engine", "state", "web::page", "web::protocol", "web::address", "web::model_cache"],
    ),
    (
        "web::page",
        &["engine", "state", "web::protocol", "web::address", "web::crash", "web::model_cache"],
    ),
    ("web::worker", &["engine", "state", "web::protocol", "web::crash", "web::model_cache"]),
    ("web", &["engine", "state", "web"]),
    ("bin::salient-web", &["web"]),
    ("bin", &["engine", "state"]),
];

/// Imports no file under the first prefix may make from under the second, although its rule's own
/// prefix covers them: the page's state and actions never import its views.
const FORBIDDEN: &[(&str, &str)] = &[("web::page", "web::page::view")];

/// A source file: its module path (`engine::cpu::ops::rope`) and what it imports, as module paths
/// resolved to the files that define them.
struct File {
    module: String,
    imports: BTreeSet<String>,
}

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/engine/cpu/mod.rs` → `engine::cpu`; `src/bin/salient/main.rs` → `bin::salient::main`.
fn module_of(path: &Path) -> String {
    let relative = path.strip_prefix(source_root()).unwrap().with_extension("");
    let parts: Vec<String> =
        relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    let parts = match parts.last().map(String::as_str) {
        Some("mod") | Some("lib") => &parts[..parts.len() - 1],
        _ => &parts[..],
    };
    parts.join("::")
}

/// Source without comments and string literals, so that neither is read as an import.
fn code_only(source: &str) -> String {
    let (mut out, mut chars) = (String::with_capacity(source.len()), source.chars().peekable());
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut previous = ' ';
                for c in chars.by_ref() {
                    if previous == '*' && c == '/' {
                        break;
                    }
                    previous = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match (escaped, c) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => escaped = false,
                    }
                }
                out.push_str("\"\"");
            }
            // A char literal ('"' would open a string above); lifetimes pass through.
            '\'' if chars.clone().nth(1) == Some('\'') || chars.peek() == Some(&'\\') => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The paths a `use` tree names: `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand_use(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let leaf = tree.split(" as ").next().unwrap();
        return vec![leaf.chars().filter(|c| !c.is_whitespace()).collect()];
    };
    let prefix: String = tree[..open].chars().filter(|c| !c.is_whitespace()).collect();
    let inner = &tree[open + 1..tree.rfind('}').unwrap()];
    let (mut depth, mut start, mut parts) = (0, 0, Vec::new());
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|part| !part.trim().is_empty())
        .flat_map(|part| {
            let prefix = prefix.clone();
            expand_use(part).into_iter().map(move |p| format!("{prefix}{p}"))
        })
        .collect()
}

/// Every path the code names that starts at the crate (`crate::`, `salient::`) or the parent
/// module (`super::`), resolved to a module path from the crate root.
fn named_paths(code: &str, module: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        rest = &rest[at + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest.find(';').unwrap_or(rest.len());
        paths.extend(expand_use(&rest[..end]));
    }
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
    for (at, _) in code.match_indices("::") {
        let start = code[..at].rfind(|c: char| !word(c)).map_or(0, |i| i + 1);
        let end = at + code[at..].find(|c: char| !word(c)).unwrap_or(code.len() - at);
        paths.push(code[start..end].trim_end_matches(':').to_string());
    }
    // `super` is the module above this file's (`module_of` names a mod.rs by its folder).
    let parent = module.rsplit_once("::").map_or("", |p| p.0);
    paths
        .into_iter()
        .filter_map(|path| {
            let path = path.trim_start_matches("::");
            match path.strip_prefix("crate::").or(path.strip_prefix("salient::")) {
                Some(rest) => Some(rest.to_string()),
                None => path.strip_prefix("super::").map(|rest| match parent.is_empty() {
                    true => rest.to_string(),
                    false => format!("{parent}::{rest}"),
                }),
            }
        })
        .collect()
}

/// The file module that defines `path`: its longest prefix that is one.
fn defining_module(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len()).rev().map(|n| parts[..n].join("::")).find(|m| modules.contains(m))
}

fn files() -> BTreeMap<String, File> {
    let mut paths = Vec::new();
    rust_files(&source_root(), &mut paths);
    let modules: BTreeSet<String> = paths.iter().map(|p| module_of(p)).collect();
    paths
        .iter()
        .map(|path| {
            let module = module_of(path);
            let is_mod_file = path.file_stem().is_some_and(|s| s == "mod" || s == "lib");
            let code = code_only(&std::fs::read_to_string(path).unwrap());
            let imports = named_paths(&code, &module)
                .iter()
                .filter_map(|p| defining_module(p, &modules))
                // A folder's mod.rs may name its own files (declarations, re-exports, registries).
                .filter(|m| *m != module && !(is_mod_file && is_within(m, &module)))
                .collect();
            (module.clone(), File { module, imports })
        })
        .collect()
}

fn is_within(module: &str, prefix: &str) -> bool {
    prefix.is_empty() || module == prefix || module.starts_with(&format!("{prefix}::"))
}

fn rule_of(module: &str) -> Option<&'static (&'static str, &'static [&'static str])> {
    RULES.iter().find(|(prefix, _)| is_within(module, prefix))
}

#[test]
fn every_folder_imports_only_what_its_rule_allows() {
    let files = files();
    assert!(files.len() > 50, "{} source files found", files.len());
    let mut broken = Vec::new();
    for file in files.values() {
        let Some((own, allowed)) = rule_of(&file.module) else { continue };
        for import in &file.imports {
            let forbidden = FORBIDDEN.iter().any(|(from, to)| {
                is_within(&file.module, from)
                    && !is_within(&file.module, to)
                    && is_within(import, to)
            });
            let permitted = is_within(import, own)
                || allowed.iter().any(|a| is_within(import, a))
                || import == "engine::error"
                || import.starts_with("engine::error::");
            let permitted = permitted && !forbidden;
            if !permitted {
                broken.push(format!("{} imports {import}", file.module));
            }
        }
    }
    assert!(broken.is_empty(), "imports against the folder rule:\n{}", broken.join("\n"));
}

/// The groups of nodes of `graph` (nodes to the nodes they import) that import each other round a
/// loop: its strongly connected components of more than one node (Tarjan's algorithm).
fn tangles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Search<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, (usize, usize)>, // (order visited, lowest order reachable)
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Search<'g> {
        fn visit(&mut self, node: &'g str) {
            let order = self.index.len();
            self.index.insert(node, (order, order));
            self.stack.push(node);
            for next in self.graph.get(node).into_iter().flatten() {
                let reach = match self.index.get(next.as_str()) {
                    None => {
                        self.visit(next);
                        self.index[next.as_str()].1
                    }
                    Some(&(visited, _)) if self.stack.contains(&next.as_str()) => visited,
                    Some(_) => continue,
                };
                let own = self.index.get_mut(node).unwrap();
                own.1 = own.1.min(reach);
            }
            if self.index[node].0 == self.index[node].1 {
                let at = self.stack.iter().rposition(|n| *n == node).unwrap();
                let group: Vec<String> = self.stack.drain(at..).map(String::from).collect();
                if group.len() > 1 {
                    self.found.push(group);
                }
            }
        }
    }
    let mut search = Search { graph, index: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for node in graph.keys() {
        if !search.index.contains_key(node.as_str()) {
            search.visit(node);
        }
    }
    search.found
}

fn assert_untangled(graph: &BTreeMap<String, BTreeSet<String>>, what: &str) {
    let found = tangles(graph);
    let shown: Vec<String> = found
        .iter()
        .map(|group| {
            let edges: Vec<String> = group
                .iter()
                .flat_map(|from| {
                    graph[from]
                        .iter()
                        .filter(|to| group.contains(to))
                        .map(move |to| format!("{from} → {to}"))
                })
                .collect();
            edges.join(", ")
        })
        .collect();
    assert!(found.is_empty(), "{what} that import each other:\n{}", shown.join("\n"));
}

#[test]
fn no_files_import_each_other_round_a_loop() {
    let graph: BTreeMap<String, BTreeSet<String>> =
        files().into_values().map(|f| (f.module, f.imports)).collect();
    assert_untangled(&graph, "files");
}

/// The folder of a file module: `engine::cpu::ops::rope` → `engine::cpu::ops` (a folder's
/// mod.rs is the folder). `engine::error`, which every layer imports, stands apart from the
/// engine's root folder, which imports every layer.
fn folder_of(module: &str, folders: &BTreeSet<String>) -> String {
    match folders.contains(module) || module == "engine::error" {
        true => module.to_string(),
        false => module.rsplit_once("::").map_or(String::new(), |p| p.0.to_string()),
    }
}

#[test]
fn no_folders_import_each_other_round_a_loop() {
    let mut dirs = Vec::new();
    rust_files(&source_root(), &mut dirs);
    let folders: BTreeSet<String> = dirs
        .iter()
        .filter(|p| p.file_stem().is_some_and(|s| s == "mod"))
        .map(|p| module_of(p))
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files().into_values() {
        let from = folder_of(&file.module, &folders);
        for import in file.imports {
            let to = folder_of(&import, &folders);
            if to != from {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    assert_untangled(&graph, "folders");
}

/// The checker reads what it must (a known import, a `super` path, a grouped `use` tree) and
/// finds loops.
#[test]
fn the_checker_reads_imports_and_finds_loops() {
    let files = files();
    let problem = &files["engine::attribution::problem"].imports;
    assert!(problem.contains("engine::model"), "{problem:?}");
    assert!(problem.contains("engine::runtime::context"), "{problem:?}");
    let saliency = &files["engine::attribution::methods::saliency"].imports;
    assert!(saliency.contains("engine::attribution::methods"), "{saliency:?}");
    assert_eq!(
        expand_use("crate::a::{b, c::{d, e as f}}"),
        ["crate::a::b", "crate::a::c::d", "crate::a::c::e"]
    );
    assert_eq!(code_only("let s = \"crate::web::x\"; // crate::web::y\n"), "let s = \"\"; \n");
    let graph = |edges: &[(&str, &str)]| {
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            graph.entry(from.to_string()).or_default().insert(to.to_string());
            graph.entry(to.to_string()).or_default();
        }
        graph
    };
    assert!(tangles(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
    let mut found = tangles(&graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]));
    found[0].sort();
    assert_eq!(found, [["a", "b", "c"]]);
}
