//! `deploy manifests --kind watch` passes --watch-interval, --watch-exec,
//! --watch-webhook and --watch-record through to the watch pod, checked by
//! watch's own parsers first: a bad value exits 2 before anything is printed.

mod common;

fn site() -> String {
    common::repo_root()
        .join("crates/ringfence-cli/tests/data/watch/site.yaml")
        .display()
        .to_string()
}

#[test]
fn the_watch_flags_reach_the_pods_command() {
    let site = site();
    let yaml = common::ok(&[
        "deploy",
        "manifests",
        "--kind",
        "watch",
        "--site",
        &site,
        "--watch-source",
        "iptables",
        "--watch-interval",
        "2s",
        "--watch-exec",
        "logger -t ringfence",
        "--watch-webhook",
        "https://hooks.example.com/ringfence",
        "--watch-record",
        "/var/lib/ringfence/history",
    ]);
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    let pod = &ds["spec"]["template"]["spec"];
    let argv: Vec<&str> = pod["containers"][0]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(
        argv[4..],
        [
            "--source",
            "iptables",
            "--hook",
            "forward",
            "--format",
            "json",
            "--interval",
            "2s",
            "--exec",
            "logger -t ringfence",
            "--webhook",
            "https://hooks.example.com/ringfence",
            "--record",
            "/var/lib/ringfence/history",
        ]
    );
    assert!(pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["hostPath"]["path"] == "/var/lib/ringfence/history"));
}

#[test]
fn bad_watch_flag_values_exit_2_before_printing() {
    let site = site();
    for (flag, value, needle) in [
        ("--watch-interval", "1ms", "at least 10ms"),
        (
            "--watch-webhook",
            "ftp://example.com/",
            "http:// or https://",
        ),
        ("--watch-exec", "logger 'unclosed", "unterminated"),
        ("--watch-record", "var/lib/history", "absolute directory"),
    ] {
        let (code, out, err) = common::run(&[
            "deploy",
            "manifests",
            "--kind",
            "watch",
            "--site",
            &site,
            flag,
            value,
        ]);
        assert_eq!(code, 2, "{flag} {value}: {err}");
        assert!(out.is_empty(), "nothing printed: {out}");
        assert!(err.contains(needle), "{flag} {value}: {err}");
    }
    let err = common::refused(&[
        "deploy",
        "manifests",
        "--watch-record",
        "/var/lib/ringfence/history",
    ]);
    assert!(
        err.contains("--watch-record applies to --kind watch"),
        "{err}"
    );
}
