//! ARCHITECTURE.md stays true: its crate table names every crate of the
//! workspace, and each crate's `[dependencies]` use only the workspace crates
//! the table allows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// crate name -> allowed workspace crates, from the table's rows
/// `| \`ringfence-x\` | job | a, b |` ("every crate above" allows all rows
/// before it; "—" allows none).
fn table() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let section = text
        .split("## Crates")
        .nth(1)
        .expect("ARCHITECTURE.md has a `## Crates` section");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut seen: Vec<String> = Vec::new();
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 5 || !cells[1].starts_with("`ringfence-") {
            continue;
        }
        let name = cells[1].trim_matches('`').to_string();
        let uses = cells[3];
        let allowed: BTreeSet<String> = if uses == "every crate above" {
            seen.iter().cloned().collect()
        } else if uses == "—" {
            BTreeSet::new()
        } else {
            uses.split(',')
                .map(|u| format!("ringfence-{}", u.trim()))
                .collect()
        };
        seen.push(name.clone());
        out.insert(name, allowed);
    }
    out
}

/// crate name -> workspace crates its `[dependencies]` section names.
fn manifests() -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(repo().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(toml) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut in_deps = false;
        let mut deps = BTreeSet::new();
        for line in toml.lines() {
            let l = line.trim();
            if l.starts_with('[') {
                in_deps = l == "[dependencies]";
                continue;
            }
            if in_deps && l.starts_with("ringfence-") {
                let dep: String = l
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                if dep != name {
                    deps.insert(dep);
                }
            }
        }
        out.insert(name, deps);
    }
    out
}

#[test]
fn the_crate_table_names_every_workspace_crate_and_nothing_else() {
    let documented: BTreeSet<String> = table().into_keys().collect();
    let actual: BTreeSet<String> = manifests().into_keys().collect();
    assert_eq!(
        documented, actual,
        "ARCHITECTURE.md's crate table and crates/ disagree"
    );
}

#[test]
fn every_crate_depends_only_on_the_crates_the_table_allows() {
    let allowed = table();
    let mut wrong = Vec::new();
    for (name, deps) in manifests() {
        let ok = allowed.get(&name).cloned().unwrap_or_default();
        for d in deps.difference(&ok) {
            wrong.push(format!("{name} depends on {d}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies ARCHITECTURE.md does not allow (fix the code or the table): {wrong:?}"
    );
}

#[test]
fn the_test_kit_is_never_a_normal_dependency() {
    for (name, deps) in manifests() {
        assert!(
            !deps.contains("ringfence-testkit"),
            "{name} ships ringfence-testkit; it belongs in [dev-dependencies]"
        );
    }
}
