//! The module layering ARCHITECTURE.md states, checked on the source: no
//! import loop between files other than a module and its own children
//! (`routing/mod.rs` ⇄ `routing/execute.rs` is fine; `routing` ⇄ `config`
//! is not). Dependencies are read from `crate::…` and `super::…` paths
//! outside `#[cfg(test)]` modules; a new loop fails here with its members.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`config::snapshot`) → source text, for every file under `src/`.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().and_then(|x| x.to_str()) != Some("rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|l| l == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                continue; // the crate roots declare modules; they are not layers
            }
            let text = std::fs::read_to_string(&p).unwrap();
            // Test modules may reach anywhere.
            let text = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            out.insert(parts.join("::"), text);
        }
    }
    out
}

/// The module a path names: its longest prefix that is a module.
fn owner(path: &[&str], mods: &BTreeMap<String, String>) -> Option<String> {
    (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|m| mods.contains_key(m))
}

fn edges(mods: &BTreeMap<String, String>, src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in mods {
        let here: Vec<&str> = m.split("::").collect();
        let file_is_mod = src.join(m.replace("::", "/")).join("mod.rs").exists();
        let bytes = text.as_bytes();
        for (kw, is_crate) in [("crate::", true), ("super::", false)] {
            let mut from = 0;
            while let Some(i) = text[from..].find(kw) {
                let at = from + i;
                from = at + kw.len();
                if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                    continue;
                }
                // The path after the keyword: identifiers separated by `::`
                // (a `{` ends it, naming items of the module before it).
                let rest: String =
                    text[from..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
                let segs: Vec<&str> = rest.split("::").filter(|s| !s.is_empty()).collect();
                let mut full: Vec<&str> = if is_crate {
                    Vec::new()
                } else {
                    let base = if file_is_mod { &here[..] } else { &here[..here.len() - 1] };
                    base[..base.len().saturating_sub(1)].to_vec()
                };
                full.extend(segs);
                if let Some(t) = owner(&full, mods)
                    && &t != m
                {
                    g.entry(m.clone()).or_default().insert(t);
                }
            }
        }
    }
    g
}

/// Strongly connected components (Tarjan), larger than one module.
fn loops(g: &BTreeMap<String, BTreeSet<String>>, nodes: &[String]) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        idx: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.idx.len();
        t.idx.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        if let Some(ws) = t.g.get(v) {
            for w in ws {
                if !t.idx.contains_key(w.as_str()) {
                    visit(t, w);
                    let l = t.low[w.as_str()].min(t.low[v]);
                    t.low.insert(v, l);
                } else if t.on.contains(w.as_str()) {
                    let l = t.idx[w.as_str()].min(t.low[v]);
                    t.low.insert(v, l);
                }
            }
        }
        if t.low[v] == t.idx[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T { g, idx: BTreeMap::new(), low: BTreeMap::new(), stack: vec![], on: BTreeSet::new(), out: vec![] };
    for v in nodes {
        if !t.idx.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// A loop is allowed when it is one module and some of its direct children.
fn parent_and_children(comp: &[String]) -> bool {
    let parent = comp.iter().min_by_key(|m| m.len()).unwrap();
    comp.iter().all(|m| {
        m == parent
            || m.strip_prefix(parent.as_str()).and_then(|r| r.strip_prefix("::")).is_some_and(|r| !r.contains("::"))
    })
}

#[test]
fn no_import_loop_beyond_a_module_and_its_children() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    assert!(mods.contains_key("config::snapshot") && mods.contains_key("identity::principal"), "module scan broken");
    let g = edges(&mods, &src);
    assert!(g.get("state").is_some_and(|d| d.contains("routing::health")), "dependency scan broken");
    let nodes: Vec<String> = mods.keys().cloned().collect();
    let bad: Vec<Vec<String>> = loops(&g, &nodes).into_iter().filter(|c| !parent_and_children(c)).collect();
    let detail: Vec<String> = bad
        .iter()
        .map(|c| {
            let set: BTreeSet<&String> = c.iter().collect();
            let lines: Vec<String> = c
                .iter()
                .map(|m| {
                    let to: Vec<&String> =
                        g.get(m).map(|d| d.iter().filter(|t| set.contains(t)).collect()).unwrap_or_default();
                    format!("    {m} -> {to:?}")
                })
                .collect();
            format!("  loop of {}:\n{}", c.len(), lines.join("\n"))
        })
        .collect();
    assert!(bad.is_empty(), "import loops across module boundaries:\n{}", detail.join("\n"));
}

#[test]
fn a_loop_between_siblings_is_reported() {
    let comp = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(parent_and_children(&comp(&["routing", "routing::execute", "routing::health"])));
    assert!(!parent_and_children(&comp(&["routing", "config::snapshot"])));
    assert!(!parent_and_children(&comp(&["routing::build", "routing::execute"])));
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(loops(&g, &["a".to_string(), "b".to_string()]), vec![comp(&["a", "b"])]);
}
