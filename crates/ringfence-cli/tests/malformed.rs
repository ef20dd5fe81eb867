//! The malformed-input corpus (`tests/malformed/<kind>/`): every file gets
//! exactly the error recorded beside it (`<file>.expected`), exit code 2, and
//! never a panic. Run with `RINGFENCE_BLESS=1` to record new expectations.

mod common;
use common::repo_root;

use ringfence_cis::testkit::{self, KubeletStyle};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The command that reads a file of each corpus kind. Kinds read from a node
/// root (kubelet config, static pod manifests, waivers) get a node built by the
/// testkit in `scratch`, with the corpus file put in place.
fn command_for(kind: &str, file: &str, scratch: &Path) -> Option<Vec<String>> {
    let trace = |format: &'static str| {
        vec![
            "trace",
            "--ruleset",
            file,
            "--ruleset-format",
            format,
            "--src",
            "198.18.0.1",
            "--dst",
            "198.18.0.2",
            "--proto",
            "tcp",
        ]
    };
    let node = scratch.join("node");
    let node_s = node.to_str().unwrap().to_string();
    let place = |at: &str| {
        let dest = node.join(at.trim_start_matches('/'));
        std::fs::copy(repo_root().join(file), dest).unwrap();
    };
    let args: Vec<&str> = match kind {
        "site" => vec!["site", "check", file],
        "tkg-config" => vec!["site", "import", "--tkg-config", file],
        "iptables" => trace("iptables"),
        "nft" => trace("nft"),
        "nsx" => trace("nsx"),
        // A profile is read before the node: the root is an empty directory.
        "cis-profile" => vec![
            "cis",
            "scan",
            "--root",
            "tests/malformed",
            "--profile",
            file,
        ],
        "cis-waivers" => {
            drop(testkit::worker(&node, KubeletStyle::ConfigOnly));
            vec![
                "cis",
                "scan",
                "--root",
                &node_s,
                "--benchmark",
                "cis-1.6",
                "--waivers",
                file,
            ]
        }
        "kubelet-config" => {
            drop(testkit::worker(&node, KubeletStyle::ConfigOnly));
            place("/var/lib/kubelet/config.yaml");
            vec!["cis", "scan", "--root", &node_s, "--benchmark", "cis-1.6"]
        }
        "static-pod" => {
            drop(testkit::tkg_control_plane(&node));
            place("/etc/kubernetes/manifests/kube-apiserver.yaml");
            vec!["cis", "scan", "--root", &node_s, "--benchmark", "cis-1.6"]
        }
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
            let scratch = tempfile::tempdir().unwrap();
            let Some(args) = command_for(&kind_name, &rel, scratch.path()) else {
                continue;
            };
            let out = Command::new(env!("CARGO_BIN_EXE_ringfence"))
                .args(&args)
                .current_dir(&root)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            let expected_path = PathBuf::from(format!("{}.expected", file.display()));
            // Node roots live in a fresh temporary directory each run.
            let stderr = stderr.replace(scratch.path().to_str().unwrap(), "$NODE");
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

#[test]
fn enormous_inputs_are_refused_unread_with_the_limit_named() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.input");
    // Sparse: 1 GiB on paper, nothing on disk.
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let h = huge.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["site", "check", h], "site file"),
        (&["site", "import", "--tkg-config", h], "TKG cluster config"),
        (
            &[
                "trace",
                "--ruleset",
                h,
                "--src",
                "198.18.0.1",
                "--dst",
                "198.18.0.2",
                "--proto",
                "tcp",
            ],
            "ruleset",
        ),
        (
            &["cis", "scan", "--root", "/nonexistent", "--profile", h],
            "profile",
        ),
    ];
    for (args, what) in cases {
        let start = std::time::Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_ringfence"))
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(
            stderr,
            format!(
                "error: {h}: {what} is 1073741824 bytes, over the 128 MiB limit for input files\n  \
                 help: check that this is the right file; split a larger export into several files\n"
            ),
            "{args:?}"
        );
        assert!(
            start.elapsed().as_secs() < 5,
            "{args:?} read the file instead of refusing it"
        );
    }
}
