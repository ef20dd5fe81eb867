//! `trace --packets -` reads its JSON lines from standard input (issue 16).

mod common;
use common::{repo_root, run_stdin};

/// Run `ringfence trace --ruleset examples/ruleset.rules --packets -` with
/// `input` on stdin: (exit code, stdout, stderr).
fn trace_stdin(input: &str) -> (i32, String, String) {
    let rules = repo_root().join("examples/ruleset.rules");
    let rules = rules.to_str().expect("UTF-8 repository path");
    run_stdin(&["trace", "--ruleset", rules, "--packets", "-"], input)
}

#[test]
fn packets_dash_reads_json_lines_from_stdin_and_answers_each_in_order() {
    let (code, out, err) = trace_stdin(concat!(
        // workload -> management API server: accepted by the TKG chain.
        "{\"src\":\"198.18.20.5\",\"dst\":\"198.18.10.5\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":6443}\n",
        // management -> vCenter tcp/443: no rule opens it (a deliberate defect).
        "{\"src\":\"198.18.10.5\",\"dst\":\"198.18.1.30\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":443}\n",
    ));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["verdict"], "accept");
    assert_eq!(lines[1]["verdict"], "drop");
}

#[test]
fn a_bad_line_on_stdin_is_located_as_stdin_line_column_with_exit_2() {
    let (code, out, err) = trace_stdin(concat!(
        "{\"src\":\"198.18.20.5\",\"dst\":\"198.18.10.5\",\"proto\":\"tcp\",\"dport\":6443}\n",
        "{\"src\":\"198.18.20.500\",\"dst\":\"198.18.10.5\",\"proto\":\"tcp\"}\n",
    ));
    assert_eq!(code, 2, "{out}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("stdin:2:"), "{err}");
}
