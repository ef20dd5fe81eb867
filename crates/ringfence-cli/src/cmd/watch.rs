//! `ringfence watch`: verify a live ruleset, then follow its changes and
//! print only what changed (a flow's status, an excess region appearing or
//! disappearing, a rule becoming shadowed or redundant, a note), each with
//! its stable fingerprint and the time.
//!
//! Every re-read is compared with the last one rule by rule and only what
//! the changed rules touch is judged again (`ringfence_analysis::incremental`;
//! a change it cannot follow is a full verify), so the time to a verdict is
//! mostly the re-read and parse of the source (BENCHMARKS.md, "watch").
//!
//! Sources: `nft` runs `nft -j list ruleset` and follows `nft monitor` (a
//! child process whose output lines trigger a debounced re-read);
//! `iptables` polls `iptables-save` (and `ip6tables-save` when present) at
//! `--interval`, re-verifying only when the output (comments and counters
//! left out) hashes differently; `file:PATH` polls the file's modification
//! time and size, then its content hash. Those tools run only because the
//! user chose the source; `--exec CMD` is the only other command run.
//! `--webhook URL` POSTs each change line from a worker thread (timeout,
//! bounded retries, failures on stderr).
//!
//! `--record DIR` appends every change, with the rules that made it and the
//! findings it changed, to a history log (`ringfence_report::history::log`)
//! that `ringfence report --history DIR` turns into a timeline.

use crate::cmd::flows::SiteArgs;
use crate::cmd::trace::{FormatArg, HookArg};
use crate::exit::{self, CliError};
use clap::{Args as ClapArgs, ValueEnum};
use ringfence_analysis::fingerprint::{Finding, FindingKind, RuleTexts};
use ringfence_analysis::verify::{Status, Summary, MAX_REGIONS};
use ringfence_diag::InputErrors;
use ringfence_model::{Hook, RuleRef, Ruleset};
use ringfence_parse::Families;
use ringfence_report::history::log as history;
use ringfence_site::ResolvedSite;
use serde::Serialize;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

/// Where the ruleset comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `nft -j list ruleset`, followed with `nft monitor`.
    Nft,
    /// `iptables-save` and `ip6tables-save`, polled.
    Iptables,
    /// A ruleset file, polled.
    File(PathBuf),
}

fn parse_source(s: &str) -> Result<Source, String> {
    match s {
        "nft" => Ok(Source::Nft),
        "iptables" => Ok(Source::Iptables),
        _ => match s.strip_prefix("file:") {
            Some("") => Err("file: needs a path, e.g. file:/etc/nftables.conf".into()),
            Some(p) => Ok(Source::File(PathBuf::from(p))),
            None => Err(format!(
                "unknown source {s:?}: expected nft, iptables or file:PATH"
            )),
        },
    }
}

/// `250ms`, `2s`, `1m`, `1h`; a bare number is seconds. At least 10ms.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid duration {s:?}: expected a whole number and a unit, e.g. 500ms, 2s, 1m")
    })?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "invalid duration unit {unit:?} in {s:?}: use ms, s, m or h"
            ))
        }
    };
    if d < Duration::from_millis(10) {
        return Err(format!("duration {s:?} is too short: at least 10ms"));
    }
    Ok(d)
}

/// A `--webhook` URL: http or https, with a host.
pub(crate) fn parse_webhook(s: &str) -> Result<String, String> {
    if !s.contains("://") {
        return Err(format!(
            "webhook URL {s:?} must start with http:// or https://"
        ));
    }
    let uri: ureq::http::Uri = s.parse().map_err(|e| {
        format!("invalid URL {s:?}: {e}; expected e.g. https://hooks.example.com/ringfence")
    })?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(format!(
                "webhook URL {s:?} must start with http:// or https://"
            ))
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("webhook URL {s:?} has no host"));
    }
    Ok(s.to_string())
}

/// Output formats of `watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WatchFormat {
    /// One line per change, for people.
    Text,
    /// JSON lines: the initial state, then one object per change (docs/watch.md).
    Json,
}

/// Arguments of `ringfence watch`.
#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Each change is verified incrementally: only what the changed rules touch is judged again. \
Reading a live ruleset runs `nft -j list ruleset` and `nft monitor` (--source nft) or \
`iptables-save`/`ip6tables-save` (--source iptables), only because that source was chosen. \
Nothing else is run, sent or written unless --exec, --webhook or --record asks for it. \
See docs/watch.md."
)]
pub struct Args {
    #[command(flatten)]
    pub site: SiteArgs,
    /// Where the ruleset comes from: `nft` (runs `nft -j list ruleset`,
    /// follows `nft monitor`), `iptables` (runs `iptables-save` and
    /// `ip6tables-save` every --interval) or `file:PATH` (polls the file).
    /// Repeat to read several as one ruleset (e.g. two files).
    #[arg(long = "source", value_name = "SOURCE", required = true, value_parser = parse_source)]
    pub sources: Vec<Source>,
    /// How often polled sources (iptables, files) are checked: 500ms, 2s, 1m.
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Verify once, print the state and exit with verify's exit code (0
    /// clean, 1 findings, 2 bad input): for cron.
    #[arg(long)]
    pub once: bool,
    /// Run this command for every change, with the change as one JSON
    /// line on its standard input. Split into arguments at spaces (quotes
    /// group); no shell is involved. Nothing is run without this flag.
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
    /// POST every change, the same JSON line --exec gets, to this http:// or
    /// https:// URL (Content-Type: application/json). Failures (no answer
    /// within --webhook-timeout, a 5xx or 429 answer) are retried twice
    /// more, then reported on stderr; the watch goes on. HTTPS_PROXY,
    /// HTTP_PROXY and NO_PROXY are honoured.
    #[arg(long, value_name = "URL", value_parser = parse_webhook)]
    pub webhook: Option<String>,
    /// How long one webhook attempt may take, connecting included.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = parse_duration)]
    pub webhook_timeout: Duration,
    /// Keep a history in this directory (created when missing): every
    /// ruleset change, the rules it added and removed, and the findings it
    /// made appear or disappear, appended as JSON lines and synced to disk.
    /// `ringfence report --history DIR` shows it as a timeline.
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: WatchFormat,
    /// Format of file sources (nft and iptables sources are known).
    #[arg(long, value_enum, default_value = "auto")]
    pub ruleset_format: FormatArg,
    /// The path the site's flows take, named by its filter hook (as in verify).
    #[arg(long, value_enum, default_value = "forward")]
    pub hook: HookArg,
    /// The host's own addresses (comma-separated, repeatable), as in
    /// verify: after prerouting, packets to them go to input and the others
    /// through forward and postrouting; address-type `LOCAL` tests read
    /// them, and ADDR%IFACE (e.g. 198.18.0.5%eth0) names the interface
    /// holding the address for tests limited to one interface. The site's
    /// `host_zone:` adds its addresses. With either, every change is
    /// verified in full (routing by the host's addresses is not followed
    /// incrementally), so a change takes about one full verify.
    #[arg(long, value_name = "ADDR[%IFACE][,...]", value_delimiter = ',')]
    pub local: Vec<super::verify::HostAddr>,
    /// Also judge rules dead in context, as `verify --dead-in-context`
    /// does, kept up to date on every change. Off by default: at 100k
    /// rules a change then takes tens of milliseconds (median) instead of
    /// under one (BENCHMARKS.md).
    #[arg(long)]
    pub dead_in_context: bool,
}

/// Split `--exec` into argv: spaces separate, single quotes are literal,
/// double quotes group and allow `\"` and `\\`.
pub(crate) fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut started = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err(format!("--exec {s:?}: unterminated ' quote")),
                    }
                }
            }
            '"' => {
                started = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => return Err(format!("--exec {s:?}: unterminated \" quote")),
                        },
                        Some(x) => cur.push(x),
                        None => return Err(format!("--exec {s:?}: unterminated \" quote")),
                    }
                }
            }
            c if c.is_whitespace() => {
                if started {
                    out.push(std::mem::take(&mut cur));
                    started = false;
                }
            }
            c => {
                started = true;
                cur.push(c);
            }
        }
    }
    if started {
        out.push(cur);
    }
    if out.is_empty() {
        return Err("--exec needs a command".into());
    }
    Ok(out)
}

/// Run a program and return its standard output; a clear error when it is
/// missing or fails.
fn capture(argv: &[&str]) -> Result<String, String> {
    let o = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", argv.join(" ")))?;
    if !o.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            argv.join(" "),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    String::from_utf8(o.stdout).map_err(|_| format!("{}: output is not UTF-8", argv.join(" ")))
}

fn hash_of(parts: &[&str]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

/// iptables-save output without what changes on every call or with
/// traffic: comment lines (timestamps) and `[packets:bytes]` counters.
fn iptables_identity(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for l in text.lines() {
        if l.starts_with('#') {
            continue;
        }
        let l = match (l.starts_with(':'), l.rfind(" [")) {
            (true, Some(i)) if l.ends_with(']') => &l[..i],
            _ => l,
        };
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// One source's last reading.
struct Reader {
    source: Source,
    /// The texts and their names, as last read.
    texts: Vec<(String, String)>,
    /// Hash of what identifies the ruleset (for change detection).
    hash: u64,
    /// For files: modification time and size when last read.
    stamp: Option<(SystemTime, u64)>,
}

impl Reader {
    fn new(source: Source) -> Self {
        Reader {
            source,
            texts: Vec::new(),
            hash: 0,
            stamp: None,
        }
    }

    /// Read the source; `Ok(true)` when it changed since the last reading.
    /// `force` re-reads a file even when its time and size are unchanged
    /// (first reading) and re-reads nft (an event came).
    fn refresh(&mut self, force: bool) -> Result<bool, String> {
        let (texts, hash) = match &self.source {
            Source::Nft => {
                if !force {
                    return Ok(false);
                }
                let t = capture(&["nft", "-j", "list", "ruleset"])?;
                let h = hash_of(&[&t]);
                (vec![(t, "nft -j list ruleset".to_string())], h)
            }
            Source::Iptables => {
                let v4 = capture(&["iptables-save"])?;
                let mut texts = vec![(v4, "iptables-save".to_string())];
                // ip6tables-save is optional: without it IPv6 is reported as
                // not covered when the site needs it.
                if let Ok(v6) = capture(&["ip6tables-save"]) {
                    if !v6.trim().is_empty() {
                        texts.push((v6, "ip6tables-save".to_string()));
                    }
                }
                let ids: Vec<String> = texts.iter().map(|(t, _)| iptables_identity(t)).collect();
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                (texts, hash_of(&refs))
            }
            Source::File(p) => {
                let meta = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
                let stamp = (
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                );
                if !force && self.stamp == Some(stamp) {
                    return Ok(false);
                }
                self.stamp = Some(stamp);
                let name = p.display().to_string();
                let t =
                    ringfence_diag::read_input(p, &name, "ruleset").map_err(|e| e.to_string())?;
                let h = hash_of(&[&t]);
                (vec![(t, name)], h)
            }
        };
        let changed = hash != self.hash || self.texts.is_empty();
        self.texts = texts;
        self.hash = hash;
        Ok(changed)
    }
}

/// The families a site needs covered (as `verify` reads its rulesets).
fn families(site: &ringfence_site::Site) -> Families {
    let nets = || site.zones.values().flatten();
    Families {
        v4: nets().any(|n| n.addr().is_ipv4()),
        v6: nets().any(|n| n.addr().is_ipv6()),
    }
}

/// What a watcher knows after one verify.
struct State {
    /// Flow findings by (kind, flow id): flow and replies status.
    flows: BTreeMap<(&'static str, String), Finding>,
    /// Every other finding by fingerprint.
    others: BTreeMap<String, Finding>,
    summary: Summary,
}

/// FNV-1a, 128 bits, over length-prefixed fields: the history's ruleset
/// hash (stable across Rust versions, like the fingerprints).
struct Fnv(u128);

impl Fnv {
    fn new() -> Self {
        Fnv(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d)
    }
    fn field(&mut self, s: &str) {
        let len = (s.len() as u64).to_le_bytes();
        for b in len.iter().chain(s.as_bytes()) {
            self.0 ^= u128::from(*b);
            self.0 = self
                .0
                .wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
        }
    }
    fn hex(&self) -> String {
        format!("{:032x}", self.0)
    }
}

/// The normalized rules of one reading, for `--record`: the ruleset hash
/// (chains by name, each with its hook, priority, policy and rules in
/// order; no line numbers, handles, comments or counters) and every rule
/// by (chain, normalized text), for the rules a change added and removed.
struct RuleIndex {
    hash: String,
    /// (chain, normalized text) -> where each copy is, in order.
    rules: BTreeMap<(String, String), Vec<String>>,
    /// The readings the rules came from (name -> text), to quote a rule's
    /// source line.
    texts: Vec<(String, String)>,
}

impl RuleIndex {
    fn new(rs: &Ruleset, texts: Vec<(String, String)>) -> Self {
        let normal = RuleTexts::new(rs);
        let mut rules: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        let mut chains: Vec<(String, Vec<String>)> = Vec::new();
        for chain in &rs.chains {
            let mut list = Vec::new();
            if let Some(b) = &chain.base {
                let text = format!(
                    "base chain: hook {} priority {} policy {:?}",
                    b.hook, b.priority, b.policy
                )
                .to_lowercase();
                rules
                    .entry((chain.name.clone(), text.clone()))
                    .or_default()
                    .push(format!("policy of {}", chain.name));
                list.push(text);
            }
            let mut last: Option<&RuleRef> = None;
            for r in &chain.rules {
                // The model rules of one disjunction share their source rule.
                if last == Some(&r.origin) {
                    continue;
                }
                last = Some(&r.origin);
                let at = r.origin.to_string();
                let text = normal.text(&at).unwrap_or("?").to_string();
                rules
                    .entry((chain.name.clone(), text.clone()))
                    .or_default()
                    .push(at);
                list.push(text);
            }
            chains.push((chain.name.clone(), list));
        }
        chains.sort();
        let mut h = Fnv::new();
        for (name, list) in &chains {
            h.field(name);
            h.field(&list.len().to_string());
            for t in list {
                h.field(t);
            }
        }
        RuleIndex {
            hash: h.hex(),
            rules,
            texts,
        }
    }

    /// The source line a `file:line` reference names, when it is one.
    fn source_line(&self, at: &str) -> Option<String> {
        let (file, line) = at.rsplit_once(':')?;
        let n: usize = line.parse().ok()?;
        let (_, text) = self.texts.iter().find(|(name, _)| name == file)?;
        text.lines()
            .nth(n.checked_sub(1)?)
            .map(|l| l.trim().to_string())
    }

    /// The rules in `self` beyond those in `other` (copies counted), as
    /// (every one listed up to the limit, total).
    fn beyond(&self, other: &RuleIndex) -> (Vec<history::RuleChange>, usize) {
        let mut out = Vec::new();
        let mut total = 0;
        for ((chain, text), refs) in &self.rules {
            let have = other
                .rules
                .get(&(chain.clone(), text.clone()))
                .map_or(0, Vec::len);
            for at in refs.iter().skip(have) {
                total += 1;
                if out.len() < history::MAX_LISTED_RULES {
                    let quoted = self.source_line(at);
                    out.push(history::RuleChange {
                        chain: chain.clone(),
                        rule: at.clone(),
                        normalized: quoted.is_none().then(|| text.clone()),
                        text: quoted,
                    });
                }
            }
        }
        (out, total)
    }
}

fn log_finding(f: &Finding) -> history::LogFinding {
    history::LogFinding {
        kind: f.kind.name().to_string(),
        fingerprint: f.fingerprint.hex(),
        subject: f.subject.clone(),
        status: f.status.map(|s| status_str(Some(s)).to_string()),
        rules: f.rules.clone(),
        chain: f.chain.clone(),
    }
}

impl State {
    fn new(findings: Vec<Finding>, summary: Summary) -> Self {
        let mut flows = BTreeMap::new();
        let mut others = BTreeMap::new();
        for f in findings {
            if matches!(f.kind, FindingKind::Flow | FindingKind::Replies) {
                flows.insert((f.kind.name(), f.subject.clone()), f);
            } else {
                others.insert(f.fingerprint.hex(), f);
            }
        }
        State {
            flows,
            others,
            summary,
        }
    }
}

/// One reported change (a JSON line).
#[derive(Debug, Serialize)]
struct Change<'a> {
    /// UTC time of the verdict, RFC 3339 with milliseconds.
    time: &'a str,
    /// `flow-status`, `appeared` or `disappeared`.
    change: &'static str,
    /// The finding now (for `disappeared`: the finding that went away).
    #[serde(flatten)]
    finding: &'a Finding,
    /// For `flow-status`: the status before.
    #[serde(skip_serializing_if = "Option::is_none")]
    old_status: Option<Status>,
    /// For `flow-status`: the fingerprint of the finding before.
    #[serde(skip_serializing_if = "Option::is_none")]
    old_fingerprint: Option<String>,
    /// Whether the ruleset verifies clean after the change.
    ok: bool,
}

/// The excess regions changed (in number, or which are listed) while a
/// list is cut at `verify`'s limit, so region lines cannot show every change.
#[derive(Debug, Serialize)]
struct CountChange<'a> {
    time: &'a str,
    /// `excess-count`.
    change: &'static str,
    /// Excess regions before (certain and possible).
    old: usize,
    /// Excess regions now.
    new: usize,
    /// How many of them the lists show (at most [`MAX_REGIONS`]).
    listed: usize,
    ok: bool,
}

/// The initial state (first JSON line).
#[derive(Debug, Serialize)]
struct Initial<'a> {
    time: &'a str,
    change: &'static str,
    sources: Vec<String>,
    summary: &'a Summary,
    /// Problem findings only (allowed flows are left out).
    findings: Vec<&'a Finding>,
}

/// An error while following (the previous state is kept).
#[derive(Debug, Serialize)]
struct ErrorLine<'a> {
    time: &'a str,
    change: &'static str,
    message: &'a str,
}

fn status_str(s: Option<Status>) -> &'static str {
    match s {
        Some(Status::Allowed) => "allowed",
        Some(Status::Partial) => "partial",
        Some(Status::Blocked) => "blocked",
        Some(Status::Redirected) => "redirected",
        Some(Status::Unknown) | None => "unknown",
    }
}

/// UTC now as `2026-12-06T07:10:00.123Z`.
fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Where changes go: stdout (text or JSON) and, with --exec, a command,
/// with --webhook, a URL.
struct Output {
    format: WatchFormat,
    exec: Option<Vec<String>>,
    webhook: Option<Webhook>,
}

/// Attempts per change (the first and two retries).
const WEBHOOK_ATTEMPTS: u32 = 3;
/// Changes waiting for delivery; beyond this a change is dropped (and said so).
const WEBHOOK_QUEUE: usize = 1000;
/// At exit, pending changes get this long to be delivered.
const WEBHOOK_DRAIN: Duration = Duration::from_secs(3);

/// `--webhook URL`: one worker thread POSTs the change lines in order, so
/// a slow or failing endpoint never holds up watching.
struct Webhook {
    /// `scheme://host:port` only: the path or query may hold a secret.
    shown: String,
    tx: Option<std::sync::mpsc::SyncSender<String>>,
    worker: Option<std::thread::JoinHandle<()>>,
    pending: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Webhook {
    fn start(url: &str, timeout: Duration) -> Webhook {
        let shown = match url.parse::<ureq::http::Uri>() {
            Ok(u) => format!(
                "{}://{}",
                u.scheme_str().unwrap_or("?"),
                u.authority().map_or("?", |a| a.as_str())
            ),
            Err(_) => "?".into(),
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("ringfence/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(WEBHOOK_QUEUE);
        let pending = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (url, who, left) = (url.to_string(), shown.clone(), pending.clone());
        let worker = std::thread::spawn(move || {
            for body in rx {
                if let Err(e) = deliver(&agent, &url, &body) {
                    eprintln!("ringfence watch: --webhook {who}: a change was not delivered: {e}");
                }
                left.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        Webhook {
            shown,
            tx: Some(tx),
            worker: Some(worker),
            pending,
        }
    }

    /// Queue one change line; a full queue drops it, on stderr.
    fn send(&self, json: &str) {
        let Some(tx) = &self.tx else { return };
        self.pending
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if tx.try_send(json.to_string()).is_err() {
            self.pending
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            eprintln!(
                "ringfence watch: --webhook {}: {WEBHOOK_QUEUE} changes are waiting for delivery; this one is dropped",
                self.shown
            );
        }
    }

    /// Let the worker deliver what is queued, for at most [`WEBHOOK_DRAIN`];
    /// say on stderr how many changes were left undelivered.
    fn finish(&mut self) {
        drop(self.tx.take());
        let start = Instant::now();
        while let Some(w) = &self.worker {
            if w.is_finished() {
                let _ = self.worker.take().map(std::thread::JoinHandle::join);
                return;
            }
            if start.elapsed() > WEBHOOK_DRAIN {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let left = self.pending.load(std::sync::atomic::Ordering::SeqCst);
        if left > 0 {
            eprintln!(
                "ringfence watch: --webhook {}: stopping with {left} change(s) not delivered",
                self.shown
            );
        }
    }
}

/// POST one change, retrying a failed connection, a timeout, 429 and 5xx
/// answers up to [`WEBHOOK_ATTEMPTS`] in all (0.25 s, then 1 s apart); any
/// other answer outside 2xx is final.
fn deliver(agent: &ureq::Agent, url: &str, body: &str) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        if attempt > 1 {
            std::thread::sleep(Duration::from_millis(if attempt == 2 { 250 } else { 1000 }));
        }
        match agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(body)
        {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let code = r.status().as_u16();
                last = format!("answered {}", r.status());
                if code != 429 && code < 500 {
                    return Err(format!("{last} (not retried)"));
                }
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("{last}, after {WEBHOOK_ATTEMPTS} attempts"))
}

impl Output {
    /// Write one line to stdout; Err when stdout is gone (stop watching).
    fn line(&self, s: &str) -> Result<(), CliError> {
        let mut out = std::io::stdout().lock();
        match writeln!(out, "{s}").and_then(|()| out.flush()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                Err(CliError::Io("standard output closed".into()))
            }
            Err(e) => Err(CliError::Io(format!("writing to stdout: {e}"))),
        }
    }

    fn change(&self, c: &Change<'_>) -> Result<(), CliError> {
        let json = serde_json::to_string(c).expect("change serializes");
        match self.format {
            WatchFormat::Json => self.line(&json)?,
            WatchFormat::Text => self.line(&text_change(c))?,
        }
        self.alert(&json);
        Ok(())
    }

    fn count(&self, c: &CountChange<'_>) -> Result<(), CliError> {
        let json = serde_json::to_string(c).expect("count serializes");
        match self.format {
            WatchFormat::Json => self.line(&json)?,
            WatchFormat::Text => self.line(&format!(
                "{} excess regions changed: {} -> {} (only {} listed: changes beyond the list are counted, not shown)",
                c.time, c.old, c.new, c.listed
            ))?,
        }
        self.alert(&json);
        Ok(())
    }

    /// Hand a change line to --exec and --webhook.
    fn alert(&self, json: &str) {
        if let Some(argv) = &self.exec {
            run_exec(argv, json);
        }
        if let Some(w) = &self.webhook {
            w.send(json);
        }
    }

    fn error(&self, time: &str, message: &str) -> Result<(), CliError> {
        match self.format {
            WatchFormat::Json => self.line(
                &serde_json::to_string(&ErrorLine {
                    time,
                    change: "error",
                    message,
                })
                .expect("error serializes"),
            ),
            WatchFormat::Text => self.line(&format!(
                "{time} error: {message} (keeping the previous state)"
            )),
        }
    }
}

/// Start `--exec` with `json` on its standard input; it runs on its own and
/// is reaped by a thread, so a slow command does not hold up watching.
fn run_exec(argv: &[String], json: &str) {
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .spawn();
    match child {
        Ok(mut c) => {
            let line = format!("{json}\n");
            std::thread::spawn(move || {
                if let Some(mut stdin) = c.stdin.take() {
                    let _ = stdin.write_all(line.as_bytes());
                }
                let _ = c.wait();
            });
        }
        Err(e) => eprintln!("ringfence watch: --exec {}: {e}", argv.join(" ")),
    }
}

fn text_finding(f: &Finding) -> String {
    let fp = &f.fingerprint.hex()[..12];
    match f.kind {
        FindingKind::Flow => format!(
            "flow {} new connections {} [{fp}]",
            f.subject,
            status_str(f.status)
        ),
        FindingKind::Replies => {
            format!("flow {} replies {} [{fp}]", f.subject, status_str(f.status))
        }
        FindingKind::Shadowed | FindingKind::Redundant => format!(
            "{} rule {} (chain {}) by {} [{fp}]",
            f.kind.name(),
            f.subject,
            f.chain.as_deref().unwrap_or("?"),
            f.rules.join(", ")
        ),
        FindingKind::Note => format!("note: {} [{fp}]", f.subject),
        _ => format!(
            "{} {} by {} [{fp}]",
            f.kind.name(),
            f.subject,
            f.rules.join(", ")
        ),
    }
}

fn text_change(c: &Change<'_>) -> String {
    match c.change {
        "flow-status" => format!(
            "{} {} -> {}: {}",
            c.time,
            status_str(c.old_status),
            status_str(c.finding.status),
            text_finding(c.finding)
        ),
        "appeared" => format!("{} + {}", c.time, text_finding(c.finding)),
        _ => format!("{} - {}", c.time, text_finding(c.finding)),
    }
}

/// What stops the watch loop or wakes it.
enum Event {
    /// nft monitor printed a line: the ruleset changed.
    Nft,
    /// nft monitor ended (it should not).
    MonitorEnded(String),
    /// Ctrl-C or SIGTERM.
    Stop,
}

/// Ctrl-C / SIGTERM become [`Event::Stop`].
fn stop_on_signal(tx: Sender<Event>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            std::future::poll_fn(|cx| {
                if int.poll_recv(cx).is_ready() || term.poll_recv(cx).is_ready() {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
        });
        let _ = tx.send(Event::Stop);
    });
}

/// `nft monitor` as a child; each line it prints is an [`Event::Nft`].
fn start_monitor(tx: Sender<Event>) -> Result<Child, CliError> {
    let mut child = Command::new("nft")
        .arg("monitor")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CliError::Io(format!("running nft monitor: {e}")))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if line.is_err() || tx.send(Event::Nft).is_err() {
                return;
            }
        }
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut err);
        let _ = tx.send(Event::MonitorEnded(err.trim().to_string()));
    });
    Ok(child)
}

/// After an nft event: wait until nft has been quiet for 30 ms (a
/// transaction prints a line per object), at most 300 ms. True when a stop
/// came in meanwhile.
fn debounce(rx: &Receiver<Event>) -> Result<bool, String> {
    let start = Instant::now();
    loop {
        let left = Duration::from_millis(300).saturating_sub(start.elapsed());
        if left.is_zero() {
            return Ok(false);
        }
        match rx.recv_timeout(left.min(Duration::from_millis(30))) {
            Ok(Event::Nft) => continue,
            Ok(Event::Stop) => return Ok(true),
            Ok(Event::MonitorEnded(e)) => return Err(e),
            Err(_) => return Ok(false),
        }
    }
}

struct Watch {
    readers: Vec<Reader>,
    site: ResolvedSite,
    need: Families,
    format: FormatArg,
    hook: Hook,
    /// The incremental verifier, built on the first reading (issue 19).
    incr: Option<ringfence_analysis::incremental::Incremental>,
    /// The host's own addresses (`--local`, the site's `host_zone:`).
    locals: Option<ringfence_model::LocalAddrs>,
    /// The optional analyses (`--dead-in-context`).
    checks: ringfence_analysis::verify::Checks,
}

impl Watch {
    /// Parse the last readings of every source as one ruleset.
    fn ruleset(&self) -> Result<Ruleset, InputErrors> {
        let inputs: Vec<(&str, &str)> = self
            .readers
            .iter()
            .flat_map(|r| r.texts.iter().map(|(t, n)| (t.as_str(), n.as_str())))
            .collect();
        // Live sources have a known format; files take --ruleset-format.
        let all_files = self
            .readers
            .iter()
            .all(|r| matches!(r.source, Source::File(_)));
        let format = if all_files {
            self.format
        } else {
            FormatArg::Auto
        };
        ringfence_parse::parse_rulesets_for(&inputs, format.into(), self.need)
    }

    /// The verdict on a ruleset: the one place `watch` runs the analysis.
    /// A re-read is compared with the last one rule by rule and only what
    /// the change touches is judged again (ringfence_analysis::incremental;
    /// a change it cannot follow is a full verify).
    /// The verifier keeps the ruleset it is given (no copy of 100k rules
    /// per change).
    fn evaluate(&mut self, rs: Ruleset) -> State {
        use ringfence_analysis::incremental::Incremental;
        let inc = match &mut self.incr {
            Some(inc) => {
                inc.update(rs);
                inc
            }
            None => self.incr.insert(Incremental::with_host(
                rs,
                &self.site,
                self.hook,
                self.locals.clone(),
                self.checks,
            )),
        };
        let (findings, summary) = inc.findings(MAX_REGIONS);
        State::new(findings, summary)
    }

    /// Parse and verify the current readings; with `index`, also the
    /// normalized rules `--record` compares.
    fn verify(&mut self, index: bool) -> Result<(State, Option<RuleIndex>), String> {
        let rs = self.ruleset().map_err(|e| {
            e.0.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let index = index.then(|| RuleIndex::new(&rs, self.texts()));
        Ok((self.evaluate(rs), index))
    }

    /// The current readings (name, text), for quoting rules.
    fn texts(&self) -> Vec<(String, String)> {
        self.readers
            .iter()
            .flat_map(|r| r.texts.iter().map(|(t, n)| (n.clone(), t.clone())))
            .collect()
    }

    /// Re-read every source (nft only when `nft_event`); true when any changed.
    fn refresh(&mut self, nft_event: bool) -> Result<bool, String> {
        let mut changed = false;
        for r in &mut self.readers {
            let force = nft_event && r.source == Source::Nft;
            changed |= r.refresh(force)?;
        }
        Ok(changed)
    }
}

fn is_region(f: &Finding) -> bool {
    matches!(f.kind, FindingKind::Excess | FindingKind::PossibleExcess)
}

/// How many excess regions a state lists.
fn listed(s: &State) -> usize {
    s.others.values().filter(|f| is_region(f)).count()
}

/// Whether the state's region list is cut at verify's limit (more regions
/// exist than it shows).
fn cut(s: &State) -> bool {
    s.summary.excess > listed(s) || listed(s) >= MAX_REGIONS
}

/// Print what differs between two states, flows first (in report order),
/// then findings that went away, then new ones. A region is said to have
/// disappeared only when the new list is complete, and to have appeared
/// only when the old one was: a region missing from a cut list may lie
/// beyond the cut. When either list is cut and the count or the listed
/// regions differ, an `excess-count` line says so.
fn report_changes(
    old: &State,
    new: &State,
    out: &Output,
) -> Result<Vec<history::FindingChange>, CliError> {
    let time = now_rfc3339();
    let ok = new.summary.ok;
    let mut logged = Vec::new();
    let mut emit = |c: Change<'_>| -> Result<(), CliError> {
        logged.push(history::FindingChange {
            change: c.change.to_string(),
            finding: log_finding(c.finding),
            old_status: c.old_status.map(|s| status_str(Some(s)).to_string()),
            old_fingerprint: c.old_fingerprint.clone(),
        });
        out.change(&c)
    };
    for (key, f) in &new.flows {
        match old.flows.get(key) {
            Some(o) if o.status == f.status => {}
            o => emit(Change {
                time: &time,
                change: "flow-status",
                finding: f,
                old_status: o.and_then(|o| o.status),
                old_fingerprint: o.map(|o| o.fingerprint.hex()),
                ok,
            })?,
        }
    }
    let (cut_old, cut_new) = (cut(old), cut(new));
    let mut regions_differ = false;
    for (fp, f) in &old.others {
        if !new.others.contains_key(fp) {
            regions_differ |= is_region(f);
            if is_region(f) && cut_new {
                continue;
            }
            emit(Change {
                time: &time,
                change: "disappeared",
                finding: f,
                old_status: None,
                old_fingerprint: None,
                ok,
            })?;
        }
    }
    for (fp, f) in &new.others {
        if !old.others.contains_key(fp) {
            regions_differ |= is_region(f);
            if is_region(f) && cut_old {
                continue;
            }
            emit(Change {
                time: &time,
                change: "appeared",
                finding: f,
                old_status: None,
                old_fingerprint: None,
                ok,
            })?;
        }
    }
    if (cut_old || cut_new) && (old.summary.excess != new.summary.excess || regions_differ) {
        out.count(&CountChange {
            time: &time,
            change: "excess-count",
            old: old.summary.excess,
            new: new.summary.excess,
            listed: listed(new),
            ok,
        })?;
    }
    Ok(logged)
}

fn source_name(s: &Source) -> String {
    match s {
        Source::Nft => "nft".into(),
        Source::Iptables => "iptables".into(),
        Source::File(p) => format!("file:{}", p.display()),
    }
}

/// The problem findings of a state: flows that are not allowed, then the rest.
fn problems(st: &State) -> Vec<&Finding> {
    let mut problems: Vec<&Finding> = st.flows.values().filter(|f| f.is_problem()).collect();
    problems.extend(st.others.values());
    problems
}

fn print_initial(st: &State, sources: &[Source], out: &Output) -> Result<(), CliError> {
    let time = now_rfc3339();
    let problems = problems(st);
    match out.format {
        WatchFormat::Json => out.line(
            &serde_json::to_string(&Initial {
                time: &time,
                change: "initial",
                sources: sources.iter().map(source_name).collect(),
                summary: &st.summary,
                findings: problems,
            })
            .expect("initial state serializes"),
        ),
        WatchFormat::Text => {
            let m = &st.summary;
            out.line(&format!(
                "{time} watching {}: {} flows: {} allowed, {} partial, {} blocked, {} unknown; replies not allowed: {}; excess: {}; shadowed: {}; redundant: {}: {}",
                sources.iter().map(source_name).collect::<Vec<_>>().join(", "),
                m.flows, m.allowed, m.partial, m.blocked, m.unknown, m.replies_not_allowed,
                m.excess, m.shadowed, m.redundant,
                if m.ok { "OK" } else { "FINDINGS" }
            ))?;
            for f in problems {
                out.line(&format!("  {}", text_finding(f)))?;
            }
            Ok(())
        }
    }
}

/// Run `ringfence watch`.
pub fn run(args: Args) -> Result<u8, CliError> {
    let site = args.site.load()?;
    let exec = match &args.exec {
        Some(c) => Some(split_command(c).map_err(CliError::Usage)?),
        None => None,
    };
    let mut out = Output {
        format: args.format,
        exec,
        webhook: args
            .webhook
            .as_deref()
            .map(|u| Webhook::start(u, args.webhook_timeout)),
    };
    let mut sources = args.sources.clone();
    sources.dedup();
    let (tx, rx) = channel();
    // The monitor starts before the first reading, so no change between the
    // two is missed.
    let mut monitor = if !args.once && sources.contains(&Source::Nft) {
        Some(start_monitor(tx.clone())?)
    } else {
        None
    };
    let result = follow(&args, &site, sources, &out, tx, &rx);
    if let Some(m) = &mut monitor {
        let _ = m.kill();
        let _ = m.wait();
    }
    if let Some(w) = &mut out.webhook {
        w.finish();
    }
    result
}

fn follow(
    args: &Args,
    site: &ringfence_site::Site,
    sources: Vec<Source>,
    out: &Output,
    tx: Sender<Event>,
    rx: &Receiver<Event>,
) -> Result<u8, CliError> {
    let mut w = Watch {
        readers: sources.iter().cloned().map(Reader::new).collect(),
        site: site.resolve(),
        need: families(site),
        format: args.ruleset_format,
        hook: args.hook.into(),
        incr: None,
        locals: super::verify::local_addrs(&args.local, Some(site)),
        checks: ringfence_analysis::verify::Checks {
            dead_in_context: args.dead_in_context,
        },
    };
    for r in &mut w.readers {
        r.refresh(true).map_err(CliError::Io)?;
    }
    // Bad input at the start is located and exits 2.
    let rs = w.ruleset().map_err(CliError::Input)?;
    let mut index = args
        .record
        .is_some()
        .then(|| RuleIndex::new(&rs, w.texts()));
    let mut state = w.evaluate(rs);
    let source_names: Vec<String> = sources.iter().map(source_name).collect();
    let hook_name = w.hook.to_string();
    let start_of = |st: &State, ix: &RuleIndex| history::Start {
        v: history::FORMAT_VERSION,
        time: now_rfc3339(),
        run: String::new(),
        segment: 0,
        sources: source_names.clone(),
        site: args
            .site
            .site
            .as_deref()
            .map_or_else(String::new, |p| p.display().to_string()),
        hook: hook_name.clone(),
        ruleset: ix.hash.clone(),
        ok: st.summary.ok,
        excess: st.summary.excess,
        findings: problems(st).into_iter().map(log_finding).collect(),
    };
    let mut recorder = match (&args.record, &index) {
        (Some(dir), Some(ix)) => Some(Record {
            dir: dir.display().to_string(),
            log: history::Recorder::open(dir, start_of(&state, ix))?,
        }),
        _ => None,
    };
    // The last entries of a run: an error that ends it, if any, and a stop.
    let stop = |r: &mut Option<Record>, st: &State, ix: &Option<RuleIndex>, error: Option<&str>| {
        if let (Some(r), Some(ix)) = (r, ix) {
            let time = now_rfc3339();
            if let Some(message) = error {
                r.append(
                    &history::Entry::Error(history::ErrorEntry {
                        time: time.clone(),
                        message: message.to_string(),
                    }),
                    || start_of(st, ix),
                );
            }
            r.append(&history::Entry::Stop(history::StopEntry { time }), || {
                start_of(st, ix)
            });
        }
    };
    print_initial(&state, &sources, out)?;
    if args.once {
        stop(&mut recorder, &state, &index, None);
        return Ok(if state.summary.ok {
            exit::SUCCESS
        } else {
            exit::FINDINGS
        });
    }
    stop_on_signal(tx);
    let mut seq = 0u64;
    loop {
        let mut nft_event = false;
        match rx.recv_timeout(args.interval) {
            Ok(Event::Stop) | Err(RecvTimeoutError::Disconnected) => {
                stop(&mut recorder, &state, &index, None);
                return Ok(exit::SUCCESS);
            }
            Ok(Event::MonitorEnded(e)) => {
                let msg = format!("nft monitor ended: {e}");
                stop(&mut recorder, &state, &index, Some(&msg));
                return Err(CliError::Io(msg));
            }
            Ok(Event::Nft) => {
                nft_event = true;
                match debounce(rx) {
                    Ok(true) => {
                        stop(&mut recorder, &state, &index, None);
                        return Ok(exit::SUCCESS);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        let msg = format!("nft monitor ended: {e}");
                        stop(&mut recorder, &state, &index, Some(&msg));
                        return Err(CliError::Io(msg));
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        let next = match w.refresh(nft_event) {
            Ok(false) => continue,
            Ok(true) => w.verify(recorder.is_some()),
            Err(e) => Err(e),
        };
        match next {
            Ok((s, new_index)) => {
                let changes = report_changes(&state, &s, out)?;
                if let (Some(r), Some(old), Some(new)) = (&mut recorder, &index, &new_index) {
                    if old.hash != new.hash || !changes.is_empty() {
                        seq += 1;
                        let (rules_added, added_total) = new.beyond(old);
                        let (rules_removed, removed_total) = old.beyond(new);
                        let entry = history::Entry::Change(history::Change {
                            time: now_rfc3339(),
                            seq,
                            ruleset: new.hash.clone(),
                            previous: old.hash.clone(),
                            rules_added,
                            rules_removed,
                            added_total,
                            removed_total,
                            findings: changes,
                            excess: s.summary.excess,
                            excess_cut: cut(&state) || cut(&s),
                            ok: s.summary.ok,
                        });
                        r.append(&entry, || start_of(&state, old));
                    }
                }
                state = s;
                if new_index.is_some() {
                    index = new_index;
                }
            }
            Err(e) => {
                let time = now_rfc3339();
                out.error(&time, &e)?;
                if let (Some(r), Some(ix)) = (&mut recorder, &index) {
                    r.append(
                        &history::Entry::Error(history::ErrorEntry { time, message: e }),
                        || start_of(&state, ix),
                    );
                }
            }
        }
    }
}

/// The `--record` log: failures to write are reported on stderr and do
/// not stop the watch (the next entry opens a new segment).
struct Record {
    dir: String,
    log: history::Recorder,
}

impl Record {
    fn append(&mut self, e: &history::Entry, state: impl FnOnce() -> history::Start) {
        if let Err(err) = self.log.append(e, state) {
            eprintln!(
                "ringfence watch: --record {}: writing the history failed: {err} (the next entry starts a new segment)",
                self.dir
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(parse_source("nft"), Ok(Source::Nft));
        assert_eq!(parse_source("iptables"), Ok(Source::Iptables));
        assert_eq!(
            parse_source("file:/etc/nftables.conf"),
            Ok(Source::File("/etc/nftables.conf".into()))
        );
        assert!(parse_source("file:").unwrap_err().contains("needs a path"));
        assert!(parse_source("pf")
            .unwrap_err()
            .contains("nft, iptables or file:PATH"));
    }

    #[test]
    fn durations_take_units_and_refuse_garbage() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("5ms").unwrap_err().contains("at least 10ms"));
        assert!(parse_duration("2 weeks").is_err());
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn exec_splits_into_argv_without_a_shell() {
        assert_eq!(
            split_command(r#"logger -t "ring fence" 'a;b' x\y"#).unwrap(),
            vec!["logger", "-t", "ring fence", "a;b", r"x\y"]
        );
        assert_eq!(split_command("a  ''").unwrap(), vec!["a", ""]);
        assert!(split_command("a 'b").is_err());
        assert!(split_command("   ").is_err());
    }

    #[test]
    fn iptables_timestamps_and_counters_are_no_change() {
        let a = "# Generated by iptables-save v1.8.9 on Sun Dec  6 07:00:00 2026\n*filter\n:FORWARD DROP [10:600]\n-A FORWARD -j ACCEPT\nCOMMIT\n";
        let b = "# Generated by iptables-save v1.8.9 on Sun Dec  6 07:00:05 2026\n*filter\n:FORWARD DROP [99:9000]\n-A FORWARD -j ACCEPT\nCOMMIT\n";
        assert_eq!(iptables_identity(a), iptables_identity(b));
        let c = b.replace("-j ACCEPT", "-j DROP");
        assert_ne!(iptables_identity(a), iptables_identity(&c));
    }

    fn index(text: &str) -> RuleIndex {
        let rs = ringfence_parse::parse_rulesets_for(
            &[(text, "fw.rules")],
            FormatArg::Auto.into(),
            Families {
                v4: true,
                v6: false,
            },
        )
        .expect("test ruleset parses");
        RuleIndex::new(&rs, vec![("fw.rules".into(), text.into())])
    }

    const RULES: &str = "*filter\n:FORWARD DROP [0:0]\n:ALLOW - [0:0]\n-A FORWARD -j ALLOW\n-A ALLOW -d 198.18.1.20/32 -p tcp -m tcp --dport 443 -j ACCEPT\n-A ALLOW -d 198.18.1.30/32 -p tcp -m tcp --dport 443 -j ACCEPT\nCOMMIT\n";

    #[test]
    fn ruleset_hash_ignores_lines_comments_and_counters_but_not_order_or_policy() {
        let base = index(RULES);
        // Comment lines, counters and a rule comment move or label rules
        // without changing them.
        let moved = RULES
            .replace("*filter\n", "# Generated\n# by a test\n*filter\n")
            .replace("[0:0]", "[12:3400]")
            .replace(
                "--dport 443 -j ACCEPT\n-A ALLOW -d 198.18.1.30",
                "--dport 443 -m comment --comment harbor -j ACCEPT\n-A ALLOW -d 198.18.1.30",
            );
        assert_eq!(index(&moved).hash, base.hash);
        let swapped = RULES.replace(
            "-A ALLOW -d 198.18.1.20/32 -p tcp -m tcp --dport 443 -j ACCEPT\n-A ALLOW -d 198.18.1.30/32 -p tcp -m tcp --dport 443 -j ACCEPT\n",
            "-A ALLOW -d 198.18.1.30/32 -p tcp -m tcp --dport 443 -j ACCEPT\n-A ALLOW -d 198.18.1.20/32 -p tcp -m tcp --dport 443 -j ACCEPT\n",
        );
        let swapped = index(&swapped);
        assert_ne!(swapped.hash, base.hash, "order decides");
        assert_eq!(swapped.beyond(&base).1 + base.beyond(&swapped).1, 0);
        let open = index(&RULES.replace(":FORWARD DROP", ":FORWARD ACCEPT"));
        assert_ne!(open.hash, base.hash);
        let (added, n) = open.beyond(&base);
        assert_eq!(n, 1);
        assert_eq!(added[0].rule, "policy of FORWARD");
        assert!(added[0]
            .normalized
            .as_deref()
            .is_some_and(|t| t.contains("policy accept")));
    }

    #[test]
    fn added_and_removed_rules_are_quoted_from_their_source_line() {
        let base = index(RULES);
        let more = index(&RULES.replace(
            "COMMIT",
            "-A ALLOW -d 198.18.1.20/32 -p tcp -m tcp --dport 8080 -j ACCEPT\nCOMMIT",
        ));
        let (added, n) = more.beyond(&base);
        assert_eq!(n, 1);
        assert_eq!(added[0].rule, "fw.rules:7");
        assert_eq!(added[0].chain, "ALLOW");
        assert_eq!(
            added[0].text.as_deref(),
            Some("-A ALLOW -d 198.18.1.20/32 -p tcp -m tcp --dport 8080 -j ACCEPT")
        );
        assert!(added[0].normalized.is_none());
        let (removed, n) = base.beyond(&more);
        assert_eq!((removed.len(), n), (0, 0));
        // A repeated rule counts: a second copy is one rule added.
        let twice = index(&RULES.replace(
            "COMMIT",
            "-A ALLOW -d 198.18.1.30/32 -p tcp -m tcp --dport 443 -j ACCEPT\nCOMMIT",
        ));
        assert_eq!(twice.beyond(&base).1, 1);
        assert_eq!(base.beyond(&twice).1, 0);
    }

    #[test]
    fn time_is_rfc3339_utc() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert!(t.starts_with("20"), "{t}");
    }
}
