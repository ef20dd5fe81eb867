//! `ringfence watch` follows a changing ruleset and reports exactly what
//! changed, in order, each within a second: a required flow blocked (and
//! the rule it shadows), unblocked, an excess rule added and removed, and a
//! whole-chain rewrite that changes nothing (kube-proxy-style resync: every
//! rule of the chain rewritten in another order, new handles or lines),
//! which must report nothing. Then the flow is blocked again: the findings
//! come back with the fingerprints they had the first time.
//!
//! Three sources: nft (a namespace's nftables, followed with `nft
//! monitor`), iptables (a namespace's iptables, polled) and a file (no
//! root). The fixtures (tests/data/watch) open exactly the flows of a small
//! site of their own.

use ringfence_testkit::{Need, Netns};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::watching::{replace_file, watch_data as data, watch_fixture as fixture, WatchProcess};

/// A running `ringfence watch --format json`, its output lines timestamped
/// as they arrive. Killed on drop if still running.
struct Watcher {
    proc: WatchProcess,
}

impl Watcher {
    fn start(cmd: Command) -> Watcher {
        Watcher {
            proc: WatchProcess::spawn(cmd, false),
        }
    }

    fn parse(l: &str) -> Value {
        serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
    }

    /// The first line: the initial state.
    fn initial(&self) -> Value {
        Self::parse(&self.proc.expect_line(Duration::from_secs(60)))
    }

    /// Run `change`, then collect the lines that follow: `expect` of them,
    /// then whatever else comes within `settle`. Each with its delay from
    /// the change.
    fn after(
        &self,
        expect: usize,
        settle: Duration,
        change: impl FnOnce(),
    ) -> Vec<(Duration, Value)> {
        // Nothing may be pending from before.
        if let Ok((_, l)) = self.proc.out.try_recv() {
            panic!("unexpected line before the change: {l}");
        }
        let t0 = Instant::now();
        change();
        let mut got = Vec::new();
        while got.len() < expect {
            match self.proc.next_line(Duration::from_secs(5)) {
                Some((t, l)) => got.push((t.duration_since(t0), Self::parse(&l))),
                None => break,
            }
        }
        while let Some((t, l)) = self.proc.next_line(settle) {
            got.push((t.duration_since(t0), Self::parse(&l)));
        }
        got
    }

    /// SIGTERM, then the exit status (watch stops cleanly: exit 0).
    fn stop(self) -> std::process::ExitStatus {
        self.proc.stop()
    }
}

/// What a change line says, without times, rule references and fingerprints.
fn gist(v: &Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    match s("change").as_str() {
        "flow-status" => format!(
            "flow-status {} {} {} -> {}",
            s("kind"),
            s("subject"),
            s("old_status"),
            s("status")
        ),
        "appeared" | "disappeared" if s("kind") == "excess" => {
            format!("{} excess {}", s("change"), s("subject"))
        }
        c => format!("{c} {}", s("kind")),
    }
}

fn fp(v: &Value) -> String {
    v["fingerprint"].as_str().expect("fingerprint").to_string()
}

/// The steps every source goes through.
trait Firewall {
    /// Drop tcp/443 to vCenter before every accept (blocks to-vcenter and
    /// shadows the accepts for vCenter).
    fn block(&self);
    /// Remove that drop.
    fn unblock(&self);
    /// Accept tcp/8080 to Harbor from anywhere (excess).
    fn add_excess(&self);
    /// Remove it.
    fn remove_excess(&self);
    /// Rewrite the whole accept chain, its rules in reverse order: new
    /// handles or line numbers, the same verdicts.
    fn resync(&self);
    /// How many accept rules the vCenter drop shadows.
    fn shadowed_by_block(&self) -> usize;
}

const EXCESS: &str = "tcp 0.0.0.0/0 -> 198.18.1.20 port 8080";

fn assert_timely(step: &str, got: &[(Duration, Value)]) {
    for (d, v) in got {
        assert!(
            *d <= Duration::from_secs(1),
            "{step}: {} reported after {d:?} (more than a second)",
            gist(v)
        );
        assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
    }
}

fn scenario(w: &Watcher, fw: &dyn Firewall) {
    let init = w.initial();
    assert_eq!(init["change"], "initial", "{init}");
    assert_eq!(
        init["summary"]["ok"], true,
        "the fixture opens exactly the flows: {init}"
    );
    let settle = Duration::from_millis(1500);
    let n = fw.shadowed_by_block();

    let blocked = |got: &[(Duration, Value)]| {
        let g: Vec<String> = got.iter().map(|(_, v)| gist(v)).collect();
        let mut want = vec!["flow-status flow to-vcenter allowed -> blocked".to_string()];
        want.extend(std::iter::repeat_n("appeared shadowed".to_string(), n));
        assert_eq!(g, want, "{got:#?}");
        assert_eq!(got[0].1["ok"], false);
    };

    let first = w.after(1 + n, settle, || fw.block());
    blocked(&first);
    assert_timely("block", &first);

    let got = w.after(1 + n, settle, || fw.unblock());
    let g: Vec<String> = got.iter().map(|(_, v)| gist(v)).collect();
    let mut want = vec!["flow-status flow to-vcenter blocked -> allowed".to_string()];
    want.extend(std::iter::repeat_n("disappeared shadowed".to_string(), n));
    assert_eq!(g, want, "{got:#?}");
    assert_eq!(got[0].1["ok"], true);
    assert_timely("unblock", &got);
    // The flow's finding before is the one it had when it was blocked.
    assert_eq!(
        got[0].1["old_fingerprint"].as_str(),
        Some(fp(&first[0].1).as_str())
    );

    let added = w.after(1, settle, || fw.add_excess());
    let g: Vec<String> = added.iter().map(|(_, v)| gist(v)).collect();
    assert_eq!(g, vec![format!("appeared excess {EXCESS}")], "{added:#?}");
    assert_timely("add excess", &added);

    let removed = w.after(1, settle, || fw.remove_excess());
    let g: Vec<String> = removed.iter().map(|(_, v)| gist(v)).collect();
    assert_eq!(
        g,
        vec![format!("disappeared excess {EXCESS}")],
        "{removed:#?}"
    );
    assert_eq!(
        fp(&added[0].1),
        fp(&removed[0].1),
        "same region, same fingerprint"
    );
    assert_timely("remove excess", &removed);

    let got = w.after(0, Duration::from_secs(2), || fw.resync());
    assert!(
        got.is_empty(),
        "a resync that changes nothing reported {got:#?}"
    );

    // Blocked again after the rewrite: the same findings, the same
    // fingerprints, although the shadowed rules have new handles / lines.
    let again = w.after(1 + n, settle, || fw.block());
    blocked(&again);
    assert_timely("block again", &again);
    let prints = |v: &[(Duration, Value)]| {
        let mut p: Vec<String> = v.iter().map(|(_, x)| fp(x)).collect();
        p.sort();
        p
    };
    assert_eq!(prints(&first), prints(&again));
}

fn ringfence_in(ns: &Netns) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_ringfence")]);
    c
}

/// The nft fixture with the rules of chain `allow` reversed; for loading
/// into the kernel (`flush`), the table's old rules are flushed first, in
/// the same transaction.
fn nft_reversed(flush: bool) -> String {
    let text = fixture("ruleset.nft");
    let start = text.find("\tchain allow {\n").expect("chain allow") + "\tchain allow {\n".len();
    let end = start + text[start..].find("\t}\n").expect("end of chain");
    let mut rules: Vec<&str> = text[start..end].lines().collect();
    rules.reverse();
    format!(
        "{}{}{}\n{}",
        if flush { "flush table inet rfw\n" } else { "" },
        &text[..start],
        rules.join("\n"),
        &text[end..]
    )
}

struct Nft<'a>(&'a Netns);

impl Nft<'_> {
    fn nft(&self, args: &[&str]) -> String {
        self.0.ok("nft", args, b"")
    }
    /// Run nft with a command written as one space-separated line.
    fn nft_words(&self, line: &str) -> String {
        self.nft(&line.split(' ').collect::<Vec<_>>())
    }
    /// Delete the first rule of chain allow whose text contains `needle`.
    fn delete_rule(&self, needle: &str) {
        let h = self.handle(needle);
        self.nft(&["delete", "rule", "inet", "rfw", "allow", "handle", &h]);
    }
    /// The handle of the first rule of chain allow whose text contains `needle`.
    fn handle(&self, needle: &str) -> String {
        let list = self.nft(&["-a", "list", "chain", "inet", "rfw", "allow"]);
        let line = list
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no rule with {needle:?}:\n{list}"));
        line.rsplit("# handle ").next().unwrap().trim().to_string()
    }
}

impl Firewall for Nft<'_> {
    fn block(&self) {
        self.nft_words("insert rule inet rfw allow ip daddr 198.18.1.30 tcp dport 443 drop");
    }
    fn unblock(&self) {
        self.delete_rule("drop");
    }
    fn add_excess(&self) {
        self.nft_words("add rule inet rfw allow ip daddr 198.18.1.20 tcp dport 8080 accept");
    }
    fn remove_excess(&self) {
        self.delete_rule("dport 8080");
    }
    fn resync(&self) {
        self.0.load_nft(&nft_reversed(true));
    }
    fn shadowed_by_block(&self) -> usize {
        1
    }
}

#[test]
fn nft_source_reports_each_change_once_in_order_within_a_second() {
    if !ringfence_testkit::require!(Need::Root, Need::Tool("nft"), Need::Tool("ip")) {
        return;
    }
    let ns = Netns::new("wnft");
    ns.load_nft(&fixture("ruleset.nft"));
    let mut cmd = ringfence_in(&ns);
    cmd.arg("watch")
        .arg("--site")
        .arg(data("site.yaml"))
        .args(["--source", "nft", "--format", "json"]);
    let w = Watcher::start(cmd);
    scenario(&w, &Nft(&ns));
    // The nft monitor child goes with watch.
    let pid = w.proc.child.id();
    let monitor = children_of(pid);
    assert!(!monitor.is_empty(), "watch runs nft monitor as its child");
    let st = w.stop();
    assert_eq!(st.code(), Some(0), "a clean stop on SIGTERM");
    for m in monitor {
        assert!(
            !Path::new(&format!("/proc/{m}")).exists(),
            "nft monitor {m} is still running"
        );
    }
}

/// Pids whose parent is `pid` (from /proc/*/stat).
fn children_of(pid: u32) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .unwrap_or("");
        if ppid == pid.to_string() {
            out.push(name);
        }
    }
    out
}

struct Ipt<'a>(&'a Netns);

const IPT_BLOCK: &[&str] = &[
    "-d",
    "198.18.1.30/32",
    "-p",
    "tcp",
    "-m",
    "tcp",
    "--dport",
    "443",
    "-j",
    "DROP",
];
const IPT_EXCESS: &[&str] = &[
    "-d",
    "198.18.1.20/32",
    "-p",
    "tcp",
    "-m",
    "tcp",
    "--dport",
    "8080",
    "-j",
    "ACCEPT",
];

impl Ipt<'_> {
    fn ipt(&self, head: &[&str], rule: &[&str]) {
        let mut a = head.to_vec();
        a.extend_from_slice(rule);
        self.0.ok("iptables", &a, b"");
    }
}

/// The iptables fixture with the ALLOW chain's rules reversed.
fn ipt_reversed() -> String {
    let text = fixture("ruleset.rules");
    let mut allow: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("-A ALLOW "))
        .collect();
    allow.reverse();
    let mut out = Vec::new();
    let mut done = false;
    for l in text.lines() {
        if l.starts_with("-A ALLOW ") {
            if !done {
                out.extend(allow.iter().copied());
                done = true;
            }
        } else {
            out.push(l);
        }
    }
    out.join("\n") + "\n"
}

impl Firewall for Ipt<'_> {
    fn block(&self) {
        self.ipt(&["-I", "ALLOW", "1"], IPT_BLOCK);
    }
    fn unblock(&self) {
        self.ipt(&["-D", "ALLOW"], IPT_BLOCK);
    }
    fn add_excess(&self) {
        self.ipt(&["-A", "ALLOW"], IPT_EXCESS);
    }
    fn remove_excess(&self) {
        self.ipt(&["-D", "ALLOW"], IPT_EXCESS);
    }
    fn resync(&self) {
        // iptables-restore replaces the whole filter table in one go.
        self.0.load_iptables(&ipt_reversed());
    }
    fn shadowed_by_block(&self) -> usize {
        3
    }
}

#[test]
fn iptables_source_polls_and_reports_each_change_once_in_order_within_a_second() {
    if !ringfence_testkit::require!(
        Need::Root,
        Need::Tool("iptables"),
        Need::Tool("iptables-save"),
        Need::Tool("iptables-restore"),
        Need::Tool("ip")
    ) {
        return;
    }
    let ns = Netns::new("wipt");
    ns.load_iptables(&fixture("ruleset.rules"));
    let mut cmd = ringfence_in(&ns);
    cmd.arg("watch").arg("--site").arg(data("site.yaml")).args([
        "--source",
        "iptables",
        "--interval",
        "200ms",
        "--format",
        "json",
    ]);
    let w = Watcher::start(cmd);
    scenario(&w, &Ipt(&ns));
    assert_eq!(w.stop().code(), Some(0));
}

/// A ruleset file rewritten in place (write to a temporary name, rename).
struct File {
    path: PathBuf,
}

impl File {
    fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap()
    }
    fn write(&self, text: &str) {
        replace_file(&self.path, text);
    }
}

const FILE_BLOCK: &str = "\t\tip daddr 198.18.1.30 tcp dport 443 drop\n";
const FILE_EXCESS: &str = "\t\tip daddr 198.18.1.20 tcp dport 8080 accept\n";

impl Firewall for File {
    fn block(&self) {
        let t = self.text();
        self.write(&t.replacen(
            "\tchain allow {\n",
            &format!("\tchain allow {{\n{FILE_BLOCK}"),
            1,
        ));
    }
    fn unblock(&self) {
        self.write(&self.text().replacen(FILE_BLOCK, "", 1));
    }
    fn add_excess(&self) {
        let t = self.text();
        let end = t.find("\tchain allow {\n").unwrap();
        let close = end + t[end..].find("\t}\n").unwrap();
        self.write(&format!("{}{FILE_EXCESS}{}", &t[..close], &t[close..]));
    }
    fn remove_excess(&self) {
        self.write(&self.text().replacen(FILE_EXCESS, "", 1));
    }
    fn resync(&self) {
        // Reversed rules and two more comment lines: every line number moves.
        self.write(&format!("# resync\n# by the test\n{}", nft_reversed(false)));
    }
    fn shadowed_by_block(&self) -> usize {
        1
    }
}

#[test]
fn file_source_reports_each_change_once_in_order_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ruleset.nft");
    std::fs::write(&path, fixture("ruleset.nft")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringfence"));
    cmd.arg("watch")
        .arg("--site")
        .arg(data("site.yaml"))
        .arg("--source")
        .arg(format!("file:{}", path.display()))
        .args(["--interval", "100ms", "--format", "json"]);
    let w = Watcher::start(cmd);
    scenario(&w, &File { path });
    assert_eq!(w.stop().code(), Some(0));
}

#[test]
fn exec_gets_each_change_as_a_json_line_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ruleset.nft");
    let sink = dir.path().join("changes.jsonl");
    std::fs::write(&path, fixture("ruleset.nft")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringfence"));
    cmd.arg("watch")
        .arg("--site")
        .arg(data("site.yaml"))
        .arg("--source")
        .arg(format!("file:{}", path.display()))
        .args(["--interval", "100ms", "--format", "json", "--exec"])
        .arg(format!(
            "dd of={} oflag=append conv=notrunc status=none",
            sink.display()
        ));
    let w = Watcher::start(cmd);
    w.initial();
    let fw = File { path };
    let printed = w.after(1, Duration::from_millis(500), || fw.add_excess());
    assert_eq!(printed.len(), 1);
    // The command runs on its own; give it a moment.
    let start = Instant::now();
    let mut got = String::new();
    while start.elapsed() < Duration::from_secs(5) {
        got = std::fs::read_to_string(&sink).unwrap_or_default();
        if got.ends_with('\n') {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines: Vec<Value> = got.lines().map(Watcher::parse).collect();
    assert_eq!(
        lines,
        vec![printed[0].1.clone()],
        "--exec got the printed change"
    );
    assert_eq!(w.stop().code(), Some(0));
}

#[test]
fn once_exits_with_verify_exit_code() {
    let run = |file: &str| {
        Command::new(env!("CARGO_BIN_EXE_ringfence"))
            .arg("watch")
            .arg("--site")
            .arg(data("site.yaml"))
            .arg("--source")
            .arg(format!("file:{}", data(file).display()))
            .arg("--once")
            .output()
            .unwrap()
    };
    let clean = run("ruleset.nft");
    assert_eq!(clean.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&clean.stdout).contains(": OK"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("open.nft");
    std::fs::write(
        &bad,
        fixture("ruleset.nft").replace("policy drop;", "policy accept;"),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .arg("watch")
        .arg("--site")
        .arg(data("site.yaml"))
        .arg("--source")
        .arg(format!("file:{}", bad.display()))
        .args(["--once", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "findings: exit 1");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["summary"]["ok"], false);
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "excess"));
}

#[test]
fn bad_input_exits_2_with_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.rules");
    std::fs::write(
        &bad,
        "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -p tcp --dport nope -j ACCEPT\nCOMMIT\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .arg("watch")
        .arg("--site")
        .arg(data("site.yaml"))
        .arg("--source")
        .arg(format!("file:{}", bad.display()))
        .arg("--once")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("broken.rules:3"), "{err}");

    // No site: the usage error of every site command.
    let o = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .arg("watch")
        .arg("--source")
        .arg(format!("file:{}", data("ruleset.nft").display()))
        .arg("--once")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--site"));

    for (args, needle) in [
        (vec!["--source", "pf"], "nft, iptables or file:PATH"),
        (
            vec!["--source", "nft", "--interval", "1ms"],
            "at least 10ms",
        ),
        (vec!["--source", "nft", "--exec", "a 'b"], "unterminated"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_ringfence"))
            .arg("watch")
            .arg("--site")
            .arg(data("site.yaml"))
            .args(&args)
            .arg("--once")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(needle),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn excess_beyond_the_listed_regions_is_reported_as_a_count() {
    // 250 single-port accepts to Harbor from anywhere: 250 excess regions,
    // more than verify lists (200).
    let rules = |n: u16| -> String {
        let extra: String = (0..n)
            .map(|i| {
                format!(
                    "\t\tip daddr 198.18.1.20 tcp dport {} accept\n",
                    20000 + 2 * i
                )
            })
            .collect();
        fixture("ruleset.nft").replacen(
            "\tchain allow {\n",
            &format!("\tchain allow {{\n{extra}"),
            1,
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let fw = File {
        path: dir.path().join("ruleset.nft"),
    };
    std::fs::write(&fw.path, rules(250)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringfence"));
    cmd.arg("watch")
        .arg("--site")
        .arg(data("site.yaml"))
        .arg("--source")
        .arg(format!("file:{}", fw.path.display()))
        .args(["--interval", "100ms", "--format", "json"]);
    let w = Watcher::start(cmd);
    let init = w.initial();
    assert_eq!(init["summary"]["excess"], 250, "{}", init["summary"]);
    let got = w.after(1, Duration::from_millis(1500), || fw.write(&rules(251)));
    let counts: Vec<&Value> = got
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v["change"] == "excess-count")
        .collect();
    assert_eq!(counts.len(), 1, "{got:#?}");
    // The old list was cut: the new region may have been beyond it, so it
    // is not claimed to have appeared, and nothing is said to disappear.
    assert_eq!(got.len(), 1, "only the count: {got:#?}");
    assert_eq!(counts[0]["old"], 250);
    assert_eq!(counts[0]["new"], 251);
    assert_eq!(counts[0]["listed"], 200);
    assert_eq!(counts[0]["ok"], false);
    assert_timely("251st region", &got);
    assert_eq!(w.stop().code(), Some(0));
}

/// The fixture with an input chain that drops HTTPS: on a host whose own
/// address is Harbor's, Harbor's flow ends there.
fn with_input_https_drop() -> String {
    let text = fixture("ruleset.nft");
    let end = text.trim_end().rfind('}').expect("closing brace");
    format!(
        "{}\tchain input {{\n\t\ttype filter hook input priority 0; policy accept;\n\t\ttcp dport 443 drop\n\t}}\n}}\n",
        &text[..end]
    )
}

#[test]
fn local_routes_to_the_host_through_input_at_start_and_after_each_change() {
    let dir = tempfile::tempdir().unwrap();
    let fw = File {
        path: dir.path().join("ruleset.nft"),
    };
    std::fs::write(&fw.path, with_input_https_drop()).unwrap();
    let once = |local: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_ringfence"))
            .arg("watch")
            .arg("--site")
            .arg(data("site.yaml"))
            .arg("--source")
            .arg(format!("file:{}", fw.path.display()))
            .args(["--once", "--format", "json"])
            .args(local)
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        (o.status.code(), v)
    };
    let harbor = |v: &Value| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == "flow" && f["subject"] == "to-harbor")
            .map(|f| f["status"].as_str().unwrap().to_string())
    };
    // Without the host's addresses the input chain is not on Harbor's path.
    let (code, v) = once(&[]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(harbor(&v), None, "no finding about Harbor: {v}");
    // With them, Harbor's packets go to input and are dropped there; the
    // summary is verify's with the same --local.
    let (code, v) = once(&["--local", "198.18.1.20"]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(harbor(&v).as_deref(), Some("blocked"), "{v}");
    let verify = Command::new(env!("CARGO_BIN_EXE_ringfence"))
        .arg("verify")
        .arg("--site")
        .arg(data("site.yaml"))
        .arg("--ruleset")
        .arg(&fw.path)
        .args(["--format", "json", "--local", "198.18.1.20"])
        .output()
        .unwrap();
    let verify: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(v["summary"], verify["summary"]);
    // Following changes: removing the drop unblocks Harbor, putting it back
    // blocks it again, each reported once.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringfence"));
    cmd.arg("watch")
        .arg("--site")
        .arg(data("site.yaml"))
        .arg("--source")
        .arg(format!("file:{}", fw.path.display()))
        .args([
            "--interval",
            "100ms",
            "--format",
            "json",
            "--local",
            "198.18.1.20",
        ]);
    let w = Watcher::start(cmd);
    let init = w.initial();
    assert_eq!(init["summary"]["blocked"], 1, "{init}");
    let got = w.after(1, Duration::from_millis(700), || {
        fw.write(&fw.text().replace("\t\ttcp dport 443 drop\n", ""))
    });
    let gists: Vec<String> = got.iter().map(|(_, v)| gist(v)).collect();
    assert!(
        gists.contains(&"flow-status flow to-harbor blocked -> allowed".to_string()),
        "{gists:?}"
    );
    let got = w.after(1, Duration::from_millis(700), || {
        fw.write(&with_input_https_drop())
    });
    let gists: Vec<String> = got.iter().map(|(_, v)| gist(v)).collect();
    assert!(
        gists.contains(&"flow-status flow to-harbor allowed -> blocked".to_string()),
        "{gists:?}"
    );
    assert_eq!(w.stop().code(), Some(0));
}
