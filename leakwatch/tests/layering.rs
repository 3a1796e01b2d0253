//! Keeps ARCHITECTURE.md's "Layers inside leakwatch" true: reads `leakwatch/src` and fails if
//! a module imports one of a higher layer, if any modules import each other in a circle, if a
//! module is in no layer, or if a module imports through the crate root (`crate::Registry`),
//! which would hide the layer it reaches from `grep -n "use crate::" leakwatch/src/*.rs`.
//! Test code (`#[cfg(test)] mod tests`) and comments are not looked at.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first. A module may import modules of its own layer or lower ones.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "counting core",
        &[
            "counter", "site", "series", "finding", "interval", "alloc", "memory",
        ],
    ),
    ("registry", &["registry"]),
    (
        "counting handles",
        &[
            "tracked",
            "token",
            "scope",
            "callbacks",
            "connections",
            "event",
            "gauge",
            "process",
            "runtime",
        ],
    ),
    ("snapshot", &["snapshot"]),
    (
        "consumers",
        &["watchdog", "facade", "statsd", "recording", "testing"],
    ),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

/// The source without its test module and comments.
fn code(src: &str) -> String {
    let src = match src.find("#[cfg(test)]\nmod tests") {
        Some(i) => &src[..i],
        None => src,
    };
    src.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segments after each `crate::` (one per item of a `crate::{...}` group).
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // `$crate::`, `my_crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items only: `crate::{a::X, b::{Y, Z}}` names `a` and `b`.
            let (mut depth, mut item) = (0, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.push(item);
            for p in &mut out {
                *p = p.trim().split("::").next().unwrap_or("").trim().to_owned();
            }
            out.retain(|p| !p.is_empty());
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push(rest[..end].to_owned());
        }
    }
    out
}

/// Module (`statsd/exporter.rs` counts as `statsd`) → the crate modules it names.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&src).expect("leakwatch/src") {
        let path = entry.unwrap().path();
        if path.is_dir() {
            for sub in std::fs::read_dir(&path).unwrap() {
                files.push(sub.unwrap().path());
            }
        } else {
            files.push(path);
        }
    }
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        let rel = path.strip_prefix(&src).unwrap();
        let module = rel
            .iter()
            .next()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" || module == "bin" {
            continue; // the root re-exports everything; binaries sit on top
        }
        let text = std::fs::read_to_string(path).unwrap();
        let entry = map.entry(module.clone()).or_default();
        for p in crate_paths(&code(&text)) {
            if p != module {
                entry.insert(p);
            }
        }
    }
    map
}

#[test]
fn every_import_points_down_or_across_and_none_go_in_circles() {
    let map = imports();
    assert!(map.contains_key("registry") && map.contains_key("snapshot"));
    let mut wrong = Vec::new();
    for (module, deps) in &map {
        let Some(mine) = layer_of(module) else {
            wrong.push(format!(
                "`{module}` is in no layer: add it to LAYERS here and to ARCHITECTURE.md"
            ));
            continue;
        };
        for dep in deps {
            match layer_of(dep) {
                None if dep.starts_with(char::is_uppercase) => wrong.push(format!(
                    "`{module}` imports `crate::{dep}` through the crate root: name its module"
                )),
                None => wrong.push(format!("`{module}` imports `{dep}`, which is in no layer")),
                Some(theirs) if theirs > mine => wrong.push(format!(
                    "`{module}` ({}) imports `{dep}` ({}), a higher layer",
                    LAYERS[mine].0, LAYERS[theirs].0
                )),
                Some(_) => {}
            }
        }
    }
    // Circles, within a layer too: a depth-first search for a back edge.
    fn visit<'a>(
        m: &'a str,
        map: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        wrong: &mut Vec<String>,
    ) {
        if let Some(i) = path.iter().position(|p| *p == m) {
            wrong.push(format!("import circle: {} -> {m}", path[i..].join(" -> ")));
            return;
        }
        if !done.insert(m) {
            return;
        }
        path.push(m);
        for d in map.get(m).into_iter().flatten() {
            visit(d, map, path, done, wrong);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for m in map.keys() {
        visit(m, &map, &mut Vec::new(), &mut done, &mut wrong);
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_groups_root_paths_and_skips_comments_and_tests() {
    let src = "use crate::{registry::Registry, series::{Extra, SeriesKind}};\n\
               // use crate::watchdog::Alert;\n\
               let r = crate::Registry::new(); $crate::token::Token::new(\"x\");\n\
               #[cfg(test)]\nmod tests {\n    use crate::facade::MetricsBridge;\n}\n";
    assert_eq!(
        crate_paths(&code(src)),
        ["registry", "series", "Registry"].map(String::from)
    );
}
