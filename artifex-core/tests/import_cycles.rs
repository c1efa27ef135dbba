//! The modules of artifex-core form layers: no top-level module imports, directly or through
//! others, a module that imports it back.
//!
//! The check reads `src/` as text. A top-level module is a `mod` declared in `lib.rs` (with
//! all its files); it depends on another when one of its files names `crate::other::..` or an
//! item `lib.rs` re-exports from `other` (`crate::Module` is `module`), or when it uses one of
//! the crate's macros (`#[module]`, `#[derive(Module)]`, `#[layer]`), whose expansions name the
//! items listed in `artifex-macros/src` as `#krate::Name`. Comments, string literals and
//! `#[cfg(test)]` modules are left out: tests may use anything.
//!
//! `cargo test --release -p artifex-core --test import_cycles -- --nocapture` prints the
//! layers, bottom first.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Where one module names another: `file:line` and the path written there.
type Sites = Vec<String>;
/// `from -> to -> sites`.
type Graph = BTreeMap<String, BTreeMap<String, Sites>>;

#[test]
fn no_import_cycle_between_top_level_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = crate_graph(&src);
    assert!(graph.len() >= 20, "only {} modules found", graph.len());
    for (from, to) in [
        ("checkpoint", "module"),
        ("layers", "module"),
        ("layers", "configurable"),
    ] {
        assert!(
            graph[from].contains_key(to),
            "the parser misses the edge {from} -> {to}: {:?}",
            graph[from].keys()
        );
    }
    let cycles = cycles(&graph);
    let mut report = String::new();
    for cycle in &cycles {
        report.push_str(&format!("cycle between {cycle:?}:\n"));
        for from in cycle {
            for (to, sites) in &graph[from] {
                if cycle.contains(to) {
                    let more = match sites.len() {
                        0..=3 => String::new(),
                        n => format!(" and {} more", n - 3),
                    };
                    let first = sites[..sites.len().min(3)].join(", ");
                    report.push_str(&format!("  {from} -> {to}: {first}{more}\n"));
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "import cycles in artifex-core:\n{report}"
    );
    for (level, modules) in layers(&graph).iter().enumerate() {
        println!("layer {level}: {}", modules.join(", "));
    }
}

#[test]
fn the_parser_sees_paths_and_groups_but_not_comments_strings_or_tests() {
    let text = r##"
        use crate::{checkpoint::{self, LoadOptions}, Module, Result};
        // use crate::train;
        /* crate::optim */
        const S: &str = "crate::data";
        const R: &str = r#"crate::losses"#;
        const C: char = '"';
        fn f<'a>(x: &'a str) -> crate::path::StatePath { crate::rng::KEY_WORDS; todo!() }
        #[cfg(test)]
        mod tests { use crate::layers::Linear; fn g() { let _ = { 1 }; } }
        fn after() -> crate::Error { todo!() }
    "##;
    let exports = BTreeMap::from([
        ("Module".to_string(), "module".to_string()),
        ("Result".to_string(), "error".to_string()),
        ("Error".to_string(), "error".to_string()),
    ]);
    let modules: BTreeSet<String> = [
        "checkpoint",
        "module",
        "error",
        "train",
        "optim",
        "data",
        "losses",
        "path",
        "rng",
        "layers",
    ]
    .map(String::from)
    .into();
    let (code, test_mods) = strip(text);
    assert!(test_mods.is_empty(), "an inline test module is not a file");
    let named: BTreeSet<String> = named_modules(&code, &modules, &exports)
        .into_iter()
        .map(|(m, _, _)| m)
        .collect();
    let expected: BTreeSet<String> = ["checkpoint", "module", "error", "path", "rng"]
        .map(String::from)
        .into();
    assert_eq!(named, expected);
    let (_, test_files) = strip("#[cfg(test)]\nmod tests;\nmod other;");
    assert_eq!(test_files, ["tests"]);
}

/// The dependency graph of the top-level modules of the crate whose sources are in `src`.
fn crate_graph(src: &Path) -> Graph {
    let lib = read(&src.join("lib.rs"));
    let (lib_code, _) = strip(&lib);
    let modules: BTreeSet<String> = declared_mods(&lib_code).into_iter().collect();
    let exports = root_exports(&lib_code, &modules);
    let macro_deps = macro_dependencies(src, &modules, &exports);
    let mut graph = Graph::new();
    for module in &modules {
        let edges = graph.entry(module.clone()).or_default();
        for file in module_files(src, module) {
            let (code, _) = strip(&read(&file));
            let name = file
                .strip_prefix(src)
                .unwrap_or(&file)
                .display()
                .to_string();
            for (to, line, path) in named_modules(&code, &modules, &exports) {
                if &to != module {
                    edges
                        .entry(to)
                        .or_default()
                        .push(format!("{name}:{line} ({path})"));
                }
            }
            if uses_macros(&code) {
                for to in macro_deps.iter().filter(|to| *to != module) {
                    edges.entry(to.clone()).or_default().push(format!(
                        "{name} (through the #[module] / #[layer] expansion)"
                    ));
                }
            }
        }
    }
    graph
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The files of top-level module `name`: `name.rs` or `name/mod.rs` and every file below
/// `name/`, less the files of `#[cfg(test)] mod x;` declarations.
fn module_files(src: &Path, name: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let single = src.join(format!("{name}.rs"));
    if single.is_file() {
        files.push(single);
    }
    let dir = src.join(name);
    if dir.is_dir() {
        collect_rs(&dir, &mut files);
    }
    let mut test_paths: Vec<PathBuf> = Vec::new();
    for file in &files {
        let (_, test_mods) = strip(&read(file));
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let parent = file.parent().unwrap_or(src);
        let children = if stem == "mod" {
            parent.to_path_buf()
        } else {
            parent.join(stem)
        };
        for m in test_mods {
            test_paths.push(children.join(format!("{m}.rs")));
            test_paths.push(children.join(&m));
        }
    }
    files.retain(|f| !test_paths.iter().any(|t| f.starts_with(t)));
    assert!(!files.is_empty(), "no file for module `{name}`");
    files
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Source text with comments and the contents of string and char literals blanked (lines
/// kept) and `#[cfg(test)] mod x { .. }` blocks removed, and the names of `#[cfg(test)] mod x;`.
fn strip(text: &str) -> (String, Vec<String>) {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let ident_before = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && !ident_before && matches!(next, Some('"') | Some('#')) {
            // A raw string r"..", r#".."#, or an identifier starting with r (then `#` or `"`
            // cannot follow).
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let hashes = j - i - 1;
            out.push_str("r\"");
            i = j + 1;
            while i < chars.len() {
                if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
            out.push('"');
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{..}'.
            out.push_str("' ");
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            out.push('\'');
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            out.push_str("' '");
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    remove_test_modules(&out)
}

/// `code` without `#[cfg(test)] mod x { .. }` blocks, and the names of `#[cfg(test)] mod x;`.
fn remove_test_modules(code: &str) -> (String, Vec<String>) {
    const ATTR: &str = "#[cfg(test)]";
    let mut out = String::new();
    let mut files = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(ATTR) {
        out.push_str(&rest[..at]);
        let after = &rest[at + ATTR.len()..];
        let item = after.trim_start();
        let Some(decl) = item.strip_prefix("mod ") else {
            out.push_str(ATTR);
            rest = after;
            continue;
        };
        let name: String = decl
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let body = decl.trim_start()[name.len()..].trim_start();
        if let Some(tail) = body.strip_prefix(';') {
            files.push(name);
            rest = tail;
        } else if body.starts_with('{') {
            let mut depth = 0usize;
            let mut end = body.len();
            for (k, ch) in body.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = k + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            // Keep the line count so that later line numbers stay right.
            out.extend(body[..end].chars().filter(|c| *c == '\n'));
            rest = &body[end..];
        } else {
            out.push_str(ATTR);
            rest = after;
        }
    }
    out.push_str(rest);
    (out, files)
}

/// The modules declared in `lib.rs` (`mod x;`, `pub mod x;`, any attributes before).
fn declared_mods(lib: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in lib.lines() {
        let line = line.trim();
        let decl = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("pub(crate) mod "))
            .or_else(|| line.strip_prefix("mod "));
        if let Some(name) = decl.and_then(|d| d.strip_suffix(';')) {
            out.push(name.trim().to_string());
        }
    }
    out
}

/// The items `lib.rs` re-exports at the root, by name, with the module they come from.
fn root_exports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stmt in lib.split(';') {
        let stmt = stmt.trim();
        let Some(at) = stmt.find("pub use ") else {
            continue;
        };
        let path = stmt[at + "pub use ".len()..].trim();
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        if !modules.contains(module) {
            continue;
        }
        for item in items.trim_matches(|c| c == '{' || c == '}').split(',') {
            let name = item.split_whitespace().last().unwrap_or("");
            let name = name.rsplit("::").next().unwrap_or(name);
            if !name.is_empty() && name != "self" {
                out.insert(name.to_string(), module.to_string());
            }
        }
    }
    out
}

/// Every module `code` names through `crate::`: `(module, line, path as written)`.
fn named_modules(
    code: &str,
    modules: &BTreeSet<String>,
    exports: &BTreeMap<String, String>,
) -> Vec<(String, usize, String)> {
    let resolve = |name: &str| -> Option<String> {
        if modules.contains(name) {
            Some(name.to_string())
        } else {
            exports.get(name).cloned()
        }
    };
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let line = code[..at].matches('\n').count() + 1;
        let rest = &code[at + "crate::".len()..];
        let names: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
            group_heads(group)
        } else {
            vec![ident(rest)]
        };
        for name in names {
            if let Some(module) = resolve(&name) {
                out.push((module, line, format!("crate::{name}")));
            }
        }
    }
    out
}

/// The first identifier of every top-level item of a `{a::b, c, d::{e, f}}` group (the text
/// after the opening brace).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut start = true;
    for (k, ch) in group.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => start = true,
            c if start && (c.is_alphanumeric() || c == '_') => {
                heads.push(ident(&group[k..]));
                start = false;
            }
            _ => {}
        }
    }
    heads
}

fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Whether `code` uses one of the crate's derive or attribute macros.
fn uses_macros(code: &str) -> bool {
    code.contains("#[module")
        || code.contains("#[layer")
        || code.split("#[derive(").skip(1).any(|d| {
            d.split(')')
                .next()
                .is_some_and(|list| list.split(',').any(|m| m.trim() == "Module"))
        })
}

/// The modules that the expansions of the crate's macros name (`#krate::Name` in
/// `artifex-macros/src`).
fn macro_dependencies(
    src: &Path,
    modules: &BTreeSet<String>,
    exports: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let macros = src.join("../../artifex-macros/src");
    let mut files = Vec::new();
    collect_rs(&macros, &mut files);
    let mut out = BTreeSet::new();
    for file in files {
        let text = read(&file);
        for (at, _) in text.match_indices("#krate::") {
            let name = ident(&text[at + "#krate::".len()..]);
            if let Some(module) = exports.get(&name).or_else(|| modules.get(&name)) {
                out.insert(module.clone());
            }
        }
    }
    assert!(
        out.contains("module"),
        "no #krate::Module found in {}",
        macros.display()
    );
    out
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(w: &mut Walk<'g>, v: &'g str) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        for to in w.graph[v].keys() {
            let to = to.as_str();
            if !w.index.contains_key(to) {
                visit(w, to);
                let low = w.low[v].min(w.low[to]);
                w.low.insert(v, low);
            } else if w.stack.contains(&to) {
                let low = w.low[v].min(w.index[to]);
                w.low.insert(v, low);
            }
        }
        if w.low[v] == w.index[v] {
            let mut component = Vec::new();
            while let Some(top) = w.stack.pop() {
                component.push(top.to_string());
                if top == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                w.out.push(component);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            visit(&mut walk, v);
        }
    }
    walk.out
}

/// The modules by layer: layer 0 imports no other module, layer n only modules below it.
fn layers(graph: &Graph) -> Vec<Vec<String>> {
    let mut level: BTreeMap<&str, usize> = BTreeMap::new();
    while level.len() < graph.len() {
        let before = level.len();
        for (module, deps) in graph {
            if level.contains_key(module.as_str()) {
                continue;
            }
            let below: Option<Vec<usize>> = deps
                .keys()
                .map(|d| level.get(d.as_str()).copied())
                .collect();
            if let Some(below) = below {
                level.insert(module, below.into_iter().max().map_or(0, |m| m + 1));
            }
        }
        assert!(level.len() > before, "a cycle is left");
    }
    let mut out: Vec<Vec<String>> = Vec::new();
    for (module, l) in level {
        if out.len() <= l {
            out.resize(l + 1, Vec::new());
        }
        out[l].push(module.to_string());
    }
    out
}
