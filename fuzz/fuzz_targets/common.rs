//! Checks shared by the fuzz targets: every error a parser returns must be
//! printable and must point at a place that exists in the input.

#![allow(dead_code)]

use ringfence_diag::{InputErrors, Locus};

/// Assert that each error renders and names a line inside `text` (or a JSON
/// pointer, or the whole input). A location past the end would send the user
/// to the wrong place, which counts as a bug just like a panic.
pub fn check_errors(text: &str, errors: &InputErrors) {
    assert!(!errors.0.is_empty(), "an Err must carry at least one error");
    let lines = line_count(text);
    for e in &errors.0 {
        let shown = e.to_string();
        assert!(!shown.is_empty());
        match &e.locus {
            Locus::LineColumn { line, column } => {
                assert!(*line >= 1 && *line <= lines, "line {line} outside 1..={lines}: {shown}");
                assert!(*column >= 1, "column 0: {shown}");
            }
            Locus::Line(line) => {
                assert!(*line >= 1 && *line <= lines, "line {line} outside 1..={lines}: {shown}");
            }
            Locus::Pointer(p) => assert!(p.is_empty() || p.starts_with('/'), "bad pointer {p:?}"),
            Locus::Whole => {}
        }
    }
}

/// The number of lines in `text` under the most generous convention any of
/// our formats uses. YAML (and so serde-saphyr's positions) breaks lines at
/// LF, CRLF and a lone CR, while `str::lines` only knows LF: a file of
/// old-Mac CR line endings has one `str::lines` line but many YAML lines.
pub fn line_count(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let mut n = 1u64;
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'\n' => n += 1,
            b'\r' if bytes.get(i + 1) != Some(&b'\n') => n += 1,
            _ => {}
        }
    }
    n
}

/// A scratch node root for the targets that go through `--root` discovery,
/// created once per fuzzing process under `$TMPDIR` (scripts/fuzz-ci.sh points
/// `TMPDIR` at a directory it removes afterwards).
pub fn scratch_root(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rf-fuzz-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch root");
    dir
}

/// Write `bytes` at `rel` under `root`, creating parent directories.
pub fn put(root: &std::path::Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// Discover the node under `root` and, when that works, scan it with both
/// embedded benchmarks, rendering every report format.
pub fn discover_and_scan(root: &std::path::Path) {
    use ringfence_cis::benchmark::Benchmark;
    use ringfence_cis::node::{discover, DiscoverOptions};
    use ringfence_cis::profile::Date;
    use ringfence_cis::report::{scan, ScanOptions};
    let node = match discover(&DiscoverOptions {
        root: Some(root.to_path_buf()),
        proc_dir: None,
        kubernetes_version: None,
        only_pids: None,
    }) {
        Ok(n) => n,
        Err(e) => {
            for x in &e.0 {
                let _ = x.to_string();
            }
            return;
        }
    };
    for name in ["cis-1.6", "cis-1.10"] {
        let bench = Benchmark::embedded(name).expect("embedded benchmark");
        let report = scan(
            &bench,
            &node,
            &ScanOptions {
                targets: None,
                checks: None,
                profile: None,
                waivers: &[],
                today: Date::parse("2026-01-01").unwrap(),
            },
        );
        let _ = ringfence_cis::render::json(&report);
        let _ = ringfence_cis::render::text(&report, &bench, false);
    }
}
