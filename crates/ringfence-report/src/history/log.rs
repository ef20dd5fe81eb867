//! The history log of `ringfence watch --record DIR`: its entries (format
//! version [`FORMAT_VERSION`]), the append-only [`Recorder`] that writes
//! them, and [`read_log`], which reads a directory back with located errors.
//!
//! A log is a directory of segments, `*.jsonl` files of one JSON object per
//! line. Every segment begins with a [`Start`] entry (the state when it was
//! opened, so each segment can be read on its own), followed by [`Change`],
//! [`ErrorEntry`] and finally, when the watch stopped cleanly, a
//! [`StopEntry`]. A segment is created with `O_EXCL` and written with
//! `O_APPEND`, one whole line per write, each followed by `fsync`; segments
//! are never opened for writing again. docs/watch.md ("History") is the
//! format's reference.

use ringfence_diag::{InputError, InputErrors};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The format version written in every [`Start`] entry (`"v"`). A reader
/// refuses a higher version rather than guess at it.
pub const FORMAT_VERSION: u32 = 1;

/// A segment grows to about this many bytes; the next entry opens a new one.
pub const MAX_SEGMENT_BYTES: u64 = 64 << 20;

/// At most this many added and this many removed rules are listed in one
/// [`Change`]; the totals are always given.
pub const MAX_LISTED_RULES: usize = 50;

/// One line of a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Entry {
    /// The first line of every segment: the state when it was opened.
    Start(Start),
    /// The ruleset changed (its normalized rules hash differently).
    Change(Change),
    /// A re-read failed; the previous state is kept.
    Error(ErrorEntry),
    /// The watch stopped cleanly (Ctrl-C, SIGTERM).
    Stop(StopEntry),
}

/// The state when a segment was opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Start {
    /// Format version ([`FORMAT_VERSION`]).
    pub v: u32,
    /// UTC, RFC 3339 with milliseconds.
    pub time: String,
    /// Identifies one watch process: its start time and process id.
    pub run: String,
    /// 0 for the first segment of a run; later segments of the same run
    /// (the previous one grew too large, or a write to it failed) count up.
    pub segment: u32,
    /// The `--source` values, as given.
    pub sources: Vec<String>,
    /// The site file.
    pub site: String,
    /// The hook the flows are checked on.
    pub hook: String,
    /// Hash of the normalized rules (see docs/watch.md).
    pub ruleset: String,
    /// Whether the ruleset verified clean.
    pub ok: bool,
    /// Excess regions (certain and possible) in all, listed or not.
    pub excess: usize,
    /// Every problem finding (flows that are not allowed, excess, shadowed,
    /// redundant, notes).
    pub findings: Vec<LogFinding>,
}

/// A finding as the log keeps it: what identifies it and how to name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFinding {
    /// `flow`, `replies`, `excess`, `possible-excess`, `shadowed`,
    /// `redundant`, `note`.
    pub kind: String,
    /// The fingerprint (32 hex digits, `ringfenceFinding/v1`).
    pub fingerprint: String,
    /// The flow id, region, rule reference or note.
    pub subject: String,
    /// Flows: the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The rules responsible when it was written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Rule findings: the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
}

/// A rule added to or removed from the ruleset, or a chain's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleChange {
    /// The chain.
    pub chain: String,
    /// Where the rule is (added) or was (removed): `file:line`, `inet t c
    /// handle N`, `policy of CHAIN`.
    pub rule: String,
    /// The rule as written in its source, when the source is line-oriented
    /// text (iptables-save, nft text files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Otherwise (nft JSON, NSX): the normalized rule the ruleset hash is
    /// made of (match fields as numeric ranges, then the action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalized: Option<String>,
}

/// How a finding changed with one ruleset change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingChange {
    /// `appeared`, `disappeared` or `flow-status`.
    pub change: String,
    /// The finding (for `disappeared`, the one that went away; for
    /// `flow-status`, the new status).
    #[serde(flatten)]
    pub finding: LogFinding,
    /// `flow-status`: the status before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_status: Option<String>,
    /// `flow-status`: the fingerprint before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_fingerprint: Option<String>,
}

/// One change of the ruleset and what it did to the findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// When the new verdict was reached.
    pub time: String,
    /// Counts the changes of one run from 1.
    pub seq: u64,
    /// Hash of the normalized rules after the change.
    pub ruleset: String,
    /// The hash before.
    pub previous: String,
    /// Rules added (at most [`MAX_LISTED_RULES`]).
    pub rules_added: Vec<RuleChange>,
    /// Rules removed (at most [`MAX_LISTED_RULES`]).
    pub rules_removed: Vec<RuleChange>,
    /// How many rules were added in all.
    pub added_total: usize,
    /// How many rules were removed in all.
    pub removed_total: usize,
    /// How the findings changed (flows first, then disappeared, then appeared).
    pub findings: Vec<FindingChange>,
    /// Excess regions in all after the change.
    pub excess: usize,
    /// Whether an excess list was cut at verify's limit before or after,
    /// so region findings beyond it are counted, not listed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub excess_cut: bool,
    /// Whether the ruleset verifies clean after the change.
    pub ok: bool,
}

/// A re-read failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorEntry {
    /// When.
    pub time: String,
    /// What failed.
    pub message: String,
}

/// The watch stopped cleanly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopEntry {
    /// When.
    pub time: String,
}

/// `2026-12-06T07:16:29.508Z` -> `20261206T071629.508Z`, for file names
/// that sort by time.
fn compact_time(t: &str) -> String {
    t.chars().filter(|c| *c != '-' && *c != ':').collect()
}

/// Appends entries to a history directory. Open it with [`Recorder::open`];
/// each [`Recorder::append`] writes one line and syncs it to disk.
pub struct Recorder {
    dir: PathBuf,
    /// The open segment; `None` after a failed write (the next entry opens
    /// a new segment).
    file: Option<(File, u64)>,
    run: String,
    segment: u32,
    max_bytes: u64,
}

impl Recorder {
    /// Create `dir` when missing, open a new segment in it and write
    /// `start` (its `run` and `segment` are set here). A directory that
    /// cannot be created or written is an error naming it.
    pub fn open(dir: &Path, start: Start) -> Result<Recorder, InputError> {
        Self::open_with_limit(dir, start, MAX_SEGMENT_BYTES)
    }

    /// [`Recorder::open`] with another segment size (for tests).
    pub fn open_with_limit(
        dir: &Path,
        mut start: Start,
        max_bytes: u64,
    ) -> Result<Recorder, InputError> {
        let name = dir.display().to_string();
        let unusable = |what: String, e: std::io::Error| {
            InputError::whole(&name, format!("--record: {what}: {e}")).with_help(
                "name a directory this user can create or write to (it is created when missing)",
            )
        };
        match std::fs::metadata(dir) {
            Ok(m) if !m.is_dir() => {
                return Err(
                    InputError::whole(&name, "--record: this is not a directory").with_help(
                        "name a directory for the history segments (it is created when missing)",
                    ),
                )
            }
            Ok(_) => {}
            Err(_) => std::fs::create_dir_all(dir)
                .map_err(|e| unusable("cannot create the directory".into(), e))?,
        }
        start.run = format!("{}-{}", compact_time(&start.time), std::process::id());
        start.segment = 0;
        let mut r = Recorder {
            dir: dir.to_path_buf(),
            file: None,
            run: start.run.clone(),
            segment: 0,
            max_bytes,
        };
        r.new_segment(start)
            .map_err(|e| unusable("cannot write a segment".into(), e))?;
        Ok(r)
    }

    /// The run id written in every segment of this recorder.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// Open the next segment and write `start` to it.
    fn new_segment(&mut self, mut start: Start) -> std::io::Result<()> {
        start.run = self.run.clone();
        start.segment = self.segment;
        let path = self
            .dir
            .join(format!("{}-{:04}.jsonl", self.run, self.segment));
        self.segment += 1;
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)?;
        self.file = Some((file, 0));
        // The new name is made durable with its directory.
        File::open(&self.dir)?.sync_all()?;
        self.write(&Entry::Start(start))
    }

    fn write(&mut self, e: &Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_string(e).map_err(std::io::Error::other)?;
        line.push('\n');
        let Some((file, bytes)) = &mut self.file else {
            return Err(std::io::Error::other("no open segment"));
        };
        // One write of the whole line (O_APPEND), then to disk.
        let res = file
            .write_all(line.as_bytes())
            .and_then(|()| file.sync_data());
        match res {
            Ok(()) => {
                *bytes += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                // The segment may end in part of this line now: never
                // write to it again.
                self.file = None;
                Err(e)
            }
        }
    }

    /// Append `e`. When the segment is full or a write to it failed, a new
    /// segment is opened first, beginning with `state()`: the state before
    /// `e`. An error leaves the recorder usable: the next append tries a
    /// new segment.
    pub fn append(&mut self, e: &Entry, state: impl FnOnce() -> Start) -> std::io::Result<()> {
        let full = matches!(&self.file, Some((_, b)) if *b >= self.max_bytes);
        if self.file.is_none() || full {
            self.file = None;
            self.new_segment(state())?;
        }
        self.write(e)
    }
}

/// One segment read back.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Its path, as shown in errors and the report.
    pub file: String,
    /// Its entries with their 1-based line numbers; the first is a
    /// [`Start`].
    pub entries: Vec<(u64, Entry)>,
}

impl Segment {
    /// The segment's [`Start`] entry.
    pub fn start(&self) -> &Start {
        match &self.entries[0].1 {
            Entry::Start(s) => s,
            _ => unreachable!("read_segment checks the first entry"),
        }
    }
}

/// Read one segment's text; `file` names it in errors.
pub fn read_segment(text: &str, file: &str) -> Result<Segment, InputError> {
    let mut entries = Vec::new();
    let mut rest = text;
    let mut line_no = 0u64;
    while !rest.is_empty() {
        line_no += 1;
        let (line, complete) = match rest.find('\n') {
            Some(i) => {
                let l = &rest[..i];
                rest = &rest[i + 1..];
                (l, true)
            }
            None => {
                let l = rest;
                rest = "";
                (l, false)
            }
        };
        if !complete {
            let keep = text.len() - line.len();
            return Err(InputError::at_line(
                file,
                line_no,
                format!(
                    "the last line is cut short ({} bytes without a newline): the watch writing this segment stopped in the middle of an entry (a crash, a kill or a full disk)",
                    line.len()
                ),
            )
            .with_help(format!(
                "the entries before it are intact; cut the partial line off with `truncate -s {keep} {file}` and read the log again"
            )));
        }
        if line.trim().is_empty() {
            return Err(InputError::at_line(
                file,
                line_no,
                "empty line: every line of a history segment is one JSON entry",
            )
            .with_help("history segments are written by `ringfence watch --record` and not edited by hand; restore this file from the watch's output"));
        }
        let entry: Entry = serde_json::from_str(line).map_err(|e| {
            let raw = ringfence_diag::json_error(file, &e);
            let mut err = InputError::at(
                file,
                line_no,
                raw_column(&raw),
                format!("not a history entry: {}", raw.message),
            );
            err.help = Some(
                "each line is one entry of type start, change, error or stop (docs/watch.md, \"History\")"
                    .into(),
            );
            err
        })?;
        match (&entry, line_no) {
            (Entry::Start(s), 1) if s.v > FORMAT_VERSION => {
                return Err(InputError::at_line(
                    file,
                    1,
                    format!(
                        "history format version {} is newer than this ringfence reads ({FORMAT_VERSION})",
                        s.v
                    ),
                )
                .with_help("read it with the ringfence version that wrote it, or a newer one"));
            }
            (Entry::Start(_), 1) => {}
            (_, 1) => {
                return Err(InputError::at_line(
                    file,
                    1,
                    "a segment must begin with a start entry (\"type\": \"start\")",
                )
                .with_help("this is not the beginning of a segment written by `ringfence watch --record`"))
            }
            (Entry::Start(_), n) => {
                return Err(InputError::at_line(
                    file,
                    n,
                    "a start entry in the middle of a segment (only the first line may be one)",
                )
                .with_help("segments are never concatenated or appended to by hand; split the file where the start entry begins"))
            }
            _ => {}
        }
        entries.push((line_no, entry));
    }
    if entries.is_empty() {
        return Err(
            InputError::whole(file, "empty segment: a segment begins with a start entry")
                .with_help(
                    "the watch stopped before writing its first entry; remove the empty file",
                ),
        );
    }
    Ok(Segment {
        file: file.to_string(),
        entries,
    })
}

fn raw_column(e: &InputError) -> u64 {
    match e.locus {
        ringfence_diag::Locus::LineColumn { column, .. } => column,
        _ => 1,
    }
}

/// Read every segment (`*.jsonl`) of a history directory, in the order of
/// their names (which begin with the time they were opened). Every bad
/// segment is reported, each at its file and line.
pub fn read_log(dir: &Path) -> Result<Vec<Segment>, InputErrors> {
    let name = dir.display().to_string();
    let listing = std::fs::read_dir(dir).map_err(|e| {
        InputError::whole(&name, format!("cannot read the history directory: {e}"))
            .with_help("name the directory given to `ringfence watch --record`")
    })?;
    let mut paths: Vec<PathBuf> = listing
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl") && p.is_file())
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(
            InputError::whole(&name, "no history segments (*.jsonl) in this directory")
                .with_help("name the directory given to `ringfence watch --record DIR`")
                .into(),
        );
    }
    let mut segments = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        let file = p.display().to_string();
        match ringfence_diag::read_input(&p, &file, "history segment")
            .and_then(|t| read_segment(&t, &file))
        {
            Ok(s) => segments.push(s),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(segments)
    } else {
        Err(InputErrors(errors))
    }
}
