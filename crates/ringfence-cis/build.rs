//! Embeds every benchmark of `benchmarks/` (each `cis-*.yaml`) in the
//! library: the YAML text as written, and a JSON form converted here, because
//! parsing JSON at startup is several times faster than parsing YAML.
//!
//! It writes `embedded.rs` to OUT_DIR: the `EMBEDDED` (name, YAML) and
//! `EMBEDDED_JSON` tables that `src/benchmark.rs` includes. A new benchmark
//! is a new file in `benchmarks/`; nothing else needs to change here.

use std::path::PathBuf;

/// `cis-1.10` → (1, 10), so names sort as versions (1.6 before 1.10).
fn version_key(name: &str) -> (Vec<u32>, String) {
    let nums = name
        .trim_start_matches("cis-")
        .split('.')
        .map(|p| p.parse().unwrap_or(u32::MAX))
        .collect();
    (nums, name.to_string())
}

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"))
        .join("../../benchmarks");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir"));
    // A directory is scanned as a whole: a benchmark added, changed or
    // removed reruns this script.
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("read benchmarks/").file_name())
        .filter_map(|n| n.into_string().ok())
        .filter_map(|n| {
            n.strip_prefix("cis-")
                .and_then(|rest| rest.strip_suffix(".yaml"))
                .map(|v| format!("cis-{v}"))
        })
        .collect();
    names.sort_by_key(|n| version_key(n));
    assert!(!names.is_empty(), "no cis-*.yaml in {}", dir.display());

    let mut yaml_table = String::new();
    let mut json_table = String::new();
    for name in &names {
        let src = dir.join(format!("{name}.yaml"));
        println!("cargo:rerun-if-changed={}", src.display());
        let text = std::fs::read_to_string(&src).expect("read benchmark YAML");
        let value: serde_json::Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        let declared = value.get("benchmark").and_then(|v| v.as_str());
        assert!(
            declared == Some(name.as_str()),
            "{}: `benchmark:` says {declared:?}; it must be {name:?}, the file's name",
            src.display()
        );
        let json = out.join(format!("{name}.json"));
        std::fs::write(&json, serde_json::to_vec(&value).expect("serialize"))
            .expect("write benchmark JSON");
        yaml_table.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            src.display().to_string()
        ));
        json_table.push_str(&format!(
            "    include_str!({:?}),\n",
            json.display().to_string()
        ));
    }
    let n = names.len();
    let code = format!(
        "/// The benchmarks built into ringfence, in version order: (name, YAML text).\n\
         pub const EMBEDDED: [(&str, &str); {n}] = [\n{yaml_table}];\n\n\
         /// The same benchmarks as JSON, converted from the YAML by `build.rs`.\n\
         const EMBEDDED_JSON: [&str; {n}] = [\n{json_table}];\n"
    );
    std::fs::write(out.join("embedded.rs"), code).expect("write embedded.rs");
}
