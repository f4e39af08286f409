//! The layout's boundaries, read from the source: no face imports another
//! face or the router, no SQL outside storage and the database engine, and
//! storage imports nothing above it. Unlike the other files here, these
//! tests start no server.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Modules under `src/face/` that any face may use: the codecs and the
/// JSON arguments.
const FACE_HELPERS: &[&str] = &["xml_tree", "xcp_xml", "bdom_xml", "epp_xml", "json_args"];

/// What `src/store/` must not import: everything above storage.
const ABOVE_STORE: &[&str] = &[
    "face", "http", "desk", "ticker", "outbox", "delivery", "mail", "registry",
];

/// What gives SQL away in code: the calls that run it and the statement
/// cache's trait.
const SQL_CALLS: &[&str] = &[
    "prepare(",
    "prepare_cached(",
    "execute(",
    "execute_batch(",
    "query_row(",
    "query_map(",
    "Cached",
    "rusqlite",
];

/// What gives SQL away in a string literal (lower-cased): each entry's
/// words, in this order.
const SQL_WORDS: &[&[&str]] = &[
    &["select ", " from "],
    &["insert into "],
    &["update ", " set "],
    &["delete from "],
    &["create table"],
    &["create index"],
    &["drop table"],
    &["drop trigger"],
    &[" where ", " = "],
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `.rs` files under `dir` (relative to the crate), recursively, as
/// (path from the crate root, text).
fn sources(dir: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut todo = vec![root().join(dir)];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path).expect("a source file");
                out.push((relative(&path), text));
            }
        }
    }
    out.sort();
    out
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Each line's code without its `//` comment (a `//` inside a string is
/// left alone), numbered from 1.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, strip_comment(line)))
        .collect()
}

/// `code_lines`, with a `use` written over several lines joined into its
/// first line.
fn statements(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut open = false;
    for (n, code) in code_lines(text) {
        if open {
            if let Some((_, joined)) = out.last_mut() {
                joined.push_str(code.trim());
            }
        } else {
            out.push((n, code.clone()));
        }
        let trimmed = code.trim_start();
        let starts = trimmed.starts_with("use ") || trimmed.starts_with("pub use ");
        if starts && !code.contains(';') {
            open = true;
        }
        if open && code.contains(';') {
            open = false;
        }
    }
    out
}

fn strip_comment(line: &str) -> String {
    let mut in_str = false;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        if c == '"' && prev != '\\' {
            in_str = !in_str;
        }
        if !in_str && c == '/' && prev == '/' {
            return line[..i - 1].to_string();
        }
        prev = if prev == '\\' && c == '\\' { ' ' } else { c };
    }
    line.to_string()
}

/// The modules of `crate` a line names: `crate::a::b` gives `a::b`, and
/// `use crate::{a, b::c}` gives `a` and `b::c` (one level of braces).
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        out.extend(expand(rest));
    }
    out
}

/// The paths at the start of `rest` (after a `crate::`).
fn expand(rest: &str) -> Vec<String> {
    let path: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
        .collect();
    let after = &rest[path.len()..];
    let mut out = vec![path.trim_end_matches(':').to_string()];
    if !after.starts_with('{') {
        return out;
    }
    let inner = after[1..].split('}').next().unwrap_or_default();
    let items = inner
        .split(',')
        .map(|item| item.trim().split(" as ").next().unwrap_or_default())
        .filter(|item| !item.is_empty())
        .map(|item| {
            let item = if item == "self" { "" } else { item };
            format!("{path}{item}").trim_end_matches(':').to_string()
        });
    out.extend(items);
    out.retain(|p| !p.is_empty());
    out.dedup();
    out
}

/// The string literals of a line, lower-cased (a literal spanning lines is
/// seen line by line).
fn literals(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    let mut escaped = false;
    for c in code.chars() {
        match &mut current {
            Some(s) if escaped => {
                s.push(c);
                escaped = false;
            }
            Some(_) if c == '\\' => escaped = true,
            Some(s) if c == '"' => {
                out.push(s.to_lowercase());
                current = None;
            }
            Some(s) => s.push(c),
            None if c == '"' => current = Some(String::new()),
            None => {}
        }
    }
    if let Some(s) = current {
        out.push(s.to_lowercase());
    }
    out
}

fn looks_like_sql(literal: &str) -> bool {
    SQL_WORDS.iter().any(|words| {
        let mut at = 0;
        words.iter().all(|w| match literal[at..].find(w) {
            Some(i) => {
                at += i + w.len();
                true
            }
            None => false,
        })
    })
}

/// Fails naming every offending file and line.
fn report(what: &str, found: Vec<String>) {
    assert!(found.is_empty(), "{what}:\n{}", found.join("\n"));
}

#[test]
fn no_face_imports_another_face() {
    let mut found = Vec::new();
    for (file, text) in sources("src/face") {
        let own = Path::new(&file)
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        for (n, code) in statements(&text) {
            for path in crate_paths(&code) {
                if path.starts_with("http::router") {
                    found.push(format!(
                        "{file}:{n}: imports http::router, which imports the faces"
                    ));
                }
                let Some(rest) = path.strip_prefix("face::") else {
                    continue;
                };
                let module = rest.split("::").next().unwrap_or_default();
                if module != own && !FACE_HELPERS.contains(&module) {
                    found.push(format!("{file}:{n}: imports face::{module}"));
                }
            }
            let trimmed = code.trim_start();
            if let Some(rest) = trimmed.strip_prefix("use super::") {
                let module = rest.split([':', ';', '{', ' ']).next().unwrap_or_default();
                if module != "*" && !FACE_HELPERS.contains(&module) {
                    found.push(format!("{file}:{n}: imports face::{module}"));
                }
            }
        }
    }
    report("a face imports another face", found);
}

/// Where SQL may live: storage, and the engine's own (pragmas,
/// migrations, backups).
const SQL_HOMES: &[&str] = &["src/store/", "src/db/"];

/// Each place a line of `text` runs SQL or a face holds a connection, as
/// `file:line: what`; a file's `#[cfg(test)]` module, and what follows it,
/// may set up its tests with SQL.
fn sql_in(file: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    for (n, code) in code_lines(code) {
        for call in SQL_CALLS {
            if code.contains(call) {
                found.push(format!("{file}:{n}: {call}"));
            }
        }
        if file.starts_with("src/face/") && code.contains("Connection") {
            found.push(format!("{file}:{n}: a face holds a Connection"));
        }
        for literal in literals(&code) {
            if looks_like_sql(&literal) {
                found.push(format!("{file}:{n}: SQL in {literal:?}"));
            }
        }
    }
    found
}

#[test]
fn no_sql_outside_the_store_and_the_database_engine() {
    let mut found = Vec::new();
    for (file, text) in sources("src") {
        if !SQL_HOMES.iter().any(|home| file.starts_with(home)) {
            found.extend(sql_in(&file, &text));
        }
    }
    report("SQL outside src/store/ and src/db/", found);
}

#[test]
fn storage_imports_nothing_above_it() {
    let mut found = Vec::new();
    for (file, text) in sources("src/store") {
        for (n, code) in statements(&text) {
            for path in crate_paths(&code) {
                let module = path.split("::").next().unwrap_or_default();
                if ABOVE_STORE.contains(&module) {
                    found.push(format!("{file}:{n}: imports {module}"));
                }
            }
        }
    }
    report("storage imports what is above it", found);
}

/// The module path of a source file: `src/a/b.rs` is `a::b`, and
/// `src/a/mod.rs` is `a`.
fn module_of(file: &str) -> String {
    let path = file.trim_start_matches("src/").trim_end_matches(".rs");
    path.trim_end_matches("/mod").replace('/', "::")
}

/// The longest of `modules` that `path` starts with.
fn resolve<'a>(modules: &'a BTreeSet<String>, path: &str) -> Option<&'a String> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .find_map(|n| modules.get(&parts[..n].join("::")))
}

/// What each module of `src/` imports of the others, leaving out its own
/// ancestors (a child may use what its parent declares).
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let files: Vec<(String, String)> = sources("src")
        .into_iter()
        .filter(|(f, _)| f != "src/lib.rs" && f != "src/main.rs")
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|(f, _)| module_of(f)).collect();
    let mut graph = BTreeMap::new();
    for (file, text) in &files {
        let own = module_of(file);
        let parent = if file.ends_with("/mod.rs") {
            own.clone()
        } else {
            own.rsplit_once("::")
                .map(|(p, _)| p.to_string())
                .unwrap_or_default()
        };
        let mut names = BTreeSet::new();
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (_, code) in statements(text) {
            let mut paths = crate_paths(&code);
            let mut rest = code.as_str();
            while let Some(at) = rest.find("super::") {
                rest = &rest[at + "super::".len()..];
                paths.extend(expand(rest).into_iter().map(|p| format!("{parent}::{p}")));
            }
            for path in paths {
                if let Some(m) = resolve(&modules, &path) {
                    let ancestor = own == *m || own.starts_with(&format!("{m}::"));
                    if !ancestor {
                        names.insert(m.clone());
                    }
                }
            }
        }
        graph.insert(own, names);
    }
    graph
}

/// A cycle through `at`, if the graph has one reachable from it.
fn cycle_from(
    graph: &BTreeMap<String, BTreeSet<String>>,
    at: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(i) = path.iter().position(|m| m == at) {
        let mut cycle = path[i..].to_vec();
        cycle.push(at.to_string());
        return Some(cycle);
    }
    if !done.insert(at.to_string()) {
        return None;
    }
    path.push(at.to_string());
    for next in graph.get(at).into_iter().flatten() {
        if let Some(cycle) = cycle_from(graph, next, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    None
}

#[test]
fn no_two_modules_import_each_other_round_a_cycle() {
    let graph = imports();
    let mut done = BTreeSet::new();
    let mut found = Vec::new();
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, module, &mut Vec::new(), &mut done) {
            found.push(cycle.join(" -> "));
        }
    }
    report("modules import each other in a cycle", found);
}

/// Configuration checks are leaves: `config` imports no feature module.
#[test]
fn configuration_imports_no_feature() {
    let graph = imports();
    let allowed = ["error", "store::accounts"];
    let found: Vec<String> = graph["config"]
        .iter()
        .filter(|m| !allowed.contains(&m.as_str()))
        .map(|m| format!("src/config.rs imports {m}"))
        .collect();
    report("configuration imports a feature", found);
}

/// The checks above see what they must: a face importing another, SQL in
/// a literal (named by file and line, outside a test module), and a
/// grouped import of a forbidden module.
#[test]
fn the_layout_checks_find_what_they_look_for() {
    assert_eq!(
        crate_paths("use crate::face::native::filter;"),
        ["face::native::filter"]
    );
    assert_eq!(
        crate_paths("use crate::{desk, face::ops};"),
        ["desk", "face::ops"]
    );
    let joined = statements("use crate::face::{\n    ops,\n    native,\n};\nfn f() {}");
    assert_eq!(
        crate_paths(&joined[0].1),
        ["face", "face::ops", "face::native"]
    );
    assert_eq!(
        crate_paths("use crate::store::{self, view::Detail};"),
        ["store", "store::view::Detail"]
    );
    assert_eq!(
        crate_paths("let x = notcrate::face::y;"),
        Vec::<String>::new()
    );
    assert!(looks_like_sql(
        &literals("conn.x(\"select id from requests\")")[0]
    ));
    assert!(looks_like_sql(
        &literals("\"delete from tokens where x\"")[0]
    ));
    assert!(!looks_like_sql(&literals("\"delete ok\"")[0]));
    assert!(!looks_like_sql(&literals("\"webhook (none is set)\"")[0]));
    assert_eq!(
        strip_comment("let a = \"//x\"; // note"),
        "let a = \"//x\"; "
    );
    let text = "fn f() {}\nconst Q: &str = \"select id from t\";\n#[cfg(test)]\nmod tests {\n    fn t(c: &C) { c.execute(\"x\", []); }\n}";
    assert_eq!(
        sql_in("src/x.rs", text),
        ["src/x.rs:2: SQL in \"select id from t\""]
    );
}
