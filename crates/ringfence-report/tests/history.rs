//! `report --history`: the timeline built from a `watch --record` log (a
//! fixture log of two runs, one killed, one continued in a second segment
//! after a lost entry), its Markdown and HTML snapshots, the located errors
//! for damaged logs, and the append-only recorder that writes the log.

use ringfence_report::history::log::{
    read_log, read_segment, Change, Entry, LogFinding, Recorder, Start, StopEntry,
};
use ringfence_report::history::{build, render_html, render_markdown, EventKind, History};
use std::path::{Path, PathBuf};

const TIME: &str = "2026-12-07 00:00:00 UTC";

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/history/log")
}

fn fixture() -> History {
    let segs = read_log(&fixture_dir()).expect("the fixture log reads");
    build("log", &segs, TIME, "0.0.0-test")
}

fn life(h: &History, fp_start: char) -> &ringfence_report::history::Life {
    h.findings
        .iter()
        .find(|l| l.finding.fingerprint.starts_with(fp_start))
        .unwrap_or_else(|| panic!("no finding {fp_start}...: {:#?}", h.findings))
}

#[test]
fn each_finding_has_when_it_appeared_and_disappeared_and_the_change_that_did_it() {
    let h = fixture();
    // The excess region: there from the start, gone with change 2 of run A.
    let exc = life(&h, 'a');
    assert_eq!(exc.spans.len(), 1);
    assert_eq!(exc.spans[0].from, "2026-12-06T07:00:00.000Z");
    assert!(exc.spans[0].from_title.starts_with("watch started"));
    assert_eq!(exc.spans[0].to.as_deref(), Some("2026-12-06T07:10:00.450Z"));
    assert!(exc.spans[0]
        .to_title
        .as_deref()
        .unwrap()
        .contains("change 2 of run 20261206T070000.000Z-100: 1 rule removed"));
    // The blocked flow: appeared with change 1, still there when run B
    // started, gone with change 3 of run B (which removed the DROP).
    let blk = life(&h, 'b');
    assert_eq!(blk.finding.subject, "to-vcenter");
    assert_eq!(blk.spans.len(), 1, "{:#?}", blk.spans);
    assert_eq!(blk.spans[0].from, "2026-12-06T07:05:00.120Z");
    assert_eq!(blk.spans[0].to.as_deref(), Some("2026-12-06T09:10:00.000Z"));
    let ev = h
        .events
        .iter()
        .find(|e| Some(&e.id) == blk.spans[0].to_event.as_ref())
        .unwrap();
    assert_eq!(ev.rules_removed.len(), 1);
    assert!(ev.rules_removed[0]
        .text
        .as_deref()
        .unwrap()
        .contains("--dport 443 -j DROP"));
    // An allowed flow is no finding: the flow's new status did not appear.
    assert!(h
        .findings
        .iter()
        .all(|l| !l.finding.fingerprint.starts_with('c')));
}

#[test]
fn findings_still_present_at_the_end_are_listed_as_open() {
    let h = fixture();
    let open: Vec<&str> = h
        .open
        .iter()
        .map(|&i| h.findings[i].finding.subject.as_str())
        .collect();
    assert_eq!(
        open,
        vec!["iptables-save:9", "tcp 0.0.0.0/0 -> 198.18.1.20 port 9090"]
    );
    assert_eq!(h.summary.open, 2);
    assert!(!h.summary.ok_at_end);
    assert_eq!(h.summary.runs, 2);
    assert_eq!(h.summary.changes, 4);
    assert_eq!(h.summary.errors, 1);
}

#[test]
fn a_killed_run_and_what_changed_while_nothing_watched_are_called_out() {
    let h = fixture();
    let kinds: Vec<EventKind> = h.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::Start,
            EventKind::Change,
            EventKind::Error,
            EventKind::Change,
            EventKind::NoStop,
            EventKind::Start,
            EventKind::Change,
            EventKind::Lost,
            EventKind::Change,
            EventKind::Stop,
        ]
    );
    // Run B's start: the shadowed rule went away, the redundant rule came,
    // both while nothing watched.
    let b = &h.events[5];
    assert!(b.title.contains("while nothing watched"), "{}", b.title);
    let fps = |v: &[ringfence_report::history::FindingRef]| -> Vec<char> {
        v.iter()
            .map(|f| f.fingerprint.chars().next().unwrap())
            .collect()
    };
    assert_eq!(fps(&b.disappeared), vec!['d']);
    assert_eq!(fps(&b.appeared), vec!['f']);
    // The second segment of run B shows a region no entry announced.
    let lost = &h.events[7];
    assert!(
        lost.title.contains("entries were not written"),
        "{}",
        lost.title
    );
    assert_eq!(fps(&lost.appeared), vec!['0']);
    // The cut excess list is said to be counted only.
    assert!(h.events[6].excess_cut);
    assert!(h.notes.iter().any(|n| n.contains("counted, not followed")));
}

#[test]
fn markdown_of_the_fixture_history_matches_its_snapshot() {
    insta::assert_snapshot!("history_markdown", render_markdown(&fixture()).unwrap());
}

#[test]
fn html_of_the_fixture_history_matches_its_snapshot() {
    // The log's paths are absolute (they point into this checkout): the
    // snapshot names the checkout `[repo]` so it holds wherever it lives.
    let root = env!("CARGO_MANIFEST_DIR").replace('/', "&#x2f;");
    let html = render_html(&fixture()).unwrap().replace(&root, "[repo]");
    insta::assert_snapshot!("history_html", html);
}

#[test]
fn html_history_escapes_what_the_log_says() {
    let mut segs = read_log(&fixture_dir()).unwrap();
    if let Entry::Error(e) = &mut segs[0].entries[2].1 {
        e.message = "<script>alert(1)</script>".into();
    } else {
        panic!("line 3 of the first segment is the error entry");
    }
    let html = render_html(&build("log", &segs, TIME, "t")).unwrap();
    assert!(!html.contains("<script>"), "the message must be escaped");
    assert!(html.contains("&lt;script&gt;"));
}

fn text(name: &str) -> String {
    std::fs::read_to_string(fixture_dir().join(name)).unwrap()
}

const A: &str = "20261206T070000.000Z-100-0000.jsonl";

#[test]
fn a_truncated_last_line_is_reported_at_its_line_with_the_fix() {
    let t = text(A);
    let cut = &t[..t.len() - 40];
    let e = read_segment(cut, "seg.jsonl").unwrap_err();
    let keep = cut.rfind('\n').unwrap() + 1;
    assert_eq!(e.position(), "seg.jsonl:4");
    assert!(e.message.contains("cut short"), "{e}");
    assert!(
        e.help
            .as_deref()
            .unwrap()
            .contains(&format!("truncate -s {keep} seg.jsonl")),
        "{e}"
    );
}

#[test]
fn damaged_segments_are_refused_at_their_file_and_line() {
    let t = text(A);
    let lines: Vec<&str> = t.lines().collect();
    let join = |v: &[&str]| v.join("\n") + "\n";
    let cases: Vec<(String, &str, &str)> = vec![
        (
            join(&[lines[0], "{not json", lines[2]]),
            "seg.jsonl:2:2",
            "not a history entry",
        ),
        (
            join(&[lines[0], r#"{"type":"rename","time":"x"}"#]),
            "seg.jsonl:2",
            "unknown variant",
        ),
        (
            join(&[lines[1], lines[2]]),
            "seg.jsonl:1",
            "must begin with a start entry",
        ),
        (
            join(&[lines[0], lines[0]]),
            "seg.jsonl:2",
            "in the middle of a segment",
        ),
        (
            join(&[&lines[0].replace("\"v\":1", "\"v\":2")]),
            "seg.jsonl:1",
            "newer than this ringfence reads",
        ),
        (join(&[lines[0], "", lines[1]]), "seg.jsonl:2", "empty line"),
        (String::new(), "seg.jsonl", "empty segment"),
    ];
    for (input, position, needle) in cases {
        let e = read_segment(&input, "seg.jsonl").unwrap_err();
        assert!(e.position().starts_with(position), "{position}: {e}");
        assert!(e.message.contains(needle), "{needle}: {e}");
        assert!(e.help.is_some(), "{e}");
    }
}

#[test]
fn a_directory_without_segments_or_with_a_bad_one_is_refused_naming_each_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = read_log(dir.path()).unwrap_err();
    assert!(e.to_string().contains("no history segments"), "{e}");
    let e = read_log(&dir.path().join("missing")).unwrap_err();
    assert!(
        e.to_string().contains("cannot read the history directory"),
        "{e}"
    );
    // Two damaged segments: both reported.
    std::fs::write(dir.path().join("a.jsonl"), "{\n").unwrap();
    std::fs::write(dir.path().join("b.jsonl"), text(A) + "{\"type\"").unwrap();
    let e = read_log(dir.path()).unwrap_err();
    assert_eq!(e.0.len(), 2, "{e}");
    assert!(e.0[0].position().ends_with("a.jsonl:1:1"), "{e}");
    assert!(e.0[1].position().ends_with("b.jsonl:5"), "{e}");
}

fn start(findings: Vec<LogFinding>) -> Start {
    Start {
        v: 1,
        time: "2026-12-06T10:00:00.000Z".into(),
        run: String::new(),
        segment: 0,
        sources: vec!["nft".into()],
        site: "site.yaml".into(),
        hook: "forward".into(),
        ruleset: "1".repeat(32),
        ok: findings.is_empty(),
        excess: 0,
        findings,
    }
}

fn change(seq: u64) -> Entry {
    Entry::Change(Change {
        time: "2026-12-06T10:00:01.000Z".into(),
        seq,
        ruleset: "2".repeat(32),
        previous: "1".repeat(32),
        rules_added: Vec::new(),
        rules_removed: Vec::new(),
        added_total: 0,
        removed_total: 0,
        findings: Vec::new(),
        excess: 0,
        excess_cut: false,
        ok: true,
    })
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn the_recorder_creates_its_directory_and_what_it_writes_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b");
    let mut r = Recorder::open(&dir, start(Vec::new())).unwrap();
    r.append(&change(1), || panic!("no new segment needed"))
        .unwrap();
    r.append(
        &Entry::Stop(StopEntry {
            time: "2026-12-06T10:00:02.000Z".into(),
        }),
        || panic!("no new segment needed"),
    )
    .unwrap();
    let segs = read_log(&dir).unwrap();
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].start().run, r.run());
    assert_eq!(segs[0].entries.len(), 3);
    assert_eq!(segs[0].entries[1].1, change(1));
}

#[test]
fn a_full_segment_is_never_reopened_the_next_begins_with_the_state() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut r = Recorder::open_with_limit(dir, start(Vec::new()), 1).unwrap();
    let first = segments(dir);
    assert_eq!(first.len(), 1);
    let before = std::fs::read(&first[0]).unwrap();
    let mut asked = 0;
    r.append(&change(1), || {
        asked += 1;
        start(Vec::new())
    })
    .unwrap();
    assert_eq!(asked, 1, "the full segment makes way for a new one");
    assert_eq!(std::fs::read(&first[0]).unwrap(), before, "never rewritten");
    let segs = read_log(dir).unwrap();
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[1].start().segment, 1);
    assert_eq!(segs[1].start().run, segs[0].start().run);
    assert_eq!(segs[1].entries[1].1, change(1));
}

#[test]
fn a_directory_that_is_a_file_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, "x").unwrap();
    for dir in [file.clone(), file.join("sub")] {
        let e = Recorder::open(&dir, start(Vec::new()))
            .err()
            .expect("refused");
        assert_eq!(e.file, dir.display().to_string());
        assert!(e.message.starts_with("--record:"), "{e}");
        assert!(e.help.is_some());
    }
}

#[test]
fn html_history_tables_have_captions_and_scoped_headers_and_no_scripts() {
    let html = render_html(&fixture()).unwrap();
    let tables = html.matches("<table").count();
    assert_eq!(tables, 3, "open, timeline, every finding");
    assert_eq!(html.matches("<caption>").count(), tables);
    let ths = html.matches("<th").count() - html.matches("<thead").count();
    assert_eq!(html.matches("<th scope=\"col\">").count(), ths);
    assert!(!html.contains("<script") && !html.contains("src=\"http"));
    // Appeared / gone carry a word, not only a colour.
    assert!(html.contains("</span>appeared</span>") && html.contains("</span>gone</span>"));
}
