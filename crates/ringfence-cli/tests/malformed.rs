//! The malformed-input corpus (`tests/malformed/<kind>/`): every file gets
//! exactly the error recorded beside it (`<file>.expected`), exit code 2, and
//! never a panic. Run with `RINGFENCE_BLESS=1` to record new expectations.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The command that reads a file of each corpus kind.
fn command_for(kind: &str, file: &str) -> Option<Vec<String>> {
    let args: Vec<&str> = match kind {
        "site" => vec!["site", "check", file],
        "tkg-config" => vec!["site", "import", "--tkg-config", file],
        _ => return None,
    };
    Some(args.into_iter().map(String::from).collect())
}

#[test]
fn every_malformed_input_gets_its_exact_error_and_exit_code_2() {
    let root = repo_root();
    let corpus = root.join("tests/malformed");
    let bless = std::env::var_os("RINGFENCE_BLESS").is_some();
    let mut checked = 0;
    let mut failures = Vec::new();
    for kind in std::fs::read_dir(&corpus).unwrap() {
        let kind = kind.unwrap().path();
        let kind_name = kind.file_name().unwrap().to_string_lossy().into_owned();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&kind)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_none_or(|e| e != "expected"))
            .collect();
        files.sort();
        for file in files {
            let rel = file
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let Some(args) = command_for(&kind_name, &rel) else {
                continue;
            };
            let out = Command::new(env!("CARGO_BIN_EXE_ringfence"))
                .args(&args)
                .current_dir(&root)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            let expected_path = PathBuf::from(format!("{}.expected", file.display()));
            if bless {
                std::fs::write(&expected_path, &stderr).unwrap();
            }
            let expected = std::fs::read_to_string(&expected_path)
                .unwrap_or_else(|_| panic!("{rel}: no .expected file; run with RINGFENCE_BLESS=1"));
            if out.status.code() != Some(2) {
                failures.push(format!("{rel}: exit {:?}, expected 2", out.status.code()));
            }
            if stderr.contains("panicked") {
                failures.push(format!("{rel}: panicked:\n{stderr}"));
            }
            if stderr != expected {
                failures.push(format!(
                    "{rel}: stderr differs\n--- expected\n{expected}--- got\n{stderr}"
                ));
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "corpus too small: {checked} files");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
