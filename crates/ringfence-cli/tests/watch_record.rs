//! `watch --record DIR` keeps an append-only history of a file source's
//! changes (the rules each added and removed, the findings each changed),
//! and `report --history DIR` shows it as a timeline; an unusable DIR and a
//! damaged log are refused with a located error and exit 2.

mod common;

use common::watching::{
    replace_file as replace, watch_data as data, watch_fixture as fixture, WatchProcess,
};
use ringfence_report::history::log::{read_log, Entry};
use ringfence_testkit::{Need, Netns};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BLOCK: &str = "\t\tip daddr 198.18.1.30 tcp dport 443 drop\n";

/// A running `watch --record` on a file; killed on drop if still running.
struct Recording {
    proc: WatchProcess,
}

impl Recording {
    fn start(rules: &Path, dir: &Path) -> Recording {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringfence"));
        cmd.arg("watch")
            .arg("--site")
            .arg(data("site.yaml"))
            .arg("--source")
            .arg(format!("file:{}", rules.display()))
            .args(["--interval", "100ms", "--format", "json", "--record"])
            .arg(dir);
        Recording::spawn(cmd)
    }

    /// Start `cmd` (a `watch --format json`) and wait for its first line.
    fn spawn(cmd: Command) -> Recording {
        let r = Recording {
            proc: WatchProcess::spawn(cmd, false),
        };
        r.next_line();
        r
    }

    /// The next printed line (within 10 s).
    fn next_line(&self) -> String {
        self.proc.expect_line(Duration::from_secs(10))
    }

    /// Make a change and wait until watch printed `n` lines about it.
    fn change(&self, n: usize, f: impl FnOnce()) {
        f();
        for _ in 0..n {
            self.next_line();
        }
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(self) {
        assert_eq!(self.proc.stop().code(), Some(0), "a clean stop");
    }
}

fn block(path: &Path) {
    let t = std::fs::read_to_string(path).unwrap();
    replace(
        path,
        &t.replacen(
            "\tchain allow {\n",
            &format!("\tchain allow {{\n{BLOCK}"),
            1,
        ),
    );
}

fn unblock(path: &Path) {
    let t = std::fs::read_to_string(path).unwrap();
    replace(path, &t.replacen(BLOCK, "", 1));
}

#[test]
fn record_logs_each_change_with_the_rules_it_made_and_the_findings_it_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("ruleset.nft");
    std::fs::write(&rules, fixture("ruleset.nft")).unwrap();
    let dir = tmp.path().join("history/node-1");
    let w = Recording::start(&rules, &dir);
    // Blocking vCenter: the flow's status and one shadowed rule.
    w.change(2, || block(&rules));
    w.change(2, || unblock(&rules));
    w.stop();

    let segs = read_log(&dir).expect("the log reads back");
    assert_eq!(segs.len(), 1);
    let entries: Vec<&Entry> = segs[0].entries.iter().map(|(_, e)| e).collect();
    let Entry::Start(st) = entries[0] else {
        panic!("starts with the state")
    };
    assert_eq!(st.v, 1);
    assert!(st.ok && st.findings.is_empty());
    let (Entry::Change(a), Entry::Change(b), Entry::Stop(_)) = (entries[1], entries[2], entries[3])
    else {
        panic!("two changes and a stop: {entries:#?}")
    };
    assert_eq!((a.seq, b.seq), (1, 2));
    assert_eq!(a.previous, st.ruleset);
    assert_eq!(b.previous, a.ruleset);
    assert_eq!(b.ruleset, st.ruleset, "the same rules hash the same");
    assert_eq!((a.added_total, a.removed_total), (1, 0));
    assert_eq!(
        a.rules_added[0].text.as_deref(),
        Some("ip daddr 198.18.1.30 tcp dport 443 drop")
    );
    assert_eq!(a.rules_added[0].rule, format!("{}:11", rules.display()));
    assert_eq!(b.rules_removed[0].text, a.rules_added[0].text);
    let what = |c: &ringfence_report::history::log::Change| -> Vec<String> {
        c.findings
            .iter()
            .map(|f| format!("{} {} {}", f.change, f.finding.kind, f.finding.subject))
            .collect()
    };
    assert_eq!(
        what(a)[0..1],
        ["flow-status flow to-vcenter".to_string()],
        "{:?}",
        what(a)
    );
    assert!(what(a)[1].starts_with("appeared shadowed"));
    assert!(what(b)[1].starts_with("disappeared shadowed"));
    assert!(!a.ok && b.ok);

    // The timeline says when the blocked flow appeared and disappeared.
    let out = common::ok(&[
        "report",
        "--history",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let h = common::json(&out);
    let findings = h["findings"].as_array().unwrap();
    let flow = findings
        .iter()
        .find(|l| l["finding"]["subject"] == "to-vcenter")
        .expect("the blocked flow");
    assert_eq!(flow["spans"][0]["from"], a.time.as_str());
    assert_eq!(flow["spans"][0]["to"], b.time.as_str());
    assert!(flow["spans"][0]["from_title"]
        .as_str()
        .unwrap()
        .contains("1 rule added"));
    assert_eq!(h["summary"]["open"], 0);
    for format in ["html", "markdown"] {
        let out = common::ok(&[
            "report",
            "--history",
            dir.to_str().unwrap(),
            "--format",
            format,
        ]);
        assert!(out.contains("to-vcenter"), "{format}");
    }
}

#[test]
fn each_run_adds_a_segment_and_never_rewrites_an_older_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("h");
    let once = |rules: &Path| {
        Command::new(env!("CARGO_BIN_EXE_ringfence"))
            .arg("watch")
            .arg("--site")
            .arg(data("site.yaml"))
            .arg("--source")
            .arg(format!("file:{}", rules.display()))
            .arg("--once")
            .arg("--record")
            .arg(&dir)
            .output()
            .unwrap()
    };
    let rules = tmp.path().join("r.nft");
    std::fs::write(&rules, fixture("ruleset.nft")).unwrap();
    assert_eq!(once(&rules).status.code(), Some(0));
    let first: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(first.len(), 1);
    let before = std::fs::read(&first[0]).unwrap();
    block(&rules);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(once(&rules).status.code(), Some(1), "findings: exit 1");
    assert_eq!(std::fs::read(&first[0]).unwrap(), before);
    let segs = read_log(&dir).unwrap();
    assert_eq!(segs.len(), 2);
    for s in &segs {
        assert!(matches!(s.entries.last().unwrap().1, Entry::Stop(_)));
    }
    // Between the cron runs the flow became blocked while nothing watched.
    let out = common::ok(&[
        "report",
        "--history",
        dir.to_str().unwrap(),
        "--format",
        "markdown",
    ]);
    assert!(out.contains("while nothing watched"), "{out}");
    assert!(out.contains("flow to-vcenter **blocked**"), "{out}");
}

#[test]
fn an_unusable_record_directory_exits_2_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    for dir in [file.clone(), file.join("below")] {
        let err = common::refused(&[
            "watch",
            "--site",
            data("site.yaml").to_str().unwrap(),
            "--source",
            &format!("file:{}", data("ruleset.nft").display()),
            "--once",
            "--record",
            dir.to_str().unwrap(),
        ]);
        assert!(
            err.contains(&format!("{}: --record:", dir.display())),
            "{err}"
        );
        assert!(err.contains("help:"), "{err}");
    }
}

#[test]
fn a_log_cut_off_mid_write_is_refused_at_its_line_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("h");
    let rules = tmp.path().join("r.nft");
    std::fs::write(&rules, fixture("ruleset.nft")).unwrap();
    let w = Recording::start(&rules, &dir);
    w.change(2, || block(&rules));
    // The entry is written after the lines are printed: wait for it.
    let seg = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let t = Instant::now();
    let mut text = std::fs::read_to_string(&seg).unwrap();
    while text.lines().count() < 2 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
        text = std::fs::read_to_string(&seg).unwrap();
    }
    // Killed, not stopped; then the last entry is cut as a crash would.
    drop(w);
    assert_eq!(text.lines().count(), 2, "start and one change: {text}");
    std::fs::write(&seg, &text[..text.len() - 30]).unwrap();
    let err = common::refused(&["report", "--history", dir.to_str().unwrap()]);
    assert!(
        err.contains(&format!("{}:2: the last line is cut short", seg.display())),
        "{err}"
    );
    let keep = text.find('\n').unwrap() + 1;
    assert!(err.contains(&format!("truncate -s {keep} ")), "{err}");
    // Following the help makes it readable; the killed run has no stop.
    std::fs::write(&seg, &text[..keep]).unwrap();
    let out = common::ok(&[
        "report",
        "--history",
        dir.to_str().unwrap(),
        "--format",
        "markdown",
    ]);
    assert!(out.contains("has no stop entry"), "{out}");
}

#[test]
fn json_is_for_history_only_and_history_excludes_a_ruleset() {
    let err = common::refused(&["report", "--example", "--format", "json"]);
    assert!(err.contains("--history"), "{err}");
    let (code, _, err) = common::run(&["report", "--history", "x", "--site", "s.yaml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn an_nft_resync_with_the_same_rules_and_new_handles_records_nothing() {
    if !ringfence_testkit::require!(Need::Root, Need::Tool("nft"), Need::Tool("ip")) {
        return;
    }
    let ns = Netns::new("wrec");
    let base = fixture("ruleset.nft");
    let blocked = base.replacen(
        "\tchain allow {\n",
        &format!("\tchain allow {{\n{BLOCK}"),
        1,
    );
    ns.load_nft(&base);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("h");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_ringfence")])
        .arg("watch")
        .arg("--site")
        .arg(data("site.yaml"))
        .args(["--source", "nft", "--format", "json", "--record"])
        .arg(&dir);
    let w = Recording::spawn(cmd);
    let reload = |text: &str| ns.load_nft(&format!("flush table inet rfw\n{text}"));
    w.change(2, || reload(&blocked));
    // The same rules again, every handle new: nothing printed or recorded.
    reload(&blocked);
    assert!(
        w.proc.next_line(Duration::from_millis(1500)).is_none(),
        "a resync to the same rules reports nothing"
    );
    w.change(2, || reload(&base));
    w.stop();

    let segs = read_log(&dir).unwrap();
    let entries: Vec<&Entry> = segs[0].entries.iter().map(|(_, e)| e).collect();
    assert_eq!(entries.len(), 4, "{entries:#?}");
    let (Entry::Start(st), Entry::Change(a), Entry::Change(b), Entry::Stop(_)) =
        (entries[0], entries[1], entries[2], entries[3])
    else {
        panic!("start, two changes, stop: {entries:#?}")
    };
    assert_eq!(entries.len(), 4, "{entries:#?}");
    assert_eq!(b.ruleset, st.ruleset);
    assert_eq!((a.added_total, a.removed_total), (1, 0));
    assert_eq!((b.added_total, b.removed_total), (0, 1));
    // nft JSON has no rule text to quote: the normalized rule stands in.
    let r = &a.rules_added[0];
    assert!(r.rule.starts_with("inet rfw allow handle "), "{r:?}");
    assert_eq!(r.chain, "inet rfw allow");
    assert!(r.text.is_none());
    let n = r.normalized.as_deref().unwrap();
    assert!(n.contains("dport=443-443") && n.ends_with("-> drop"), "{n}");
    assert_eq!(b.rules_removed[0].normalized, r.normalized);
}
