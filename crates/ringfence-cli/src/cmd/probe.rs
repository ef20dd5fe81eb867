//! `ringfence probe`: from this machine, connect to every destination and
//! port of the site flows whose sources include it. Never a general scanner:
//! only destinations of the site's flows are touched.

use crate::exit::{emit, CliError, FINDINGS, SUCCESS};
use clap::{Args as ClapArgs, ValueEnum};
use ringfence_diag::InputError;
use ringfence_lab::live::{self, Expect, LiveResult, Settings, State};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What `--expect` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExpectArg {
    /// Required flows open, negative checks closed.
    Auto,
    /// Every target open.
    Open,
    /// Every target closed.
    Closed,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProbeFormat {
    /// One line per target that is not as expected (or every target with --verbose), then counts.
    Text,
    /// JSON (docs/lab.md).
    Json,
    /// JUnit XML, one test case per target.
    Junit,
}

/// Arguments of `ringfence probe`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The site file (required). There is no --example: probe sends packets
    /// to the addresses of a real site.
    #[arg(long, value_name = "FILE")]
    pub site: Option<PathBuf>,
    /// The zone this machine is in, or `auto` (the zones holding its addresses).
    #[arg(long, default_value = "auto")]
    pub from: String,
    /// Only these flows (comma-separated ids).
    #[arg(long, value_delimiter = ',')]
    pub flows: Option<Vec<String>>,
    /// Probe these destinations instead of the flows' (comma-separated zone
    /// names, IPv4 addresses, CIDRs); every one must lie inside the site's zones.
    #[arg(long, value_delimiter = ',', value_name = "ZONE|ADDR|CIDR")]
    pub to: Option<Vec<String>>,
    /// Probe these ports instead of the flows' (comma-separated ports and
    /// ranges, TCP unless prefixed `udp:`), e.g. `22,udp:53,30000-32767`.
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    pub ports: Option<Vec<String>>,
    /// Judge results: exit 1 when a target is not as expected.
    #[arg(long, value_enum)]
    pub expect: Option<ExpectArg>,
    /// Probes in flight at most: the window starts smaller and grows while
    /// answers come, and shrinks when answers are lost (docs/lab.md).
    #[arg(long, default_value_t = live::DEFAULT_WINDOW)]
    pub concurrency: usize,
    /// A fixed per-attempt timeout in milliseconds, instead of one measured
    /// from round trips (docs/lab.md).
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,
    /// Probe N ports of each port range (both ends included) instead of all.
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
    /// Start at most this many probes per second (0: no limit). The default
    /// keeps clear of the flood protection of firewalls in a real path.
    #[arg(long, default_value_t = live::DEFAULT_RATE)]
    pub rate: u32,
    /// Try a probe that got no answer this many more times (a busy host can
    /// answer late); only then is it filtered (or open|filtered).
    #[arg(long, default_value_t = live::DEFAULT_RETRIES)]
    pub retries: u8,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ProbeFormat,
    /// Write the report here (atomically) instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Text report: every target.
    #[arg(long)]
    pub verbose: bool,
}

fn line(r: &LiveResult) -> String {
    let t = &r.target;
    format!(
        "{}{} {} -> {} {}/{}: {}{}",
        match r.ok {
            Some(false) => "UNEXPECTED ",
            _ => "",
        },
        t.flow,
        t.src,
        t.dst,
        match t.proto {
            ringfence_lab::site_lab::Proto::Tcp => "tcp",
            ringfence_lab::site_lab::Proto::Udp => "udp",
        },
        t.port,
        r.state.as_str(),
        if t.required {
            " (required)"
        } else {
            " (negative check)"
        }
    )
}

/// Progress on stderr (only on a terminal, and only once a run has taken
/// longer than [`Progress::QUIET_FOR`]): probes done, open / closed /
/// filtered so far, and the rate, as nmap's `--stats-every` shows.
#[derive(Clone)]
struct Progress {
    bar: indicatif::ProgressBar,
    start: std::time::Instant,
    terminal: bool,
}

impl Progress {
    /// Runs shorter than this print no progress at all.
    const QUIET_FOR: Duration = Duration::from_secs(1);

    fn new(total: usize, terminal: bool) -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total as u64),
            indicatif::ProgressDrawTarget::hidden(),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template("[{bar:30}] {msg}").expect("valid template"),
        );
        Progress {
            bar,
            start: std::time::Instant::now(),
            terminal,
        }
    }

    fn update(&self, t: live::Tally) {
        let elapsed = self.start.elapsed();
        if self.terminal && self.bar.is_hidden() && elapsed >= Self::QUIET_FOR {
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        self.bar.set_position(t.done as u64);
        self.bar.set_message(progress_line(t, elapsed));
    }
}

/// `1,024/55,380 probes: 40 open, 980 closed, 4 filtered; 9,800/s`
/// (filtered counts every probe that got no answer, UDP's open|filtered too).
fn progress_line(t: live::Tally, elapsed: Duration) -> String {
    let rate = if elapsed.as_secs_f64() > 0.0 {
        (t.done as f64 / elapsed.as_secs_f64()).round() as usize
    } else {
        0
    };
    format!(
        "{}/{} probes: {} open, {} closed, {} filtered; {}/s",
        grouped(t.done),
        grouped(t.total),
        grouped(t.connected),
        grouped(t.refused),
        grouped(t.silent),
        grouped(rate)
    )
}

/// What the engine measured, for `--verbose`: the round trips and timeouts
/// across destination hosts, retries, answers that came only on a retry,
/// and how the window moved.
fn timing_line(s: &ringfence_lab::EngineStats) -> String {
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let srtts: Vec<Duration> = s.hosts.iter().filter_map(|h| h.srtt).collect();
    let timeouts: Vec<Duration> = s.hosts.iter().map(|h| h.timeout).collect();
    let span = |v: &[Duration]| match (v.iter().min(), v.iter().max()) {
        (Some(lo), Some(hi)) if lo == hi => ms(*lo),
        (Some(lo), Some(hi)) => format!("{}-{}", ms(*lo), ms(*hi)),
        _ => "none".to_string(),
    };
    format!(
        "timing: {} hosts ({} answered), srtt {}, timeout now {}; {} retries, {} answers only on a retry; window {} (low {}, high {}, shrank {} times)",
        grouped(s.hosts.len()),
        grouped(srtts.len()),
        span(&srtts),
        span(&timeouts),
        grouped(s.retries as usize),
        grouped(s.late_answers as usize),
        grouped(s.window_start),
        grouped(s.window_low),
        grouped(s.window_high),
        s.shrinks
    )
}

/// A count with thousands separators.
fn grouped(n: usize) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// What probe says without `--site`.
const NO_SITE: &str = "no site given: pass --site FILE, the site whose flows to probe (probe connects to the site's real addresses, so unlike verify, generate, flows, report and lab it takes no --example for the embedded example site)";

/// Run the command.
pub fn run(a: Args) -> Result<u8, CliError> {
    let Some(site_path) = &a.site else {
        return Err(CliError::Usage(NO_SITE.into()));
    };
    let site_name = site_path.display().to_string();
    let site = ringfence_site::load_site_file(site_path)?;
    let resolved = site.resolve();
    if let Some(flows) = &a.flows {
        for f in flows {
            if resolved.flow(f).is_none() {
                let ids: Vec<&str> = resolved.flows.iter().map(|f| f.id.as_str()).collect();
                let mut e = InputError::whole(
                    site_name.clone(),
                    format!("--flows: no flow `{f}` applies to this site"),
                );
                e = match ringfence_diag::closest(f, ids.iter().copied()) {
                    Some(c) => e.with_help(format!("did you mean `{c}`?")),
                    None => e.with_help(format!("flows of this site: {}", ids.join(", "))),
                };
                return Err(e.into());
            }
        }
    }
    // Every argument is checked before anything touches the network.
    let item_err = |arg: &str, e: live::ItemError| {
        let help = e.help.clone();
        let mut err = InputError::whole(arg.to_string(), e.to_string());
        if let Some(h) = help {
            err = err.with_help(h);
        }
        CliError::from(err)
    };
    let to = match &a.to {
        Some(items) => Some(live::resolve_to(items, &site.zones).map_err(|e| item_err("--to", e))?),
        None => None,
    };
    let ports = match &a.ports {
        Some(items) => Some(live::parse_ports(items).map_err(|e| item_err("--ports", e))?),
        None => None,
    };
    let local =
        live::local_addrs().map_err(|e| CliError::Io(format!("reading local addresses: {e}")))?;
    let zone = (a.from != "auto").then_some(a.from.as_str());
    if let Some(z) = zone {
        if !site.zones.contains_key(z) {
            let mut e = InputError::whole(
                site_name.clone(),
                format!("--from: the site has no zone `{z}`"),
            );
            if let Some(c) = ringfence_diag::closest(z, site.zones.keys().map(String::as_str)) {
                e = e.with_help(format!("did you mean `{c}`?"));
            }
            return Err(e.into());
        }
    }
    let srcs = live::addrs_in_zone(&site.zones, zone, &local);
    if srcs.is_empty() {
        return Err(CliError::Usage(format!(
            "none of this machine's addresses ({}) lies in {}; run probe from a host of the site, or name the zone with --from",
            local.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "),
            zone.map(|z| format!("zone {z}")).unwrap_or_else(|| "any zone of the site".into())
        )));
    }
    let targets = if to.is_some() || ports.is_some() {
        live::adhoc_targets(
            &resolved,
            &srcs,
            to.as_deref(),
            ports.as_deref(),
            a.flows.as_deref(),
            a.sample,
        )
    } else {
        live::targets(&resolved, &srcs, a.flows.as_deref(), a.sample)
    };
    let progress = Progress::new(targets.len(), std::io::stderr().is_terminal());
    let pbc = progress.clone();
    let expect = a.expect.map(|e| match e {
        ExpectArg::Auto => Expect::Auto,
        ExpectArg::Open => Expect::Open,
        ExpectArg::Closed => Expect::Closed,
    });
    let settings = Settings {
        concurrency: a.concurrency,
        timeout: a.timeout.map(Duration::from_millis),
        rate: a.rate,
        retries: a.retries,
        ..Settings::default()
    };
    let (results, stats) = live::run_measured(
        &resolved,
        targets,
        &settings,
        expect,
        Arc::new(move |t| pbc.update(t)),
    )
    .map_err(CliError::Usage)?;
    progress.bar.finish_and_clear();
    let count = |s: State| results.iter().filter(|r| r.state == s).count();
    let failures = results.iter().filter(|r| r.ok == Some(false)).count();
    let text = match a.format {
        ProbeFormat::Json => {
            // Serialized straight from the results (no intermediate JSON
            // tree): a full NodePort scan has tens of thousands of them.
            #[derive(serde::Serialize)]
            struct Summary {
                probes: usize,
                open: usize,
                closed: usize,
                filtered: usize,
                open_filtered: usize,
                unexpected: usize,
            }
            #[derive(serde::Serialize)]
            struct Report<'a> {
                version: u32,
                site: &'a str,
                from: &'a [std::net::Ipv4Addr],
                summary: Summary,
                results: &'a [LiveResult],
            }
            let rep = Report {
                version: 1,
                site: &site.name,
                from: &srcs,
                summary: Summary {
                    probes: results.len(),
                    open: count(State::Open),
                    closed: count(State::Closed),
                    filtered: count(State::Filtered),
                    open_filtered: count(State::OpenFiltered),
                    unexpected: failures,
                },
                results: &results,
            };
            serde_json::to_string_pretty(&rep).expect("serializes") + "\n"
        }
        ProbeFormat::Junit => {
            use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
            let mut r = Report::new(format!("ringfence probe {}", site.name));
            let mut s = TestSuite::new(format!(
                "probe from {}",
                srcs.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ));
            for x in &results {
                let st = if x.ok == Some(false) {
                    let mut f = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    f.set_message(format!(
                        "{} but expected {}",
                        x.state.as_str(),
                        if x.target.required { "open" } else { "closed" }
                    ));
                    f
                } else {
                    TestCaseStatus::success()
                };
                let mut tc = TestCase::new(line(x), st);
                tc.set_classname(format!("probe.{}", x.target.flow));
                s.add_test_case(tc);
            }
            r.add_test_suite(s);
            r.to_string().expect("JUnit serializes")
        }
        ProbeFormat::Text => {
            let mut out = String::new();
            for r in &results {
                if a.verbose || r.ok == Some(false) {
                    out += &line(r);
                    out.push('\n');
                }
            }
            out += &format!(
                "{} probes: {} open, {} closed, {} filtered, {} open|filtered; {} not as expected\n",
                results.len(),
                count(State::Open),
                count(State::Closed),
                count(State::Filtered),
                count(State::OpenFiltered),
                failures
            );
            if a.verbose {
                out += &timing_line(&stats);
                out.push('\n');
            }
            out
        }
    };
    emit(a.out.as_deref(), text.as_bytes())?;
    Ok(if failures > 0 { FINDINGS } else { SUCCESS })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_counts_states_and_the_rate() {
        let t = live::Tally {
            done: 12_000,
            total: 55_380,
            connected: 40,
            refused: 9_960,
            silent: 2_000,
        };
        assert_eq!(
            progress_line(t, Duration::from_millis(1500)),
            "12,000/55,380 probes: 40 open, 9,960 closed, 2,000 filtered; 8,000/s"
        );
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000_000), "1,000,000");
    }

    #[test]
    fn progress_stays_hidden_off_a_terminal_and_for_the_first_second() {
        let t = live::Tally::default();
        let off = Progress::new(10, false);
        off.update(t);
        assert!(off.bar.is_hidden());
        let quick = Progress::new(10, true);
        quick.update(t);
        assert!(quick.bar.is_hidden(), "shown before a second passed");
    }

    #[test]
    fn the_timing_line_spans_hosts_and_says_how_the_window_moved() {
        let host = |n: u8, srtt: Option<u64>, timeout: u64| ringfence_lab::HostTiming {
            addr: std::net::Ipv4Addr::new(198, 18, 20, n),
            srtt: srtt.map(Duration::from_micros),
            rttvar: None,
            timeout: Duration::from_millis(timeout),
            samples: u64::from(srtt.is_some()),
        };
        let s = ringfence_lab::EngineStats {
            samples: 2,
            late_answers: 1,
            retries: 1_500,
            max_retries_earned: 2,
            window_start: 512,
            window_low: 256,
            window_high: 8_192,
            shrinks: 1,
            hosts: vec![
                host(1, Some(200), 100),
                host(2, Some(3_000), 100),
                host(3, None, 1000),
            ],
        };
        assert_eq!(
            timing_line(&s),
            "timing: 3 hosts (2 answered), srtt 0.2 ms-3.0 ms, timeout now 100.0 ms-1000.0 ms; 1,500 retries, 1 answers only on a retry; window 512 (low 256, high 8,192, shrank 1 times)"
        );
    }
}
