//! Paths inside the repository. Tests read only what the repository holds
//! (or what `scripts/test.sh` installs into it, such as `.venv`).

use std::path::PathBuf;

/// The repository root (the workspace that holds `crates/`).
pub fn root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.join("../..")
        .canonicalize()
        .unwrap_or_else(|_| here.join("../.."))
}

/// A path relative to the repository root.
pub fn path(rel: &str) -> PathBuf {
    root().join(rel)
}

/// A tool in the repository's Python venv (`.venv/bin/NAME`), which
/// `scripts/test.sh` creates from `scripts/python-requirements.txt`.
pub fn venv_tool(name: &str) -> crate::Need {
    crate::Need::File {
        path: path(&format!(".venv/bin/{name}")),
        install: "python3 -m venv .venv && .venv/bin/pip install -r scripts/python-requirements.txt; scripts/test.sh does this",
    }
}

/// Render an Aerleon export with the venv's `aclgen`: `dir` holds
/// `policies/` and `def/` (as `generate --target aerleon` writes them); the
/// rendered files go to `dir/out`. Panics with aclgen's stderr when it fails
/// or reports an error, so a test never reads a half-rendered directory.
/// Check [`venv_tool`]`("aclgen")` with `require!` first.
pub fn run_aclgen(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("out")).expect("create the aclgen output directory");
    let res = std::process::Command::new(path(".venv/bin/aclgen"))
        .current_dir(dir)
        .args([
            "--base_directory",
            "policies",
            "--definitions_directory",
            "def",
            "--output_directory",
            "out",
            "--max_renderers",
            "1",
        ])
        .output()
        .expect("run .venv/bin/aclgen");
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "aclgen failed:\n{stderr}");
    assert!(
        !stderr
            .lines()
            .any(|l| l.starts_with('E') || l.contains("Traceback")),
        "aclgen reported errors:\n{stderr}"
    );
}
