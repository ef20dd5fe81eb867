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
