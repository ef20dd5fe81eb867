//! Converts the embedded benchmark YAML (`benchmarks/*.yaml`) to JSON at build
//! time: the data stays in YAML files, and the binary parses the JSON form,
//! which is several times faster than YAML at startup.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"))
        .join("../../benchmarks");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir"));
    for name in ["cis-1.6", "cis-1.10"] {
        let src = dir.join(format!("{name}.yaml"));
        println!("cargo:rerun-if-changed={}", src.display());
        let text = std::fs::read_to_string(&src).expect("read benchmark YAML");
        let value: serde_json::Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        std::fs::write(
            out.join(format!("{name}.json")),
            serde_json::to_vec(&value).expect("serialize"),
        )
        .expect("write benchmark JSON");
    }
}
