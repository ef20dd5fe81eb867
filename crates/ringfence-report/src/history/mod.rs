//! `ringfence report --history DIR`: a timeline of what `ringfence watch
//! --record DIR` saw, when each finding (by fingerprint) appeared and
//! disappeared and which ruleset change did it, and what was still open at
//! the end. [`log`] reads and writes the directory; [`build`] turns its
//! segments into a [`History`]; [`render_html`], [`render_markdown`] and
//! serde (JSON) show it.

pub mod log;

use crate::palette::Palette;
use log::{Entry, LogFinding, RuleChange, Segment};
use minijinja::Value;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

const HTML_TEMPLATE: &str = include_str!("../../templates/history.html.j2");
const MD_TEMPLATE: &str = include_str!("../../templates/history.md.j2");

/// A finding as the timeline names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FindingRef {
    /// `flow`, `replies`, `excess`, `possible-excess`, `shadowed`, `redundant`, `note`.
    pub kind: String,
    /// The full fingerprint.
    pub fingerprint: String,
    /// Its first 12 hex digits (as `watch` prints them).
    pub short: String,
    /// The flow id, region, rule reference or note.
    pub subject: String,
    /// Flows: the status.
    pub status: Option<String>,
    /// The rules responsible when it was last recorded.
    pub rules: Vec<String>,
}

impl FindingRef {
    fn of(f: &LogFinding) -> Self {
        FindingRef {
            kind: f.kind.clone(),
            fingerprint: f.fingerprint.clone(),
            short: f.fingerprint.chars().take(12).collect(),
            subject: f.subject.clone(),
            status: f.status.clone(),
            rules: f.rules.clone(),
        }
    }
}

/// What an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A watch run began (its first segment).
    Start,
    /// The ruleset changed while watched.
    Change,
    /// A later segment of a run began with a state that differs from what
    /// the log says: entries were lost (a write failed).
    Lost,
    /// A re-read failed; the previous state was kept.
    Error,
    /// The watch stopped cleanly.
    Stop,
    /// A run's log ends without a stop entry (killed, crashed, or still
    /// running).
    NoStop,
}

/// One point of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Anchor (`e1`, `e2`, ...).
    pub id: String,
    /// UTC, RFC 3339.
    pub time: String,
    /// What it is.
    pub kind: EventKind,
    /// One line for people.
    pub title: String,
    /// Where it is in the log (`DIR/SEGMENT.jsonl:LINE`).
    pub at: String,
    /// The ruleset hash after it (first 12 hex digits), when known.
    pub ruleset: Option<String>,
    /// Rules added (as many as the log lists).
    pub rules_added: Vec<RuleChange>,
    /// Rules removed.
    pub rules_removed: Vec<RuleChange>,
    /// Rules added beyond those listed.
    pub more_added: usize,
    /// Rules removed beyond those listed.
    pub more_removed: usize,
    /// Findings that appeared with it.
    pub appeared: Vec<FindingRef>,
    /// Findings that disappeared with it.
    pub disappeared: Vec<FindingRef>,
    /// Whether the ruleset verified clean after it, when known.
    pub ok: Option<bool>,
    /// Excess regions in all after it, when known.
    pub excess: Option<usize>,
    /// The excess list was cut at verify's limit: regions beyond it are
    /// counted, not tracked one by one.
    pub excess_cut: bool,
    /// For errors: the message.
    pub message: Option<String>,
}

/// One time a finding was present.
#[derive(Debug, Clone, Serialize)]
pub struct Span {
    /// When it appeared.
    pub from: String,
    /// The event that made it appear (anchor) and its title.
    pub from_event: String,
    /// That event's title.
    pub from_title: String,
    /// When it disappeared; `None`: still present at the end of the log.
    pub to: Option<String>,
    /// The event that made it disappear.
    pub to_event: Option<String>,
    /// That event's title.
    pub to_title: Option<String>,
}

/// Every presence of one finding.
#[derive(Debug, Clone, Serialize)]
pub struct Life {
    /// The finding (as last recorded).
    pub finding: FindingRef,
    /// When it was present, in order.
    pub spans: Vec<Span>,
    /// Still present at the end of the log.
    pub open: bool,
}

/// Counts for the summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HistorySummary {
    /// Watch runs (processes).
    pub runs: usize,
    /// Segments read.
    pub segments: usize,
    /// Ruleset changes recorded.
    pub changes: usize,
    /// Failed re-reads.
    pub errors: usize,
    /// Distinct findings seen.
    pub findings: usize,
    /// Findings open at the end.
    pub open: usize,
    /// Whether the ruleset verified clean at the end.
    pub ok_at_end: bool,
    /// First and last time in the log.
    pub first: String,
    /// Last time in the log.
    pub last: String,
}

/// The timeline of a history directory.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    /// The directory, as given.
    pub dir: String,
    /// Site file, hook and sources of the last run.
    pub site: String,
    /// Hook of the last run.
    pub hook: String,
    /// Sources of the last run.
    pub sources: Vec<String>,
    /// When the report was made.
    pub generated: String,
    /// ringfence version.
    pub version: String,
    /// Counts.
    pub summary: HistorySummary,
    /// Every event, in log order.
    pub events: Vec<Event>,
    /// Every finding seen, in order of first appearance.
    pub findings: Vec<Life>,
    /// The fingerprints of the findings open at the end, in order of
    /// appearance (indexes into `findings`).
    pub open: Vec<usize>,
    /// Things to know when reading the timeline.
    pub notes: Vec<String>,
    /// Colours (shared with the main report).
    pub palette: Palette,
}

struct Builder {
    events: Vec<Event>,
    lives: Vec<Life>,
    by_fp: HashMap<String, usize>,
    /// Open findings by fingerprint.
    open: BTreeMap<String, LogFinding>,
}

impl Builder {
    fn event(&mut self, time: &str, kind: EventKind, title: String, at: String) -> usize {
        let id = format!("e{}", self.events.len() + 1);
        self.events.push(Event {
            id,
            time: time.to_string(),
            kind,
            title,
            at,
            ruleset: None,
            rules_added: Vec::new(),
            rules_removed: Vec::new(),
            more_added: 0,
            more_removed: 0,
            appeared: Vec::new(),
            disappeared: Vec::new(),
            ok: None,
            excess: None,
            excess_cut: false,
            message: None,
        });
        self.events.len() - 1
    }

    fn appear(&mut self, ev: usize, f: &LogFinding) {
        if self.open.contains_key(&f.fingerprint) {
            return;
        }
        let e = &self.events[ev];
        let span = Span {
            from: e.time.clone(),
            from_event: e.id.clone(),
            from_title: e.title.clone(),
            to: None,
            to_event: None,
            to_title: None,
        };
        let r = FindingRef::of(f);
        match self.by_fp.get(&f.fingerprint) {
            Some(&i) => {
                self.lives[i].finding = r.clone();
                self.lives[i].spans.push(span);
            }
            None => {
                self.by_fp.insert(f.fingerprint.clone(), self.lives.len());
                self.lives.push(Life {
                    finding: r.clone(),
                    spans: vec![span],
                    open: false,
                });
            }
        }
        self.open.insert(f.fingerprint.clone(), f.clone());
        self.events[ev].appeared.push(r);
    }

    fn disappear(&mut self, ev: usize, fp: &str) {
        let Some(f) = self.open.remove(fp) else {
            return;
        };
        let e = &self.events[ev];
        if let Some(&i) = self.by_fp.get(fp) {
            if let Some(s) = self.lives[i].spans.last_mut() {
                s.to = Some(e.time.clone());
                s.to_event = Some(e.id.clone());
                s.to_title = Some(e.title.clone());
            }
        }
        self.events[ev].disappeared.push(FindingRef::of(&f));
    }

    /// Make the open set equal `snapshot`, attributing the differences to `ev`.
    fn sync(&mut self, ev: usize, snapshot: &[LogFinding]) {
        let want: BTreeMap<&str, &LogFinding> = snapshot
            .iter()
            .map(|f| (f.fingerprint.as_str(), f))
            .collect();
        let gone: Vec<String> = self
            .open
            .keys()
            .filter(|k| !want.contains_key(k.as_str()))
            .cloned()
            .collect();
        for fp in gone {
            self.disappear(ev, &fp);
        }
        for f in snapshot {
            self.appear(ev, f);
        }
    }
}

fn is_problem(f: &LogFinding) -> bool {
    !(matches!(f.kind.as_str(), "flow" | "replies") && f.status.as_deref() == Some("allowed"))
}

fn short(h: &str) -> String {
    h.chars().take(12).collect()
}

fn at(seg: &Segment, line: u64) -> String {
    format!("{}:{line}", seg.file)
}

/// Build the timeline of the segments `log::read_log` read from `dir`.
pub fn build(dir: &str, segments: &[Segment], generated: &str, version: &str) -> History {
    let mut b = Builder {
        events: Vec::new(),
        lives: Vec::new(),
        by_fp: HashMap::new(),
        open: BTreeMap::new(),
    };
    let mut notes = Vec::new();
    let mut summary = HistorySummary {
        segments: segments.len(),
        ..Default::default()
    };
    let mut ok_at_end = true;
    // The run of the previous segment and whether it ended with a stop.
    let mut prev: Option<(String, bool, String)> = None;
    let mut any_cut = false;
    for seg in segments {
        let st = seg.start();
        let same_run = prev
            .as_ref()
            .is_some_and(|(r, stopped, _)| *r == st.run && !stopped);
        if let Some((run, stopped, last)) = &prev {
            if !stopped && !same_run {
                b.event(
                    last,
                    EventKind::NoStop,
                    format!("watch run {run} ends here without a stop entry (killed or crashed): changes after this time were not watched"),
                    String::new(),
                );
            }
        }
        let (line, _) = &seg.entries[0];
        if same_run {
            let diff = {
                let now: Vec<&str> = st.findings.iter().map(|f| f.fingerprint.as_str()).collect();
                now.len() != b.open.len() || now.iter().any(|fp| !b.open.contains_key(*fp))
            };
            if diff {
                let ev = b.event(
                    &st.time,
                    EventKind::Lost,
                    format!("segment {} of run {} begins with a different state: entries were not written (a write failed), so these differences come from unrecorded changes", st.segment, st.run),
                    at(seg, *line),
                );
                b.sync(ev, &st.findings);
                b.events[ev].ruleset = Some(short(&st.ruleset));
                b.events[ev].ok = Some(st.ok);
                b.events[ev].excess = Some(st.excess);
            }
        } else {
            summary.runs += 1;
            let title = if summary.runs == 1 {
                format!(
                    "watch started (run {}): findings present from the start",
                    st.run
                )
            } else {
                format!("watch started again (run {}): differences since the previous run happened while nothing watched", st.run)
            };
            let ev = b.event(&st.time, EventKind::Start, title, at(seg, *line));
            b.sync(ev, &st.findings);
            if summary.runs == 1 && b.events[ev].appeared.is_empty() {
                b.events[ev].title = format!("watch started (run {}): no findings", st.run);
            }
            b.events[ev].ruleset = Some(short(&st.ruleset));
            b.events[ev].ok = Some(st.ok);
            b.events[ev].excess = Some(st.excess);
        }
        ok_at_end = st.ok;
        let mut stopped = false;
        let mut last = st.time.clone();
        for (line, e) in &seg.entries[1..] {
            match e {
                Entry::Start(_) => {}
                Entry::Change(c) => {
                    summary.changes += 1;
                    let what = match (c.added_total, c.removed_total) {
                        (0, 0) => "chain policies changed".to_string(),
                        (a, 0) => format!("{a} rule{} added", if a == 1 { "" } else { "s" }),
                        (0, r) => format!("{r} rule{} removed", if r == 1 { "" } else { "s" }),
                        (a, r) => format!(
                            "{a} rule{} added, {r} removed",
                            if a == 1 { "" } else { "s" }
                        ),
                    };
                    let ev = b.event(
                        &c.time,
                        EventKind::Change,
                        format!("change {} of run {}: {what}", c.seq, st.run),
                        at(seg, *line),
                    );
                    {
                        let e = &mut b.events[ev];
                        e.ruleset = Some(short(&c.ruleset));
                        e.rules_added = c.rules_added.clone();
                        e.rules_removed = c.rules_removed.clone();
                        e.more_added = c.added_total.saturating_sub(c.rules_added.len());
                        e.more_removed = c.removed_total.saturating_sub(c.rules_removed.len());
                        e.ok = Some(c.ok);
                        e.excess = Some(c.excess);
                        e.excess_cut = c.excess_cut;
                    }
                    any_cut |= c.excess_cut;
                    for fc in &c.findings {
                        match fc.change.as_str() {
                            "flow-status" => {
                                if let Some(old) = &fc.old_fingerprint {
                                    b.disappear(ev, old);
                                }
                                if is_problem(&fc.finding) {
                                    b.appear(ev, &fc.finding);
                                }
                            }
                            "disappeared" => b.disappear(ev, &fc.finding.fingerprint),
                            _ => {
                                if is_problem(&fc.finding) {
                                    b.appear(ev, &fc.finding);
                                }
                            }
                        }
                    }
                    ok_at_end = c.ok;
                    last = c.time.clone();
                }
                Entry::Error(x) => {
                    summary.errors += 1;
                    let ev = b.event(
                        &x.time,
                        EventKind::Error,
                        "re-reading the ruleset failed; the previous state was kept".into(),
                        at(seg, *line),
                    );
                    b.events[ev].message = Some(x.message.clone());
                    last = x.time.clone();
                }
                Entry::Stop(x) => {
                    b.event(
                        &x.time,
                        EventKind::Stop,
                        format!("watch run {} stopped", st.run),
                        at(seg, *line),
                    );
                    stopped = true;
                    last = x.time.clone();
                }
            }
        }
        prev = Some((st.run.clone(), stopped, last));
    }
    if let Some((run, false, _)) = &prev {
        notes.push(format!(
            "The last run ({run}) has no stop entry: it was still running when the log was read, or it was killed. Findings open at its last entry are shown as open."
        ));
    }
    if any_cut {
        notes.push("At times the ruleset accepted more excess regions than verify lists (200): regions beyond the list were counted, not followed one by one, so their appearing and disappearing is not in this timeline.".into());
    }
    let mut open = Vec::new();
    for (i, l) in b.lives.iter_mut().enumerate() {
        l.open = b.open.contains_key(&l.finding.fingerprint);
        if l.open {
            open.push(i);
        }
    }
    summary.findings = b.lives.len();
    summary.open = open.len();
    summary.ok_at_end = ok_at_end;
    summary.first = b.events.first().map(|e| e.time.clone()).unwrap_or_default();
    summary.last = b.events.last().map(|e| e.time.clone()).unwrap_or_default();
    let last_start = segments.last().map(|s| s.start());
    History {
        dir: dir.to_string(),
        site: last_start.map(|s| s.site.clone()).unwrap_or_default(),
        hook: last_start.map(|s| s.hook.clone()).unwrap_or_default(),
        sources: last_start.map(|s| s.sources.clone()).unwrap_or_default(),
        generated: generated.to_string(),
        version: version.to_string(),
        summary,
        events: b.events,
        findings: b.lives,
        open,
        notes,
        palette: Palette::embedded(),
    }
}

/// Render the timeline as one self-contained HTML page (the report's style).
pub fn render_html(h: &History) -> Result<String, minijinja::Error> {
    let mut env = crate::html_env();
    env.add_template("history.html.j2", HTML_TEMPLATE)?;
    let css = env
        .get_template("style.css.j2")?
        .render(minijinja::context! { palette => Value::from_serialize(&h.palette) })?;
    env.get_template("history.html.j2")?
        .render(minijinja::context! {
            h => Value::from_serialize(h),
            css => Value::from_safe_string(css),
        })
}

/// Render the timeline as GitHub-flavoured Markdown.
pub fn render_markdown(h: &History) -> Result<String, minijinja::Error> {
    let mut env = crate::md_env();
    env.add_template("history.md.j2", MD_TEMPLATE)?;
    env.get_template("history.md.j2")?
        .render(minijinja::context! { h => Value::from_serialize(h) })
}
