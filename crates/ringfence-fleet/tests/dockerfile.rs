//! Lints the repository's Dockerfile for the obvious: pinned base images, a
//! non-root default user, no secret-looking build variables, and COPY of
//! only what the build needs (including every data directory the crates
//! embed with include_str!). No container engine runs here, so this reads the
//! file rather than building it; docs/fleet.md documents the build.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One Dockerfile instruction: keyword (upper-case), arguments, 1-based line.
#[derive(Debug)]
struct Instr {
    keyword: String,
    args: String,
    line: usize,
}

/// Split a Dockerfile into instructions, joining `\` continuations and
/// dropping comments and blank lines.
fn instructions(text: &str) -> Vec<Instr> {
    let mut out = Vec::new();
    let mut buf = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if buf.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        if buf.is_empty() {
            start = i + 1;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            buf.push_str(cont);
            buf.push(' ');
            continue;
        }
        buf.push_str(line);
        let (kw, args) = buf.split_once(char::is_whitespace).unwrap_or((&buf, ""));
        out.push(Instr {
            keyword: kw.to_ascii_uppercase(),
            args: args.trim().to_string(),
            line: start,
        });
        buf.clear();
    }
    out
}

/// Words of an instruction's arguments without leading `--flag=...` options.
fn operands(args: &str) -> Vec<&str> {
    args.split_whitespace()
        .filter(|w| !w.starts_with("--"))
        .collect()
}

fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "secret",
        "password",
        "passwd",
        "token",
        "api_key",
        "apikey",
        "private_key",
        "credential",
        "aws_access",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// Everything wrong with a Dockerfile, as `line N: problem` strings.
fn lint(text: &str, repo_root: Option<&Path>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut stages: Vec<String> = Vec::new();
    let mut last_from = None;
    let mut user_in_final: Option<(usize, String)> = None;
    let ins = instructions(text);
    for (idx, i) in ins.iter().enumerate() {
        match i.keyword.as_str() {
            "FROM" => {
                let ops = operands(&i.args);
                let image = ops.first().copied().unwrap_or("");
                if let Some(pos) = ops.iter().position(|w| w.eq_ignore_ascii_case("as")) {
                    if let Some(name) = ops.get(pos + 1) {
                        stages.push(name.to_ascii_lowercase());
                    }
                }
                last_from = Some(idx);
                user_in_final = None;
                if stages.iter().any(|s| s == &image.to_ascii_lowercase()) || image == "scratch" {
                    continue;
                }
                let (name, digest) = match image.split_once('@') {
                    Some((n, d)) => (n, Some(d)),
                    None => (image, None),
                };
                let last = name.rsplit('/').next().unwrap_or(name);
                let tag = last.split_once(':').map(|(_, t)| t);
                match (tag, digest) {
                    (_, Some(d)) if d.starts_with("sha256:") && d.len() == 71 => {}
                    (_, Some(d)) => {
                        problems.push(format!("line {}: malformed digest {d:?}", i.line))
                    }
                    (None, None) => problems.push(format!(
                        "line {}: base image {image:?} has no tag or digest",
                        i.line
                    )),
                    (Some(t), None) if t.eq_ignore_ascii_case("latest") => problems.push(format!(
                        "line {}: base image {image:?} uses the moving `latest` tag",
                        i.line
                    )),
                    (Some(t), None) if !t.chars().any(|c| c.is_ascii_digit()) => {
                        problems.push(format!(
                            "line {}: base image {image:?} has a tag without a version number",
                            i.line
                        ))
                    }
                    _ => {}
                }
            }
            "USER" => user_in_final = Some((i.line, i.args.clone())),
            "ENV" | "ARG" => {
                let names: Vec<&str> = if i.keyword == "ARG" || i.args.contains('=') {
                    i.args
                        .split_whitespace()
                        .map(|kv| kv.split('=').next().unwrap_or(kv))
                        .collect()
                } else {
                    i.args.split_whitespace().take(1).collect()
                };
                for n in names {
                    if looks_secret(n) {
                        problems.push(format!("line {}: {} {n} looks like a secret; pass secrets with `RUN --mount=type=secret`, never as build variables", i.line, i.keyword));
                    }
                }
            }
            "ADD" => problems.push(format!(
                "line {}: use COPY, not ADD (ADD fetches URLs and unpacks archives)",
                i.line
            )),
            "COPY" => {
                if i.args.contains("--from=") {
                    continue;
                }
                let ops = operands(&i.args);
                let sources = &ops[..ops.len().saturating_sub(1)];
                for s in sources {
                    if matches!(*s, "." | "./" | "*" | "/") {
                        problems.push(format!("line {}: COPY {s} copies the whole build context; copy only what the build needs", i.line));
                    } else if let Some(root) = repo_root {
                        if !root.join(s).exists() {
                            problems.push(format!(
                                "line {}: COPY source {s} does not exist in the repository",
                                i.line
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if last_from.is_none() {
        problems.push("no FROM instruction".to_string());
    }
    match user_in_final {
        None => {
            problems.push("the final stage sets no USER, so the image runs as root".to_string())
        }
        Some((line, u)) => {
            let user = u.split(':').next().unwrap_or("");
            if user == "root" || user == "0" {
                problems.push(format!("line {line}: the final stage's USER is root"));
            }
        }
    }
    problems
}

#[test]
fn the_repository_dockerfile_passes_the_lint() {
    let text = std::fs::read_to_string(repo().join("Dockerfile"))
        .expect("Dockerfile at the repository root");
    let problems = lint(&text, Some(&repo()));
    assert!(
        problems.is_empty(),
        "Dockerfile problems:\n{}",
        problems.join("\n")
    );
    let ins = instructions(&text);
    assert_eq!(
        ins.iter().filter(|i| i.keyword == "FROM").count(),
        2,
        "multi-stage: build and runtime"
    );
}

/// Top-level directories the crates embed files from (`include_str!` paths
/// that climb out of `crates/`).
fn embedded_top_dirs(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "target") {
                    walk(&p, out);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root.join("crates"), &mut files);
    let crates_dir = root.join("crates").canonicalize().unwrap();
    let root_c = root.canonicalize().unwrap();
    let mut dirs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for chunk in text.split("include_str!(\"").skip(1) {
            let Some(rel) = chunk.split('"').next() else {
                continue;
            };
            let Ok(target) = f.parent().unwrap().join(rel).canonicalize() else {
                continue;
            };
            if target.starts_with(&crates_dir) {
                continue;
            }
            if let Ok(inside) = target.strip_prefix(&root_c) {
                if let Some(first) = inside.components().next() {
                    dirs.push(first.as_os_str().to_string_lossy().into_owned());
                }
            }
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

#[test]
fn the_dockerfile_copies_every_directory_the_crates_embed() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let copied: Vec<String> = instructions(&text)
        .into_iter()
        .filter(|i| i.keyword == "COPY" && !i.args.contains("--from="))
        .flat_map(|i| {
            let ops: Vec<String> = operands(&i.args)
                .iter()
                .map(|s| s.trim_end_matches('/').to_string())
                .collect();
            ops[..ops.len() - 1].to_vec()
        })
        .collect();
    let embedded = embedded_top_dirs(&repo());
    assert!(
        embedded.contains(&"catalog".to_string()),
        "found {embedded:?}"
    );
    for d in embedded {
        assert!(
            copied.contains(&d),
            "crates embed files from {d}/ but the Dockerfile does not COPY it; copied: {copied:?}"
        );
    }
}

#[test]
fn the_dockerignore_keeps_build_output_venv_and_git_out() {
    let text = std::fs::read_to_string(repo().join(".dockerignore"))
        .expect(".dockerignore at the repository root");
    let entries: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for must in ["target", ".git", ".venv"] {
        assert!(entries.contains(&must), ".dockerignore lacks {must}");
    }
}

#[test]
fn the_lint_catches_each_obvious_mistake() {
    let cases = [
        ("FROM debian\nUSER 1000\n", "has no tag or digest"),
        ("FROM debian:latest\nUSER 1000\n", "moving `latest` tag"),
        (
            "FROM debian:bookworm-slim\nUSER 1000\n",
            "without a version number",
        ),
        ("FROM debian:12.12-slim\n", "sets no USER"),
        ("FROM debian:12.12-slim\nUSER root\n", "USER is root"),
        (
            "FROM rust:1.95.0 AS b\nUSER 0\nFROM debian:12.12-slim\nUSER 0:0\n",
            "USER is root",
        ),
        (
            "FROM debian:12.12-slim\nARG GITHUB_TOKEN\nUSER 1\n",
            "looks like a secret",
        ),
        (
            "FROM debian:12.12-slim\nENV DB_PASSWORD=x\nUSER 1\n",
            "looks like a secret",
        ),
        (
            "FROM debian:12.12-slim\nCOPY . /src\nUSER 1\n",
            "whole build context",
        ),
        (
            "FROM debian:12.12-slim\nADD https://x.invalid/a /a\nUSER 1\n",
            "use COPY, not ADD",
        ),
        ("FROM debian@sha256:abc\nUSER 1\n", "malformed digest"),
    ];
    for (text, want) in cases {
        let problems = lint(text, None);
        assert!(
            problems.iter().any(|p| p.contains(want)),
            "{text:?}: expected {want:?}, got {problems:?}"
        );
    }
    // And the good shapes pass: a digest pin, a stage reference, a non-root user.
    let good = format!(
        "FROM rust:1.95.0-slim-bookworm AS build\nRUN true\nFROM debian@sha256:{}\nCOPY --from=build /out/x /x\nUSER 65532:65532\n",
        "a".repeat(64)
    );
    assert_eq!(lint(&good, None), Vec::<String>::new());
}
