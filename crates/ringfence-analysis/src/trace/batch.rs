//! Batch tracing: packet lines in ([`crate::packet_line`]), one JSON line out
//! per packet, in input order, as a stream.
//!
//! The input is read in runs of whole lines (about [`Batch::chunk_bytes`]
//! each) by one thread, traced by [`Batch::threads`] workers that share the
//! tracer read-only, and written by the calling thread in input order. A
//! fixed pool of run buffers goes round (reader, worker, writer, reader), so
//! memory stays bounded whatever the input's length: at most the pool's
//! runs are read ahead of the writer.
//!
//! The first line that cannot be read stops the batch: its error is the
//! one returned (located by line and column), nothing of its run or any
//! later run is written, and runs before it may already have been written.

use super::{Decision, Overall, RawOutcome, TraceScratch, Tracer, Xlat};
use crate::packet_line;
use ringfence_model::{Hook, Packet};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;

/// How a batch is run.
#[derive(Debug, Clone, Copy)]
pub struct Batch {
    /// Worker threads tracing runs of lines (at least one).
    pub threads: usize,
    /// About how many bytes of input make one run (a run always ends at a
    /// line end; a longer line makes a longer run).
    pub chunk_bytes: usize,
}

impl Default for Batch {
    /// One worker per core (at most 8), runs of 256 KiB (about 2,000 lines).
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .clamp(1, 8),
            chunk_bytes: 256 << 10,
        }
    }
}

/// The longest packet line read (a line is one small JSON object; this only
/// keeps a file without line ends from being read whole).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Why a batch stopped.
#[derive(Debug)]
pub enum BatchError {
    /// A packet line that cannot be read: its 1-based line, column (when
    /// known) and what is wrong with what was expected.
    Line {
        /// 1-based line number.
        line: u64,
        /// 1-based column, `None` when the whole line is at fault.
        column: Option<u64>,
        /// What is wrong, with what was expected.
        message: String,
    },
    /// The input is not UTF-8 text: the first invalid byte's line, column
    /// and offset in the input (all counted in bytes, line and column 1-based).
    NotUtf8 {
        /// 1-based line number.
        line: u64,
        /// 1-based column (bytes).
        column: u64,
        /// 0-based offset of the byte in the input.
        offset: u64,
    },
    /// A line longer than [`MAX_LINE_BYTES`].
    LineTooLong {
        /// 1-based line number.
        line: u64,
    },
    /// Reading the input failed.
    Read(std::io::Error),
    /// Writing the output failed.
    Write(std::io::Error),
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Line {
                line,
                column: Some(c),
                message,
            } => write!(f, "line {line}, column {c}: {message}"),
            BatchError::Line {
                line,
                column: None,
                message,
            } => write!(f, "line {line}: {message}"),
            BatchError::NotUtf8 {
                line,
                column,
                offset,
            } => write!(
                f,
                "line {line}, column {column}: not UTF-8 text (invalid byte at offset {offset})"
            ),
            BatchError::LineTooLong { line } => write!(
                f,
                "line {line}: longer than {} bytes; expected one packet object per line",
                MAX_LINE_BYTES
            ),
            BatchError::Read(e) => write!(f, "reading the packet lines: {e}"),
            BatchError::Write(e) => write!(f, "writing the output: {e}"),
        }
    }
}

impl std::error::Error for BatchError {}

/// A run of input lines on its way round: read, traced, written, reused.
struct Run {
    /// Position in input order.
    seq: u64,
    /// After tracing: how many lines the run holds (its line ends; the
    /// writer numbers the next run's lines from there). Line numbers in the
    /// run's error count from 1 at its first line until the writer makes
    /// them the input's.
    lines: u64,
    /// Offset of the run's first byte in the input.
    offset: u64,
    /// The run's bytes: whole lines (the last one may lack its line end at
    /// the end of the input).
    input: Vec<u8>,
    /// Its output lines.
    output: String,
    /// After tracing: whether some packet's fate is undecided, or why the
    /// run stops the batch. Before: an error the reader met after the run's
    /// bytes (it is reported once the lines before it are traced).
    result: Result<bool, BatchError>,
}

/// Trace every packet line read from `input` on the path `hook` names (as
/// [`Tracer::path_for`] picks it per packet) and write one output line per
/// packet to `out`, in input order. Returns whether some packet's fate is
/// undecided (an outcome `unknown`, or outcomes that differ), which the
/// command's exit status reports.
pub fn run(
    tracer: &Tracer<'_>,
    hook: Hook,
    input: &mut (dyn Read + Send),
    out: &mut dyn Write,
    opts: Batch,
) -> Result<bool, BatchError> {
    let threads = opts.threads.max(1);
    let chunk_bytes = opts.chunk_bytes.max(1);
    let stop = AtomicBool::new(false);
    let (free_tx, free_rx) = mpsc::channel::<Run>();
    let (work_tx, work_rx) = mpsc::channel::<Run>();
    let (done_tx, done_rx) = mpsc::channel::<Run>();
    // Enough runs in flight to keep every worker busy while the writer
    // waits for the oldest one.
    for _ in 0..threads * 3 + 1 {
        let _ = free_tx.send(Run {
            seq: 0,
            lines: 0,
            offset: 0,
            input: Vec::with_capacity(chunk_bytes.min(MAX_LINE_BYTES) + 4096),
            output: String::new(),
            result: Ok(false),
        });
    }
    let work_rx = Mutex::new(work_rx);
    std::thread::scope(|s| {
        let stop = &stop;
        s.spawn(move || read_runs(input, chunk_bytes, &free_rx, &work_tx, stop));
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let work_rx = &work_rx;
            s.spawn(move || {
                let mut worker = Worker::new(tracer, hook);
                loop {
                    let next = work_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok(mut run)) = next else {
                        return;
                    };
                    if !stop.load(Ordering::Relaxed) {
                        worker.trace_run(&mut run);
                    }
                    if done_tx.send(run).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let written = write_runs(&done_rx, &free_tx, out);
        // Whatever ended the writing, the reader and workers stop taking
        // runs: they see the flag, or the channels close as this returns.
        stop.store(true, Ordering::Relaxed);
        drop(free_tx);
        drop(done_rx);
        written
    })
}

/// The writer: runs in input order to `out`, each run's buffers back to
/// the reader once written.
fn write_runs(
    done: &mpsc::Receiver<Run>,
    free: &mpsc::Sender<Run>,
    out: &mut dyn Write,
) -> Result<bool, BatchError> {
    let mut waiting: BTreeMap<u64, Run> = BTreeMap::new();
    let mut next = 0u64;
    let mut undecided = false;
    // Lines in the runs written so far.
    let mut base = 0u64;
    for run in done {
        waiting.insert(run.seq, run);
        while let Some(mut run) = waiting.remove(&next) {
            undecided |= std::mem::replace(&mut run.result, Ok(false)).map_err(|e| match e {
                BatchError::Line {
                    line,
                    column,
                    message,
                } => BatchError::Line {
                    line: base + line,
                    column,
                    message,
                },
                BatchError::NotUtf8 {
                    line,
                    column,
                    offset,
                } => BatchError::NotUtf8 {
                    line: base + line,
                    column,
                    offset,
                },
                BatchError::LineTooLong { line } => BatchError::LineTooLong { line: base + line },
                e => e,
            })?;
            base += run.lines;
            out.write_all(run.output.as_bytes())
                .map_err(BatchError::Write)?;
            next += 1;
            // The reader may be gone (end of input): the buffers are then dropped.
            let _ = free.send(run);
        }
    }
    out.flush().map_err(BatchError::Write)?;
    Ok(undecided)
}

/// The reader: fills free runs with about `chunk_bytes` of whole lines each
/// and hands them to the workers, until the input ends, a read fails or the
/// writer stops.
fn read_runs(
    input: &mut (dyn Read + Send),
    chunk_bytes: usize,
    free: &mpsc::Receiver<Run>,
    work: &mpsc::Sender<Run>,
    stop: &AtomicBool,
) {
    // Bytes read past the last line end of the previous run.
    let mut carry: Vec<u8> = Vec::new();
    let (mut seq, mut offset) = (0u64, 0u64);
    loop {
        let Ok(mut run) = free.recv() else {
            return;
        };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        run.seq = seq;
        run.lines = 0;
        run.offset = offset;
        run.output.clear();
        run.result = Ok(false);
        run.input.clear();
        run.input.append(&mut carry);
        // How far the run has been searched for a line end.
        let mut searched = 0;
        let mut eof = false;
        let cut = loop {
            if run.input.len() >= chunk_bytes || eof {
                if eof {
                    break run.input.len();
                }
                if let Some(i) = run.input[searched..].iter().rposition(|&b| b == b'\n') {
                    break searched + i + 1;
                }
                searched = run.input.len();
                if run.input.len() > MAX_LINE_BYTES.max(chunk_bytes) {
                    // One line, from the run's start, with no end in sight.
                    run.input.clear();
                    run.result = Err(BatchError::LineTooLong { line: 1 });
                    let _ = work.send(run);
                    return;
                }
            }
            let want = chunk_bytes.saturating_sub(run.input.len()).max(16 << 10);
            match (&mut *input).take(want as u64).read_to_end(&mut run.input) {
                Ok(0) => eof = true,
                Ok(_) => {}
                Err(e) => {
                    // The run's whole lines first, then the error.
                    let whole = run
                        .input
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |i| i + 1);
                    run.input.truncate(whole);
                    run.result = Err(BatchError::Read(e));
                    let _ = work.send(run);
                    return;
                }
            }
        };
        carry.extend_from_slice(&run.input[cut..]);
        run.input.truncate(cut);
        offset += cut as u64;
        seq += 1;
        if work.send(run).is_err() || eof {
            return;
        }
    }
}

/// A worker's reusable state: the trace buffers and the rendered pieces
/// of output it has met before.
struct Worker<'t, 'a> {
    tracer: &'t Tracer<'a>,
    hook: Hook,
    scratch: TraceScratch,
    packet: Packet,
    /// Rendered rule references (JSON strings), per deciding rule.
    names: FxHashMap<(u32, u32), String>,
    /// Whole output lines of packets with one untranslated outcome, which
    /// are nearly all: such a line depends only on the outcome's rule,
    /// verdict and path.
    single: FxHashMap<(u32, u32, u8), String>,
}

impl<'t, 'a> Worker<'t, 'a> {
    fn new(tracer: &'t Tracer<'a>, hook: Hook) -> Self {
        Self {
            tracer,
            hook,
            scratch: TraceScratch::default(),
            packet: Packet::new_connection(
                IpAddr::from([0, 0, 0, 0]),
                IpAddr::from([0, 0, 0, 0]),
                0,
                0,
                0,
            ),
            names: FxHashMap::default(),
            single: FxHashMap::default(),
        }
    }

    /// Trace the lines of `run` into its output; its result says whether a
    /// packet was undecided, or which line (or byte) stops the batch.
    fn trace_run(&mut self, run: &mut Run) {
        // An error the reader met after these bytes comes after their lines.
        let after = std::mem::replace(&mut run.result, Ok(false));
        let (text, bad_byte) = match std::str::from_utf8(&run.input) {
            Ok(t) => (t, None),
            Err(e) => {
                // The lines before the one holding the invalid byte are
                // traced first: one of them may be the first bad line.
                let v = e.valid_up_to();
                let whole = run.input[..v]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let t = std::str::from_utf8(&run.input[..whole]).expect("valid prefix");
                (t, Some(v))
            }
        };
        let mut undecided = false;
        let mut lineno = 0u64;
        for line in text.lines() {
            lineno += 1;
            if line.trim().is_empty() {
                continue;
            }
            match self.trace_line(line, &mut run.output) {
                Ok(u) => undecided |= u,
                Err(e) => {
                    run.result = Err(BatchError::Line {
                        line: lineno,
                        column: e.column,
                        message: e.message,
                    });
                    return;
                }
            }
        }
        if let Some(v) = bad_byte {
            let before = &run.input[..v];
            let newlines = before.iter().filter(|&&b| b == b'\n').count() as u64;
            let start = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            run.result = Err(BatchError::NotUtf8 {
                line: 1 + newlines,
                column: (v - start) as u64 + 1,
                offset: run.offset + v as u64,
            });
            return;
        }
        // Every line ends with a line end but perhaps the input's last.
        run.lines = lineno;
        run.result = after.map(|_| undecided);
    }

    /// Trace one packet line, appending its output line to `out`; returns
    /// whether the packet's fate is undecided.
    fn trace_line(&mut self, line: &str, out: &mut String) -> Result<bool, packet_line::LineError> {
        let t = self.tracer;
        let from_host = packet_line::read(line, &mut self.packet)?;
        let path = t.path_for(self.hook, from_host, &self.packet);
        t.trace_outcomes(path, &self.packet, &mut self.scratch);
        let scratch = &self.scratch;
        let undecided = !matches!(
            scratch.overall(),
            Overall::Accept | Overall::Drop | Overall::Reject
        );
        let names = &mut self.names;
        match scratch.outcomes() {
            &[RawOutcome {
                verdict,
                rule,
                path: opath,
                xlat,
            }] if xlat == Xlat::default() => {
                let (c, r) = rule.unwrap_or((u32::MAX, u32::MAX));
                let key = (c, r, (verdict as u8) << 4 | opath as u8);
                let text = self.single.entry(key).or_insert_with(|| {
                    let mut s = String::new();
                    render_line(&mut s, scratch, |o, k| render_name(o, names, t, k));
                    s
                });
                out.push_str(text);
            }
            // Several outcomes, or a translation: rendered each time (rare).
            _ => render_line(out, scratch, |o, k| render_name(o, names, t, k)),
        }
        Ok(undecided)
    }
}

/// A path's name in batch output (its filter hook).
fn path_name(h: Hook) -> &'static str {
    match h {
        Hook::Prerouting => "prerouting",
        Hook::Input => "input",
        Hook::Forward => "forward",
        Hook::Output => "output",
        Hook::Postrouting => "postrouting",
    }
}

/// A rule reference as a JSON string (`null` for none), rendered once per rule.
fn render_name(
    out: &mut String,
    names: &mut FxHashMap<(u32, u32), String>,
    tracer: &Tracer<'_>,
    k: Option<(u32, u32)>,
) {
    match k {
        Some(k) => {
            let name = names.entry(k).or_insert_with(|| {
                serde_json::to_string(&tracer.rule_ref(k).to_string()).expect("json string")
            });
            out.push_str(name);
        }
        None => out.push_str("null"),
    }
}

/// The output line of the packet last traced with `scratch` (see
/// [`line`]), rule references rendered by `name`.
fn render_line(
    out: &mut String,
    scratch: &TraceScratch,
    mut name: impl FnMut(&mut String, Option<(u32, u32)>),
) {
    out.push_str("{\"verdict\":\"");
    out.push_str(scratch.overall().name());
    out.push_str("\",\"rule\":");
    name(out, scratch.rule());
    out.push_str(",\"uncertain\":");
    out.push_str(if scratch.uncertain() { "true" } else { "false" });
    out.push_str(",\"outcomes\":[");
    for (i, o) in scratch.outcomes().iter().enumerate() {
        let RawOutcome {
            verdict,
            rule,
            path,
            xlat,
        } = *o;
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"verdict\":\"");
        out.push_str(Decision::name(verdict));
        out.push_str("\",\"rule\":");
        name(out, rule);
        out.push_str(",\"path\":\"");
        out.push_str(path_name(path));
        out.push_str("\",\"dnat\":");
        push_json_text(out, xlat.dnat_text());
        out.push_str(",\"snat\":");
        push_json_text(out, xlat.snat_text());
        out.push('}');
    }
    out.push_str("]}\n");
}

/// A JSON string (`null` for none).
fn push_json_text(out: &mut String, t: Option<String>) {
    match t {
        Some(t) => out.push_str(&serde_json::to_string(&t).expect("json string")),
        None => out.push_str("null"),
    }
}

/// The batch output line of the packet last traced with `scratch` by
/// `tracer`: `{"verdict", "rule", "uncertain", "outcomes": [{"verdict",
/// "rule", "path", "dnat", "snat"}]}` and a line end, what [`run`] writes
/// for it (without its caches; for tests and single lines).
pub fn line(tracer: &Tracer<'_>, scratch: &TraceScratch) -> String {
    let mut names = FxHashMap::default();
    let mut s = String::new();
    render_line(&mut s, scratch, |o, k| {
        render_name(o, &mut names, tracer, k)
    });
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringfence_model::Ruleset;

    const RULES: &str = "*filter\n:FORWARD DROP [0:0]\n:WEB - [0:0]\n\
        -A FORWARD -i eth+ -p tcp -m tcp --dport 443 -j WEB\n\
        -A FORWARD -p udp -j REJECT\n\
        -A WEB -s 10.0.0.0/8 -j ACCEPT\nCOMMIT\n";

    fn ruleset() -> Ruleset {
        ringfence_parse::parse_ruleset(RULES, "r.rules", ringfence_parse::RulesetFormat::Auto)
            .expect("rules")
    }

    /// Line `i` of a generated batch: even lines accepted, odd ones dropped.
    fn line_of(i: usize) -> String {
        format!(
            "{{\"src\":\"10.{}.{}.1\",\"dst\":\"192.0.2.1\",\"proto\":\"tcp\",\"dport\":{},\"iif\":\"eth0\"}}\n",
            i / 256 % 256,
            i % 256,
            if i.is_multiple_of(2) { 443 } else { 80 }
        )
    }

    fn run_on(
        input: &[u8],
        threads: usize,
        chunk_bytes: usize,
    ) -> Result<(String, bool), BatchError> {
        let rs = ruleset();
        let t = Tracer::new(&rs);
        let mut out = Vec::new();
        let u = run(
            &t,
            Hook::Forward,
            &mut &input[..],
            &mut out,
            Batch {
                threads,
                chunk_bytes,
            },
        )?;
        Ok((String::from_utf8(out).expect("UTF-8 output"), u))
    }

    #[test]
    fn runs_of_every_size_give_one_line_per_packet_in_input_order() {
        let input: String = (0..3000).map(line_of).collect();
        let (want, _) = run_on(input.as_bytes(), 1, 1 << 24).unwrap();
        assert_eq!(want.lines().count(), 3000);
        for (i, l) in want.lines().enumerate() {
            let v = if i.is_multiple_of(2) {
                "\"accept\""
            } else {
                "\"drop\""
            };
            assert!(
                l.starts_with(&format!("{{\"verdict\":{v}")),
                "line {}: {l}",
                i + 1
            );
        }
        // Runs shorter than a line, a few lines, many lines; 1-5 workers.
        for (threads, chunk) in [(1, 1), (3, 7), (2, 100), (5, 1000), (4, 4096)] {
            let (got, u) = run_on(input.as_bytes(), threads, chunk).unwrap();
            assert!(!u);
            assert_eq!(got, want, "{threads} workers, runs of {chunk} bytes");
        }
    }

    #[test]
    fn the_first_bad_line_in_input_order_stops_the_batch_and_is_located() {
        let mut lines: Vec<String> = (0..2000).map(line_of).collect();
        lines[1700] = "{\"src\":\"x\",\"dst\":\"192.0.2.1\",\"proto\":\"tcp\"}\n".into();
        lines[300] = "{\"src\":\"10.0.0.1\",\"dst\":\"y\",\"proto\":\"tcp\"}\n".into();
        let input = lines.concat();
        for (threads, chunk) in [(1, 1 << 20), (3, 50), (2, 4096)] {
            let rs = ruleset();
            let t = Tracer::new(&rs);
            let mut out = Vec::new();
            let e = run(
                &t,
                Hook::Forward,
                &mut input.as_bytes(),
                &mut out,
                Batch {
                    threads,
                    chunk_bytes: chunk,
                },
            )
            .unwrap_err();
            let BatchError::Line { line, column, .. } = e else {
                panic!("expected a line error: {e}");
            };
            let col = lines[300].find("\"y\"").unwrap() as u64 + 2;
            assert_eq!(
                (line, column),
                (301, Some(col)),
                "{threads} workers, runs of {chunk}"
            );
            // Nothing of the bad line or after it is written; what is
            // written is the lines before it, in order.
            let out = String::from_utf8(out).unwrap();
            assert!(out.lines().count() <= 300, "{threads}/{chunk}");
            let (all, _) = run_on(lines[..300].concat().as_bytes(), 1, 1 << 20).unwrap();
            assert!(all.starts_with(&out));
        }
    }

    #[test]
    fn blank_lines_count_and_a_last_line_needs_no_line_end() {
        let input = format!("\n{}  \r\n{}", line_of(0), line_of(1).trim_end());
        for chunk in [1, 3, 1 << 16] {
            let (out, _) = run_on(input.as_bytes(), 2, chunk).unwrap();
            assert_eq!(out.lines().count(), 2, "{out}");
        }
        let input = format!("\n\n{}{{\"src\":1}}\n", line_of(0));
        let Err(BatchError::Line { line, .. }) = run_on(input.as_bytes(), 2, 4) else {
            panic!("expected a line error");
        };
        assert_eq!(line, 4);
    }

    #[test]
    fn invalid_utf8_is_located_by_line_column_and_offset_after_the_lines_before_it() {
        let mut input = (0..50).map(line_of).collect::<String>().into_bytes();
        let at = input.len() + 9;
        input.extend_from_slice(b"{\"src\":\"1\xff0.0.0.1\"}\n");
        input.extend_from_slice(line_of(7).as_bytes());
        for (threads, chunk) in [(1, 1 << 20), (2, 64), (3, 1)] {
            let e = run_on(&input, threads, chunk).unwrap_err();
            let BatchError::NotUtf8 {
                line,
                column,
                offset,
            } = e
            else {
                panic!("expected a UTF-8 error: {e}");
            };
            assert_eq!(
                (line, column, offset),
                (51, 10, at as u64),
                "{threads}/{chunk}"
            );
        }
        // A bad line before the invalid byte is the first error.
        let mut input = b"{\"src\":1}\n".to_vec();
        input.extend_from_slice(b"\xff\n");
        let Err(BatchError::Line { line: 1, .. }) = run_on(&input, 2, 1 << 20) else {
            panic!("expected the line error first");
        };
    }

    #[test]
    fn a_line_without_end_beyond_the_limit_is_an_error_not_a_whole_read() {
        let mut input = line_of(0).into_bytes();
        input.extend(std::iter::repeat_n(b' ', MAX_LINE_BYTES + 10));
        let e = run_on(&input, 2, 1024).unwrap_err();
        assert!(matches!(e, BatchError::LineTooLong { line: 2 }), "{e}");
    }

    #[test]
    fn a_failing_writer_stops_the_batch_with_its_error() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let input: String = (0..5000).map(line_of).collect();
        let rs = ruleset();
        let t = Tracer::new(&rs);
        let e = run(
            &t,
            Hook::Forward,
            &mut input.as_bytes(),
            &mut Broken,
            Batch {
                threads: 2,
                chunk_bytes: 512,
            },
        )
        .unwrap_err();
        assert!(
            matches!(&e, BatchError::Write(w) if w.kind() == std::io::ErrorKind::BrokenPipe),
            "{e}"
        );
    }
}
