//! `--initial-mark` on verify, trace and diff: packets enter with mark 0
//! unless the user says something marks them first (issue 15).

mod common;
use common::{run_in, write};

/// The analysis tests' clean base, with the Harbor accepts replaced by an
/// accept of mark 0x10 that mangle sets for exactly those packets.
fn marked_ruleset() -> String {
    let base = include_str!("../../ringfence-analysis/tests/data/exact.rules");
    let mut text = base.to_string();
    for (i, src) in ["198.18.10.0/24", "198.18.20.0/23", "198.18.1.10/32"]
        .iter()
        .enumerate()
    {
        let l =
            format!("-A INFRA -s {src} -d 198.18.1.20/32 -p tcp -m tcp --dport 443 -j ACCEPT\n");
        assert!(text.contains(&l), "{l}");
        text = text.replace(
            &l,
            if i == 0 {
                "-A INFRA -m mark --mark 0x10/0x10 -j ACCEPT\n"
            } else {
                ""
            },
        );
    }
    text.push_str("*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n");
    for src in ["198.18.10.0/24", "198.18.20.0/23", "198.18.1.10/32"] {
        text.push_str(&format!(
            "-A PREROUTING -s {src} -d 198.18.1.20/32 -p tcp --dport 443 -j MARK --set-xmark 0x10/0x10\n"
        ));
    }
    text.push_str("COMMIT\n");
    text
}

#[test]
fn verify_follows_marks_from_zero_and_is_unsure_with_initial_mark_any() {
    let d = tempfile::tempdir().expect("tempdir");
    write(d.path(), "m.rules", &marked_ruleset());
    let (code, out, err) = run_in(d.path(), &["verify", "--example", "--ruleset", "m.rules"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run_in(
        d.path(),
        &[
            "verify",
            "--example",
            "--ruleset",
            "m.rules",
            "--initial-mark",
            "any",
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
}

#[test]
fn trace_and_diff_take_initial_mark_any() {
    let d = tempfile::tempdir().expect("tempdir");
    write(d.path(), "m.rules", &marked_ruleset());
    let args = [
        "trace",
        "--ruleset",
        "m.rules",
        "--src",
        "198.18.20.5",
        "--dst",
        "198.18.1.20",
        "--proto",
        "tcp",
        "--dport",
        "443",
        "--format",
        "json",
    ];
    let (code, out, err) = run_in(d.path(), &args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"accept\""), "{out}");
    let mut any = args.to_vec();
    any.extend(["--initial-mark", "any"]);
    let (_, out, _) = run_in(d.path(), &any);
    assert!(out.contains("\"uncertain\": true"), "{out}");
    // diff reads both sides under the one assumption given.
    let (code, _, err) = run_in(
        d.path(),
        &["diff", "m.rules", "m.rules", "--initial-mark", "any"],
    );
    assert_eq!(code, 0, "a ruleset does not differ from itself: {err}");
}
