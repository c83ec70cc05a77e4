//! Tests of the crate's shape: the layers `lib.rs` describes hold, and the pure mail stages stay
//! pure. They read the sources, so a new `use` that breaks a rule fails here, naming the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules, lowest layer first. A module may use only modules of a lower layer;
/// modules of one layer do not use each other.
const LAYERS: &[&[&str]] = &[
    &["ids", "config", "clock", "tls", "systemd", "telemetry"],
    &["model"],
    &["mail"],
    &["store"],
    &["casework"],
    &["oauth"],
    &["imap", "smtp", "spamd"],
    &["metrics"],
    &["process"],
    &["ops"],
    &["control"],
    &["daemon"],
    &["cli"],
];

/// What the pure mail stages must never name: the runtime, the store, the network, files or
/// the wall clock.
const IMPURE: &[&str] = &[
    "tokio",
    "sled",
    "crate::store",
    "crate::clock",
    "std::fs",
    "std::net",
    "Timestamp::now",
    "SystemTime::now",
    "Instant::now",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The non-test source files of the module at `path` (`src/x.rs` and what it declares), as
/// (file, text). Modules declared under `#[cfg(test)]` are left out.
fn module_files(file: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    let text = std::fs::read_to_string(file).expect("read a source file");
    let mut test_only = false;
    for line in text.lines() {
        let line = line.trim();
        if line == "#[cfg(test)]" {
            test_only = true;
            continue;
        }
        let declared = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("pub(crate) mod "))
            .or_else(|| line.strip_prefix("mod "))
            .and_then(|rest| rest.strip_suffix(';'));
        if let Some(name) = declared
            && !test_only
        {
            let child = dir.join(format!("{name}.rs"));
            module_files(&child, &dir.join(name), out);
        }
        test_only = false;
    }
    // An inline test module is the end of what ships.
    let shipped = text
        .split("#[cfg(test)]\nmod tests {")
        .next()
        .unwrap_or_default()
        .to_owned();
    out.push((file.to_path_buf(), shipped));
}

/// The top-level modules each top-level module names (`crate::x`, or `x` in `use crate::{…}`).
fn uses() -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let all: BTreeSet<&str> = LAYERS
        .iter()
        .flat_map(|layer| layer.iter().copied())
        .collect();
    let mut graph = BTreeMap::new();
    for module in &all {
        let mut files = Vec::new();
        module_files(
            &src().join(format!("{module}.rs")),
            &src().join(module),
            &mut files,
        );
        let mut named = BTreeMap::new();
        for (file, text) in &files {
            let mut mention = |name: &str| {
                if name != *module && all.contains(name) {
                    named.entry(name.to_owned()).or_insert_with(|| file.clone());
                }
            };
            for (at, _) in text.match_indices("crate::") {
                let rest = &text[at + "crate::".len()..];
                if let Some(group) = rest.strip_prefix('{') {
                    let group = group.split('}').next().unwrap_or_default();
                    for item in group.split(',') {
                        mention(item.trim().split("::").next().unwrap_or_default());
                    }
                } else {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    mention(&name);
                }
            }
        }
        graph.insert((*module).to_owned(), named);
    }
    graph
}

#[test]
fn every_module_uses_only_lower_layers() {
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(index, layer)| layer.iter().map(move |m| (*m, index)))
        .collect();
    let top: BTreeSet<String> = std::fs::read_dir(src())
        .expect("read src")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".rs")?.to_owned();
            (!["lib", "main", "tests"].contains(&stem.as_str())).then_some(stem)
        })
        .collect();
    let listed: BTreeSet<String> = layer_of.keys().map(|m| (*m).to_owned()).collect();
    assert_eq!(
        top, listed,
        "every top-level module is in exactly one layer"
    );

    let mut wrong = Vec::new();
    for (module, named) in uses() {
        for (used, file) in named {
            if layer_of[used.as_str()] >= layer_of[module.as_str()] {
                wrong.push(format!(
                    "{module} uses {used} ({}), which is not in a lower layer",
                    file.display()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_mail_stages_are_pure() {
    let mut files = Vec::new();
    module_files(&src().join("mail.rs"), &src().join("mail"), &mut files);
    assert!(files.len() > 5, "the mail modules were found: {files:?}");
    let mut wrong = Vec::new();
    for (file, text) in &files {
        for word in IMPURE {
            if text.contains(word) {
                wrong.push(format!("{} names {word}", file.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_layer_check_sees_a_cycle() {
    // The parser of `uses` must see both spellings of a use, or the checks above prove nothing.
    let graph = uses();
    assert!(
        graph["daemon"].contains_key("control"),
        "use crate::{{…}} is read"
    );
    assert!(graph["store"].contains_key("mail"), "crate::x:: is read");
}
