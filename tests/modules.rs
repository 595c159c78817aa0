//! The library's modules import each other without circles: no module reaches back to one that
//! reaches it, directly or around a loop. A circle means two modules are really one, or that a
//! type sits in the wrong one; either way it makes the code harder to read one part at a time.
//!
//! The graph is read from the source: every `crate::`, `super::` and `self::` path in `src/`
//! (comments aside) names the deepest module it goes through. A module may use its ancestors'
//! items (a child is part of its parent), so those edges are left out; every other edge counts.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// A module path, `core::proxy`; the crate root is empty.
type Module = Vec<String>;

#[test]
fn modules_import_each_other_without_circles() {
    // The search finds a circle where there is one.
    let (a, b, c) = (module("a"), module("b"), module("c"));
    let toy: BTreeMap<Module, BTreeMap<Module, String>> = [
        (a.clone(), [(b.clone(), String::new())].into()),
        (b.clone(), [(a.clone(), String::new())].into()),
        (c.clone(), [(a.clone(), String::new())].into()),
    ]
    .into();
    let found = circles(&[a, b, c].into(), &toy);
    assert_eq!(found.len(), 1, "{found:?}");
    let files = library_files();
    let modules: BTreeSet<Module> = files.keys().cloned().collect();
    let mut edges: BTreeMap<Module, BTreeMap<Module, String>> = BTreeMap::new();
    for (module, (file, text)) in &files {
        for (line, path) in references(module, text, &modules) {
            let Some(target) = deepest_module(&modules, &path) else {
                continue;
            };
            if module.starts_with(&target) {
                continue;
            }
            edges
                .entry(module.clone())
                .or_default()
                .entry(target)
                .or_insert_with(|| format!("{file}:{line}"));
        }
    }
    let circles = circles(&modules, &edges);
    let described: Vec<String> = circles
        .iter()
        .map(|circle| {
            let mut text = String::new();
            for module in circle {
                for (target, at) in &edges[module] {
                    if circle.contains(target) {
                        text += &format!("\n  {} -> {} ({at})", name(module), name(target));
                    }
                }
            }
            text
        })
        .collect();
    assert!(
        described.is_empty(),
        "modules that import each other:{}",
        described.join("\n")
    );
    // The reading itself works: the core is used by the network layer.
    let net = edges
        .get(&module("net::server"))
        .expect("net::server uses others");
    assert!(net.contains_key(&module("core")), "{net:?}");
}

/// Every file of the library by module path, with its name and text (unit tests cut off).
fn library_files() -> BTreeMap<Module, (String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path.strip_prefix(&root).expect("under src");
            let relative = relative.to_str().expect("a UTF-8 path").to_owned();
            let Some(stem) = relative.strip_suffix(".rs") else {
                continue;
            };
            if stem == "main" {
                continue;
            }
            let mut module: Module = stem.split('/').map(str::to_owned).collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                module.pop();
            }
            let text = fs::read_to_string(&path).expect("a readable source file");
            files.insert(module, (format!("src/{relative}"), text));
        }
    }
    files
}

/// The absolute paths that `text`, the source of `module`, names, with their line numbers.
fn references(
    module: &Module,
    text: &str,
    modules: &BTreeSet<Module>,
) -> Vec<(usize, Vec<String>)> {
    // Comments out; the file's own unit tests too (their `use super::*` names the file itself).
    let code: String = text
        .lines()
        .take_while(|line| !line.trim_start().starts_with("mod tests {"))
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(start) = first_path_start(&code[at..]) {
        let start = at + start;
        let line = code[..start].matches('\n').count() + 1;
        let (base, after) = resolve_start(module, &code[start..]);
        let mut paths = Vec::new();
        let end = parse_tree(&code, code.len() - after.len(), base, &mut paths);
        found.extend(paths.into_iter().map(|path| (line, path)));
        at = end.max(start + 1);
    }
    // `use child::Item` names a child module without `self::`.
    for (start, _) in code.match_indices("use ") {
        let path = &code[start + 4..];
        let child = path.split("::").next().unwrap_or_default();
        let mut named = module.clone();
        named.push(child.to_owned());
        if path.contains("::") && modules.contains(&named) {
            let line = code[..start].matches('\n').count() + 1;
            let mut paths = Vec::new();
            parse_tree(&code, start + 4, module.clone(), &mut paths);
            found.extend(paths.into_iter().map(|path| (line, path)));
        }
    }
    found
}

/// Where the next `crate::`, `super::` or `self::` path starts (not inside a longer name).
fn first_path_start(text: &str) -> Option<usize> {
    ["crate::", "super::", "self::"]
        .iter()
        .filter_map(|word| {
            text.match_indices(word)
                .find(|(i, _)| {
                    let before = text[..*i].chars().next_back();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
                })
                .map(|(i, _)| i)
        })
        .min()
}

/// The module a path starts from, and the text after its `crate::`/`super::`/`self::` words.
fn resolve_start<'a>(module: &Module, text: &'a str) -> (Module, &'a str) {
    if let Some(rest) = text.strip_prefix("crate::") {
        return (Vec::new(), rest);
    }
    let mut base = module.clone();
    let mut rest = text;
    loop {
        if let Some(after) = rest.strip_prefix("self::") {
            rest = after;
        } else if let Some(after) = rest.strip_prefix("super::") {
            base.pop();
            rest = after;
        } else {
            return (base, rest);
        }
    }
}

/// Reads the path tree (`a::b::{c, d::e}`) at `at` in `code` below `base` into `paths`;
/// returns where it ends.
fn parse_tree(code: &str, mut at: usize, mut path: Module, paths: &mut Vec<Module>) -> usize {
    loop {
        at += code[at..].len() - code[at..].trim_start().len();
        if code[at..].starts_with('{') {
            at += 1;
            loop {
                let rest = &code[at..];
                at += rest.len()
                    - rest
                        .trim_start_matches(|c: char| c == ',' || c.is_whitespace())
                        .len();
                if code[at..].starts_with('}') || at >= code.len() {
                    return at + 1;
                }
                at = parse_tree(code, at, path.clone(), paths);
            }
        }
        let rest = &code[at..];
        let length = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        match &rest[..length] {
            "self" | "" | "*" => {}
            segment => path.push(segment.to_owned()),
        }
        at += length;
        if code[at..].starts_with("::") {
            at += 2;
        } else {
            paths.push(path);
            return at;
        }
    }
}

/// The deepest module of `modules` that `path` goes through.
fn deepest_module(modules: &BTreeSet<Module>, path: &[String]) -> Option<Module> {
    (0..=path.len())
        .rev()
        .map(|length| path[..length].to_vec())
        .find(|prefix| modules.contains(prefix))
}

/// The strongly connected groups of more than one module (Tarjan's algorithm).
fn circles(
    modules: &BTreeSet<Module>,
    edges: &BTreeMap<Module, BTreeMap<Module, String>>,
) -> Vec<Vec<Module>> {
    struct Search<'a> {
        edges: &'a BTreeMap<Module, BTreeMap<Module, String>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        found: Vec<Vec<Module>>,
    }
    impl<'a> Search<'a> {
        fn visit(&mut self, module: &'a Module) {
            let number = self.index.len();
            self.index.insert(module, number);
            self.low.insert(module, number);
            self.stack.push(module);
            for target in self.edges.get(module).into_iter().flat_map(|e| e.keys()) {
                if !self.index.contains_key(target) {
                    self.visit(target);
                    let low = self.low[module].min(self.low[target]);
                    self.low.insert(module, low);
                } else if self.stack.contains(&target) {
                    let low = self.low[module].min(self.index[target]);
                    self.low.insert(module, low);
                }
            }
            if self.low[module] == self.index[module] {
                let mut group = Vec::new();
                while let Some(member) = self.stack.pop() {
                    group.push(member.clone());
                    if member == module {
                        break;
                    }
                }
                if group.len() > 1 {
                    self.found.push(group);
                }
            }
        }
    }
    let mut search = Search {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for module in modules {
        if !search.index.contains_key(module) {
            search.visit(module);
        }
    }
    search.found
}

fn module(path: &str) -> Module {
    path.split("::").map(str::to_owned).collect()
}

fn name(module: &Module) -> String {
    match module.is_empty() {
        true => "crate".to_owned(),
        false => module.join("::"),
    }
}
