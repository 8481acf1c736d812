//! The layers stay without circles: no top-level module of `src/` reaches itself through
//! `crate::` paths, and only the daemon's wiring imports the HTTP layer or the SMS
//! delivery edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Top-level module → the top-level modules its files name as `crate::NAME`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let top = |p: &Path| {
        let rel = p.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a component");
        first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned()
    };
    let modules: BTreeSet<String> = files.iter().map(|p| top(p)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = top(file);
        if from == "lib" || from == "main" {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read a source file");
        for line in text.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
            let mut rest = line;
            while let Some(at) = rest.find("crate::") {
                rest = &rest[at + "crate::".len()..];
                // `crate::{a, b::c}` names several.
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(group) => group.split(',').map(str::trim).collect(),
                    None => vec![rest],
                };
                for name in names {
                    let name: String =
                        name.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                    if name != from && modules.contains(&name) {
                        graph.entry(from.clone()).or_default().insert(name);
                    }
                }
            }
        }
    }
    graph
}

/// A path from `to` back to `from`, if any.
fn path_back(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    at: &str,
    seen: &mut BTreeSet<String>,
    trail: &mut Vec<String>,
) -> bool {
    trail.push(at.to_owned());
    if at == from && trail.len() > 1 {
        return true;
    }
    if seen.insert(at.to_owned()) {
        for next in graph.get(at).into_iter().flatten() {
            if path_back(graph, from, next, seen, trail) {
                return true;
            }
        }
    }
    trail.pop();
    false
}

#[test]
fn no_import_circles_among_top_level_modules() {
    let graph = imports();
    assert!(graph.contains_key("http") && graph.contains_key("notifier"), "{graph:?}");
    for module in graph.keys() {
        let mut trail = Vec::new();
        let circle = path_back(&graph, module, module, &mut BTreeSet::new(), &mut trail);
        assert!(!circle, "import circle: {}", trail.join(" -> "));
    }
}

#[test]
fn only_the_daemon_imports_the_http_layer_and_the_sms_edge() {
    for (from, to) in imports() {
        for top in ["http", "notifier", "daemon"] {
            assert!(
                !to.contains(top) || from == "daemon",
                "{from} imports {top}: only the daemon wires the edges together"
            );
        }
    }
}
