//! `ringfence trace`: one packet's verdict and path, or a batch of packets as JSON lines.

use crate::cmd::verify::quote::RuleQuoter;
use crate::exit::{self, CliError};
use clap::{Args as ClapArgs, ValueEnum};
use ringfence_analysis::packet_line::parse_proto;
use ringfence_analysis::space::format_endpoint;
use ringfence_analysis::trace::batch::{self, Batch, BatchError};
use ringfence_analysis::trace::{Decision, Overall, RawOutcome, TraceScratch};
use ringfence_analysis::Tracer;
use ringfence_diag::InputError;
#[cfg(test)]
use ringfence_model::Ruleset;
use ringfence_model::{CtStates, Hook, Packet};
use ringfence_parse::RulesetFormat;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

/// Ruleset formats on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Detect from the content.
    Auto,
    /// iptables-save / ip6tables-save output.
    Iptables,
    /// `nft -j list ruleset`.
    Nft,
    /// nft text: `nft list ruleset` output or an `nft -f` script.
    NftText,
    /// NSX Policy API JSON.
    Nsx,
}

impl From<FormatArg> for RulesetFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Auto => RulesetFormat::Auto,
            FormatArg::Iptables => RulesetFormat::IptablesSave,
            FormatArg::Nft => RulesetFormat::NftJson,
            FormatArg::NftText => RulesetFormat::NftText,
            FormatArg::Nsx => RulesetFormat::NsxJson,
        }
    }
}

/// Hooks a ruleset can be checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HookArg {
    /// Routed traffic.
    Forward,
    /// Traffic to the host.
    Input,
    /// Traffic from the host.
    Output,
}

impl From<HookArg> for Hook {
    fn from(h: HookArg) -> Self {
        match h {
            HookArg::Forward => Hook::Forward,
            HookArg::Input => Hook::Input,
            HookArg::Output => Hook::Output,
        }
    }
}

/// Output formats of `trace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TraceFormat {
    /// Human-readable.
    Text,
    /// One JSON object.
    Json,
}

/// Arguments of `ringfence trace`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The ruleset: iptables-save, nft text or JSON, or NSX export. Repeat
    /// for one ruleset in several files: ip6tables-save beside
    /// iptables-save, `ipset save` output, nft files read in order.
    #[arg(long, value_name = "FILE", required = true)]
    pub ruleset: Vec<PathBuf>,
    /// Format of the ruleset file.
    #[arg(long, value_enum, default_value = "auto")]
    pub ruleset_format: FormatArg,
    /// The path the packet takes, named by its filter hook: forward
    /// (prerouting, forward, postrouting), input (prerouting, input) or
    /// output (output, postrouting); every table's chains on it are walked.
    #[arg(long, value_enum, default_value = "forward")]
    pub hook: HookArg,
    /// The host's own addresses (comma-separated or repeated; loopback is
    /// always one, on `lo`). With them, a packet to one of them takes the
    /// input path and any other the forward path, whatever --hook says
    /// (output stays output), and `-m addrtype --src-type/--dst-type LOCAL`
    /// and nft `fib saddr|daddr type local` are decided. ADDR%IFACE (e.g.
    /// 198.18.0.5%eth0) also names the interface holding the address: tests
    /// limited to one interface (`--limit-iface-in/out`, nft `fib daddr .
    /// iif type local`) are then decided on it (the packet's --iif/--oif).
    /// Without them such tests may or may not match (two outcomes) and
    /// --hook names the path. On a kube-proxy node give its addresses:
    /// its NodePort jump (`-m addrtype --dst-type LOCAL`) is then decided;
    /// without them a packet the NodePort chain may act on has two
    /// outcomes and is walked twice.
    #[arg(long, value_name = "ADDR[%IFACE][,...]", value_delimiter = ',')]
    pub local: Vec<super::verify::HostAddr>,
    /// Source address.
    #[arg(long, required_unless_present = "packets")]
    pub src: Option<IpAddr>,
    /// Destination address.
    #[arg(long, required_unless_present = "packets")]
    pub dst: Option<IpAddr>,
    /// Protocol: tcp, udp, icmp, icmpv6 or a number.
    #[arg(long, required_unless_present = "packets")]
    pub proto: Option<String>,
    /// Source port.
    #[arg(long, default_value_t = 0)]
    pub sport: u16,
    /// Destination port.
    #[arg(long, default_value_t = 0)]
    pub dport: u16,
    /// Input interface name.
    #[arg(long)]
    pub iif: Option<String>,
    /// Output interface name.
    #[arg(long)]
    pub oif: Option<String>,
    /// Batch mode: JSON lines `{"src","dst","proto","sport","dport","iif","oif","from_host"}`;
    /// writes one JSON line per packet, in order, each with "verdict" and
    /// every possible outcome ("outcomes"). A line with `"from_host": true`
    /// starts in OUTPUT (path output) whatever --hook says. `-` reads the
    /// lines from standard input (errors are located as `stdin:LINE:COLUMN`).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["src", "dst", "proto"])]
    pub packets: Option<PathBuf>,
    /// Output format (single packet).
    #[arg(long, value_enum, default_value = "text")]
    pub format: TraceFormat,
    /// The packet mark packets arrive with: `zero` (packets enter the
    /// ruleset with mark 0, and marks set by the ruleset are followed
    /// exactly) or `any` (tc or eBPF may mark packets first: every mark test
    /// may or may not match, and results it touches are unknown).
    #[arg(long, value_enum, default_value = "zero")]
    pub initial_mark: super::verify::InitialMark,
    /// Write the output here (atomically) instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Run `ringfence trace`.
pub fn run(args: Args) -> Result<u8, CliError> {
    let rs = args
        .initial_mark
        .apply(crate::rulesets::load(&args.ruleset, args.ruleset_format)?);
    let local = (!args.local.is_empty()).then(|| {
        ringfence_model::LocalAddrs::on_ifaces(args.local.iter().map(|a| (a.addr, a.iface.clone())))
    });
    let hook: Hook = args.hook.into();
    if let Some(path) = &args.packets {
        let tracer = Tracer::for_host(&rs, local);
        let undecided = run_batch(&tracer, hook, path, args.out.as_deref())?;
        // The process ends here: skip freeing the model and indexes piece by piece.
        std::mem::forget(tracer);
        std::mem::forget(rs);
        return Ok(if undecided {
            exit::FINDINGS
        } else {
            exit::SUCCESS
        });
    }
    let tracer = Tracer::for_one_packet(&rs, local);
    let (src, dst) = (args.src.expect("clap"), args.dst.expect("clap"));
    let proto_s = args.proto.as_deref().expect("clap");
    let protocol = parse_proto(proto_s).ok_or_else(|| {
        CliError::Usage(format!(
            "--proto {proto_s}: expected tcp, udp, icmp, icmpv6, sctp or a number 0-255"
        ))
    })?;
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(CliError::Usage(
            "--src and --dst must be of the same address family".into(),
        ));
    }
    // A connection's opening packet: a TCP SYN, an ICMP echo request.
    let mut packet = Packet {
        src,
        dst,
        protocol,
        sport: args.sport,
        dport: args.dport,
        iif: args.iif.clone(),
        oif: args.oif.clone(),
        ct_state: CtStates::NEW,
        ..Packet::default()
    };
    packet.fill_defaults();
    let mut scratch = TraceScratch::default();
    let hook = tracer.path_for(hook, false, &packet);
    tracer.trace_with(hook, &packet, &mut scratch);
    let (_, keys, _) = tracer.trace_raw(hook, &packet);
    let name = |k: Option<(u32, u32)>| k.map(|k| tracer.rule_ref(k).to_string());
    let overall = scratch.overall();
    let outcomes = scratch.outcomes();
    let out = match args.format {
        TraceFormat::Json => {
            let v = serde_json::json!({
                "verdict": overall.name(),
                "rule": name(scratch.rule()),
                "uncertain": scratch.uncertain(),
                "outcomes": outcomes.iter().map(|o| serde_json::json!({
                    "verdict": o.verdict.name(),
                    "rule": name(o.rule),
                    "path": o.path.to_string(),
                    "dnat": o.xlat.dnat_text(),
                    "snat": o.xlat.snat_text(),
                })).collect::<Vec<_>>(),
                "path": keys.iter().map(|&k| tracer.rule_ref(k).to_string()).collect::<Vec<_>>(),
                "hook": hook.to_string(),
            });
            let mut s = serde_json::to_string_pretty(&v).expect("json");
            s.push('\n');
            s
        }
        TraceFormat::Text => {
            let refs: Vec<String> = outcomes
                .iter()
                .filter_map(|o| name(o.rule))
                .chain(keys.iter().map(|&k| tracer.rule_ref(k).to_string()))
                .collect();
            let q = RuleQuoter::new(&rs, &args.ruleset, refs.iter().map(String::as_str));
            let quoted = |k: Option<(u32, u32)>| {
                k.map(|k| {
                    format!(
                        "{}  ({})",
                        q.quote(&tracer.rule_ref(k).to_string()),
                        rs.chains[k.0 as usize].name
                    )
                })
            };
            let no_chain = format!("no base chain is on the {hook} path, so nothing filters it");
            // A drop no rule decides is routing's: a loopback destination
            // from the network is a martian (route_localnet 0).
            let no_rule = |d: Decision| match d {
                Decision::Drop => "routing drops it as a martian: a loopback destination \
                                   arriving from the network (route_localnet 0)"
                    .to_string(),
                _ => no_chain.clone(),
            };
            let several = outcomes.len() > 1 || overall == Overall::Unknown;
            // Ports only for protocols that have them; IPv6 in brackets.
            let has_ports = matches!(protocol, 6 | 17 | 33 | 132 | 136);
            let end = |a: &IpAddr, port: u16| {
                if has_ports {
                    format_endpoint(&a.to_string(), port)
                } else {
                    a.to_string()
                }
            };
            let mut s = format!(
                "{} {} {} -> {}: {}{}\n",
                hook,
                ringfence_analysis::space::proto_name(protocol),
                end(&src, args.sport),
                end(&dst, args.dport),
                overall.name(),
                match overall {
                    Overall::Depends => format!(
                        " ({} possible outcomes: a rule the model cannot evaluate may or may not match)",
                        outcomes.len()
                    ),
                    Overall::Unknown => {
                        " (a target the model cannot follow decides: anything may happen)".into()
                    }
                    _ if several => format!(" (every one of {} possible outcomes)", outcomes.len()),
                    _ => String::new(),
                }
            );
            if several {
                // Every possible outcome with its deciding rule.
                for o in outcomes {
                    let _ = match quoted(o.rule) {
                        Some(by) => writeln!(
                            s,
                            "  possible: {}{} by {by}{}",
                            o.verdict.name(),
                            rewrite_note(o, hook),
                            match (o.verdict, o.rule) {
                                (Decision::Unknown, Some(k)) => tracer
                                    .unknown_reason(k)
                                    .map(|r| format!("\n    why unknown: {r}"))
                                    .unwrap_or_default(),
                                _ => String::new(),
                            }
                        ),
                        None => writeln!(
                            s,
                            "  possible: {}: {}",
                            o.verdict.name(),
                            no_rule(o.verdict)
                        ),
                    };
                }
                s.push_str("  path where no rule the model cannot evaluate matches:\n");
            } else {
                let _ = match quoted(scratch.rule()) {
                    Some(by) => writeln!(s, "  decided by {by}"),
                    None => match outcomes.first() {
                        Some(o) => writeln!(s, "  decided by no rule: {}", no_rule(o.verdict)),
                        None => writeln!(s, "  decided by no rule: {no_chain}"),
                    },
                };
                if let Some(o) = outcomes.first() {
                    let note = rewrite_note(o, hook);
                    if !note.is_empty() {
                        let _ = writeln!(s, "  outcome:{note}");
                    }
                }
                if !keys.is_empty() {
                    s.push_str("  path:\n");
                }
            }
            // Each step with the chain it is in, so the stages of the path
            // (nat:PREROUTING, FORWARD, ...) can be told apart.
            for &k in &keys {
                let _ = writeln!(s, "    {}", quoted(Some(k)).unwrap_or_default());
            }
            s
        }
    };
    exit::emit(args.out.as_deref(), out.as_bytes())?;
    Ok(exit_status(overall))
}

/// The exit status for a packet's overall verdict: a fate the model cannot
/// decide (unknown, or depending on a match it cannot evaluate) is a
/// finding, exit 1, like verify's unknown flows and possible excess.
fn exit_status(overall: Overall) -> u8 {
    match overall {
        Overall::Unknown | Overall::Depends => exit::FINDINGS,
        Overall::Accept | Overall::Drop | Overall::Reject => exit::SUCCESS,
    }
}

/// The packet lines of `--packets PATH`, the name errors give them and
/// what the input is called: `-` is standard input (read through
/// `/dev/stdin`). The lines are read as a stream (see
/// [`ringfence_analysis::trace::batch`]), so their size is not limited.
fn open_packets(
    path: &std::path::Path,
) -> Result<(std::fs::File, String, &'static str), InputError> {
    let (file, name, what) = if path.as_os_str() == "-" {
        (
            std::path::Path::new("/dev/stdin"),
            "stdin".to_string(),
            "packet input",
        )
    } else {
        (path, path.display().to_string(), "packet file")
    };
    let cannot = |e: std::io::Error| {
        let help = match e.kind() {
            std::io::ErrorKind::NotFound => "check the path",
            std::io::ErrorKind::PermissionDenied => "check the file's permissions",
            _ => "check that the path names a readable regular file",
        };
        InputError::whole(&name, format!("cannot read {what}: {e}")).with_help(help)
    };
    let f = std::fs::File::open(file).map_err(cannot)?;
    if f.metadata().map_err(cannot)?.is_dir() {
        return Err(
            InputError::whole(&name, format!("cannot read {what}: it is a directory"))
                .with_help("name a file, not a directory"),
        );
    }
    Ok((f, name, what))
}

/// `trace --packets`: every packet line traced, one output line each, in
/// order, streamed to stdout or (atomically) to `out`. Returns whether some
/// packet's fate is undecided.
fn run_batch(
    tracer: &Tracer<'_>,
    hook: Hook,
    packets: &std::path::Path,
    out: Option<&std::path::Path>,
) -> Result<bool, CliError> {
    let (mut input, name, what) = open_packets(packets)?;
    let opts = Batch::default();
    match out {
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            match batch::run(tracer, hook, &mut input, &mut lock, opts) {
                Ok(u) => Ok(u),
                // A closed pipe (`| head`) is not an error.
                Err(BatchError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    Ok(false)
                }
                Err(e) => Err(located(e, &name, what)),
            }
        }
        Some(path) => {
            let mut file = ringfence_diag::AtomicFile::create(path)
                .map_err(|e| CliError::Io(format!("writing {}: {e}", path.display())))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 16, file.file());
            let u = batch::run(tracer, hook, &mut input, &mut w, opts)
                .map_err(|e| located(e, &name, what))?;
            w.flush()
                .map_err(|e| CliError::Io(format!("writing {}: {e}", path.display())))?;
            drop(w);
            file.commit()
                .map_err(|e| CliError::Io(format!("writing {}: {e}", path.display())))?;
            Ok(u)
        }
    }
}

/// A batch error as the CLI reports it, located in the packet file `name`
/// (`what` names it in messages).
fn located(e: BatchError, name: &str, what: &str) -> CliError {
    match e {
        BatchError::Line {
            line,
            column: Some(c),
            message,
        } => InputError::at(name, line, c, message).into(),
        BatchError::Line {
            line,
            column: None,
            message,
        } => InputError::at_line(name, line, message).into(),
        BatchError::NotUtf8 {
            line,
            column,
            offset,
        } => InputError::at(
            name,
            line,
            column,
            format!("{what} is not UTF-8 text (invalid byte at offset {offset})"),
        )
        .with_help("save it as UTF-8")
        .into(),
        BatchError::LineTooLong { line } => InputError::at_line(
            name,
            line,
            format!(
                "line longer than {} bytes: expected one JSON object per line",
                batch::MAX_LINE_BYTES
            ),
        )
        .with_help("check that this is a JSON-lines packet file")
        .into(),
        BatchError::Read(e) => InputError::whole(name, format!("cannot read {what}: {e}"))
            .with_help("check that the path names a readable file")
            .into(),
        BatchError::Write(e) => CliError::Io(format!("writing the trace output: {e}")),
    }
}

/// What the text output says of an outcome's rewrites and path: empty when
/// it took no translation and the path is the one the packet entered on.
fn rewrite_note(o: &RawOutcome, entered: Hook) -> String {
    let mut parts = Vec::new();
    if o.path != entered {
        parts.push(format!("path {}", o.path));
    }
    if let Some(d) = o.xlat.dnat_text() {
        parts.push(format!("destination rewritten to {d}"));
    }
    match o.xlat.snat {
        Some(ringfence_analysis::trace::SnatTo::Masquerade) => {
            parts.push("source masqueraded".to_string())
        }
        Some(s) => parts.push(format!("source rewritten to {s}")),
        None => {}
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// Trace every packet line of `text` (named `file` in errors); output
/// lines are in input order. Small runs and three workers, so the tests'
/// batches cross many run boundaries.
#[cfg(test)]
fn batch(tracer: &Tracer<'_>, hook: Hook, text: &str, file: &str) -> Result<String, CliError> {
    let mut out = Vec::new();
    let opts = Batch {
        threads: 3,
        chunk_bytes: 4096,
    };
    batch::run(tracer, hook, &mut text.as_bytes(), &mut out, opts)
        .map_err(|e| located(e, file, "the packet lines"))?;
    Ok(String::from_utf8(out).expect("UTF-8 output"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RULES: &str = "*filter\n:FORWARD DROP [0:0]\n:WEB - [0:0]\n\
        -A FORWARD -i eth+ -p tcp -m tcp --dport 443 -j WEB\n\
        -A FORWARD -p udp -j REJECT\n\
        -A WEB -s 10.0.0.0/8 -j ACCEPT\nCOMMIT\n";

    fn tracer_for(text: &str) -> Ruleset {
        ringfence_parse::parse_ruleset(text, "r.rules", RulesetFormat::Auto).unwrap()
    }

    #[test]
    fn batch_writes_one_verdict_line_per_packet_in_order() {
        let rs = tracer_for(RULES);
        let t = Tracer::new(&rs);
        let input = concat!(
            "{\"src\":\"10.1.1.1\",\"dst\":\"192.0.2.1\",\"proto\":\"tcp\",\"sport\":5000,\"dport\":443,\"iif\":\"eth0\",\"oif\":\"eth1\"}\n",
            "\n",
            "{\"src\":\"11.1.1.1\",\"dst\":\"192.0.2.1\",\"proto\":6,\"dport\":443,\"iif\":\"eth0\"}\n",
            "{\"src\":\"10.1.1.1\",\"dst\":\"192.0.2.1\",\"proto\":\"udp\",\"dport\":53}\n",
        );
        let out = batch(&t, Hook::Forward, input, "p.jsonl").unwrap();
        assert_eq!(
            out,
            "{\"verdict\":\"accept\",\"rule\":\"r.rules:6\",\"uncertain\":false,\"outcomes\":[{\"verdict\":\"accept\",\"rule\":\"r.rules:6\",\"path\":\"forward\",\"dnat\":null,\"snat\":null}]}\n\
             {\"verdict\":\"drop\",\"rule\":\"policy of FORWARD\",\"uncertain\":false,\"outcomes\":[{\"verdict\":\"drop\",\"rule\":\"policy of FORWARD\",\"path\":\"forward\",\"dnat\":null,\"snat\":null}]}\n\
             {\"verdict\":\"reject\",\"rule\":\"r.rules:5\",\"uncertain\":false,\"outcomes\":[{\"verdict\":\"reject\",\"rule\":\"r.rules:5\",\"path\":\"forward\",\"dnat\":null,\"snat\":null}]}\n"
        );
    }

    /// A ruleset with a rule the model cannot evaluate in each base chain
    /// kind of case: a random accept before a plain accept, a random drop
    /// before it, a rate-limited log, and a DNAT in nat.
    const BRANCHES: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
        -A PREROUTING -d 10.9.9.9/32 -p tcp -j DNAT --to-destination 10.9.9.10\nCOMMIT\n\
        *filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n\
        -A FORWARD -m limit --limit 5/min -j LOG\n\
        -A FORWARD -s 10.1.0.0/16 -m statistic --mode random --probability 0.5 -j ACCEPT\n\
        -A FORWARD -s 10.2.0.0/16 -m statistic --mode random --probability 0.5 -j DROP\n\
        -A FORWARD -s 10.0.0.0/8 -j ACCEPT\n\
        -A OUTPUT -p udp -j ACCEPT\n\
        COMMIT\n";

    fn batch_lines(input: &str) -> Vec<serde_json::Value> {
        let rs = tracer_for(BRANCHES);
        let t = Tracer::new(&rs);
        batch(&t, Hook::Forward, input, "p.jsonl")
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    #[test]
    fn batch_lists_every_possible_outcome_and_says_depends_when_they_differ() {
        let out = batch_lines(concat!(
            "{\"src\":\"10.1.1.1\",\"dst\":\"192.0.2.1\",\"proto\":\"tcp\",\"dport\":80}\n",
            "{\"src\":\"10.2.1.1\",\"dst\":\"192.0.2.1\",\"proto\":\"tcp\",\"dport\":80}\n",
            "{\"src\":\"10.3.1.1\",\"dst\":\"192.0.2.1\",\"proto\":\"tcp\",\"dport\":80}\n",
            "{\"src\":\"10.3.1.1\",\"dst\":\"10.9.9.9\",\"proto\":\"tcp\",\"dport\":80}\n",
        ));
        // Accepted either way: accept, named by both accepting rules.
        assert_eq!(out[0]["verdict"], "accept");
        assert_eq!(out[0]["uncertain"], false);
        let rules: Vec<&str> = out[0]["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["rule"].as_str().unwrap())
            .collect();
        assert_eq!(rules, ["r.rules:13", "r.rules:15"]);
        assert_eq!(out[0]["rule"], "r.rules:13", "where the branches part");
        // Dropped or accepted: depends, naming the random drop.
        assert_eq!(out[1]["verdict"], "depends");
        assert_eq!(out[1]["uncertain"], true);
        assert_eq!(out[1]["rule"], "r.rules:14");
        let o = out[1]["outcomes"].as_array().unwrap();
        assert_eq!(o.len(), 2);
        assert_eq!(
            o[0],
            serde_json::json!({"verdict": "drop", "rule": "r.rules:14", "path": "forward", "dnat": null, "snat": null})
        );
        assert_eq!(o[1]["verdict"], "accept");
        // The rate-limited LOG changes nothing: one certain outcome.
        assert_eq!(out[2]["verdict"], "accept");
        assert_eq!(out[2]["outcomes"].as_array().unwrap().len(), 1);
        // A DNAT is followed: FORWARD sees the rewritten packet, and the
        // outcome carries where it goes.
        assert_eq!(out[3]["verdict"], "accept");
        assert_eq!(out[3]["uncertain"], false);
        assert_eq!(
            out[3]["outcomes"],
            serde_json::json!([{"verdict": "accept", "rule": "r.rules:15", "path": "forward", "dnat": "10.9.9.10:80", "snat": null}])
        );
    }

    #[test]
    fn a_packet_from_the_host_takes_the_output_path() {
        let out = batch_lines(concat!(
            "{\"src\":\"10.1.1.1\",\"dst\":\"192.0.2.1\",\"proto\":\"udp\",\"dport\":53,\"from_host\":true}\n",
            "{\"src\":\"10.1.1.1\",\"dst\":\"192.0.2.1\",\"proto\":\"tcp\",\"dport\":53,\"from_host\":true}\n",
            "{\"src\":\"10.1.1.1\",\"dst\":\"192.0.2.1\",\"from_host\":false,\"proto\":\"tcp\",\"dport\":53}\n",
            "{\"src\":\"10.1.1.1\",\"dst\":\"192.0.2.1\",\"proto\":\"tcp\",\"from_host\":null}\n",
        ));
        assert_eq!(out[0]["verdict"], "accept");
        assert_eq!(out[0]["outcomes"][0]["path"], "output");
        assert_eq!(out[1]["verdict"], "drop");
        assert_eq!(out[1]["rule"], "policy of OUTPUT");
        assert_eq!(out[2]["outcomes"][0]["path"], "forward");
        assert_eq!(out[3]["outcomes"][0]["path"], "forward");
    }

    /// A NodePort-style accept by address type, a forward accept, drop policies.
    const LOCAL_RULES: &str =
        "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
        -A INPUT -m addrtype --dst-type LOCAL -p tcp --dport 30080 -j ACCEPT\n\
        -A FORWARD -m addrtype ! --dst-type LOCAL -d 198.18.5.0/24 -j ACCEPT\nCOMMIT\n";

    fn local_lines(local: Option<&str>, hook: Hook, input: &str) -> Vec<serde_json::Value> {
        let rs = tracer_for(LOCAL_RULES);
        let t = Tracer::new(&rs);
        let t = match local {
            Some(a) => t.with_local(ringfence_model::LocalAddrs::new([a.parse().unwrap()])),
            None => t,
        };
        batch(&t, hook, input, "p.jsonl")
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    #[test]
    fn local_addresses_choose_input_or_forward_and_decide_addrtype_local() {
        let input = concat!(
            "{\"src\":\"198.18.9.1\",\"dst\":\"198.18.0.1\",\"proto\":\"tcp\",\"dport\":30080}\n",
            "{\"src\":\"198.18.9.1\",\"dst\":\"198.18.0.1\",\"proto\":\"tcp\",\"dport\":22}\n",
            "{\"src\":\"198.18.9.1\",\"dst\":\"198.18.5.7\",\"proto\":\"tcp\",\"dport\":30080}\n",
            "{\"src\":\"198.18.9.1\",\"dst\":\"198.18.6.7\",\"proto\":\"tcp\",\"dport\":30080}\n",
            "{\"src\":\"198.18.0.1\",\"dst\":\"198.18.6.7\",\"proto\":\"tcp\",\"dport\":30080,\"from_host\":true}\n",
        );
        // --hook says forward; the host's address sends the first two to input.
        let out = local_lines(Some("198.18.0.1"), Hook::Forward, input);
        let first = |i: usize| {
            (
                &out[i]["verdict"],
                &out[i]["outcomes"][0]["path"],
                out[i]["outcomes"].as_array().unwrap().len(),
            )
        };
        assert_eq!(first(0), (&json!("accept"), &json!("input"), 1));
        assert_eq!(out[0]["rule"], "r.rules:5");
        assert_eq!(first(1), (&json!("drop"), &json!("input"), 1));
        assert_eq!(out[1]["rule"], "policy of INPUT");
        assert_eq!(first(2), (&json!("accept"), &json!("forward"), 1));
        assert_eq!(first(3), (&json!("drop"), &json!("forward"), 1));
        assert_eq!(first(4), (&json!("accept"), &json!("output"), 1));
        // Without the host's addresses: --hook decides the path and the
        // address type test may or may not match.
        let out = local_lines(None, Hook::Input, input);
        assert_eq!(out[0]["verdict"], "depends");
        assert_eq!(out[0]["outcomes"][0]["path"], "input");
        assert_eq!(out[0]["outcomes"].as_array().unwrap().len(), 2);
        let out = local_lines(None, Hook::Forward, input);
        assert_eq!(out[2]["verdict"], "depends");
    }

    #[test]
    fn ctstate_dnat_and_ctorig_tests_are_decided_for_a_first_packet_with_and_without_translation() {
        let rules = "*nat\n:PREROUTING ACCEPT [0:0]\n\
            -A PREROUTING -d 198.18.10.11/32 -p tcp --dport 8022 -j DNAT --to-destination 198.18.10.12:22\nCOMMIT\n\
            *filter\n:FORWARD DROP [0:0]\n\
            -A FORWARD -m conntrack --ctstate DNAT -j ACCEPT\n\
            -A FORWARD -m conntrack --ctorigdst 198.18.20.0/24 --ctorigdstport 443 -j ACCEPT\n\
            -A FORWARD -m conntrack ! --ctstate DNAT -p udp -j ACCEPT\nCOMMIT\n";
        let rs = tracer_for(rules);
        let t = Tracer::new(&rs);
        let input = concat!(
            "{\"src\":\"198.18.9.1\",\"dst\":\"198.18.10.11\",\"proto\":\"tcp\",\"dport\":80}\n",
            "{\"src\":\"198.18.9.1\",\"dst\":\"198.18.10.11\",\"proto\":\"tcp\",\"dport\":8022}\n",
            "{\"src\":\"198.18.9.1\",\"dst\":\"198.18.20.5\",\"proto\":\"tcp\",\"dport\":443}\n",
            "{\"src\":\"198.18.9.1\",\"dst\":\"198.18.20.5\",\"proto\":\"tcp\",\"dport\":444}\n",
            "{\"src\":\"198.18.9.1\",\"dst\":\"198.18.30.5\",\"proto\":\"udp\",\"dport\":53}\n",
        );
        let out: Vec<serde_json::Value> = batch(&t, Hook::Forward, input, "p.jsonl")
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let one = |i: usize| {
            assert_eq!(
                out[i]["outcomes"].as_array().unwrap().len(),
                1,
                "{}",
                out[i]
            );
            (
                out[i]["verdict"].as_str().unwrap(),
                out[i]["rule"].as_str().unwrap(),
            )
        };
        // Not translated: `--ctstate DNAT` does not match; the policy drops.
        assert_eq!(one(0), ("drop", "policy of FORWARD"));
        // Translated: FORWARD sees the DNAT status and accepts; the
        // outcome carries the rewritten destination.
        assert_eq!(one(1), ("accept", "r.rules:7"));
        assert_eq!(out[1]["outcomes"][0]["dnat"], "198.18.10.12:22");
        assert_eq!(out[1]["outcomes"][0]["snat"], serde_json::Value::Null);
        // The original tuple of a first packet is the packet itself.
        assert_eq!(one(2), ("accept", "r.rules:8"));
        assert_eq!(one(3), ("drop", "policy of FORWARD"));
        assert_eq!(one(4), ("accept", "r.rules:9"));
    }

    #[test]
    fn batch_errors_name_the_line_and_column() {
        let rs = tracer_for(RULES);
        let t = Tracer::new(&rs);
        let input = "{\"src\":\"10.1.1.1\",\"dst\":\"192.0.2.1\",\"proto\":\"tcp\"}\n{\"src\":\"10.1.1.300\",\"dst\":\"192.0.2.1\",\"proto\":\"tcp\"}\n";
        let Err(CliError::Input(e)) = batch(&t, Hook::Forward, input, "p.jsonl") else {
            panic!("expected an input error");
        };
        assert_eq!(e.0[0].position(), "p.jsonl:2:9");
        let input = "{\"src\":\"10.1.1.1\",\"dst\":\"192.0.2.1\",\"proto\":999}\n";
        let Err(CliError::Input(e)) = batch(&t, Hook::Forward, input, "p.jsonl") else {
            panic!("expected an input error");
        };
        assert!(e.0[0].message.contains("above 255"), "{}", e.0[0]);
    }

    #[test]
    fn batch_out_is_written_whole_or_not_at_all_and_leaves_no_temporary_file() {
        let rs = tracer_for(RULES);
        let t = Tracer::new(&rs);
        let d = tempfile::tempdir().unwrap();
        let good = d.path().join("p.jsonl");
        let line = "{\"src\":\"10.1.1.1\",\"dst\":\"192.0.2.1\",\"proto\":\"tcp\",\"dport\":443,\"iif\":\"eth0\"}\n";
        std::fs::write(&good, line.repeat(5000)).unwrap();
        let out = d.path().join("out.jsonl");
        assert!(!run_batch(&t, Hook::Forward, &good, Some(&out)).unwrap());
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text.lines().count(), 5000);
        assert_eq!(
            text,
            batch(&t, Hook::Forward, &line.repeat(5000), "p").unwrap()
        );
        // A bad line late in the input: an error naming it, the earlier
        // output file untouched, no temporary file left.
        let bad = d.path().join("bad.jsonl");
        std::fs::write(&bad, format!("{}{{\"src\":1}}\n", line.repeat(4000))).unwrap();
        let Err(CliError::Input(e)) = run_batch(&t, Hook::Forward, &bad, Some(&out)) else {
            panic!("expected an input error");
        };
        assert!(
            e.0[0].position().ends_with("bad.jsonl:4001:8"),
            "{}",
            e.0[0]
        );
        assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn large_batches_keep_input_order_and_report_the_first_bad_line() {
        let rs = tracer_for(RULES);
        let t = Tracer::new(&rs);
        let line = |i: usize| {
            format!(
                "{{\"src\":\"10.{}.{}.1\",\"dst\":\"192.0.2.1\",\"proto\":\"tcp\",\"dport\":{},\"iif\":\"eth0\"}}\n",
                i / 256 % 256,
                i % 256,
                if i.is_multiple_of(2) { 443 } else { 80 }
            )
        };
        let input: String = (0..20_000).map(line).collect();
        let out = batch(&t, Hook::Forward, &input, "p.jsonl").unwrap();
        let verdicts: Vec<&str> = out.lines().collect();
        assert_eq!(verdicts.len(), 20_000);
        for (i, v) in verdicts.iter().enumerate() {
            let want = if i.is_multiple_of(2) {
                "\"accept\""
            } else {
                "\"drop\""
            };
            assert!(v.contains(want), "line {}: {v}", i + 1);
        }
        // Bad lines in two different runs: the earlier one is reported.
        let mut lines: Vec<String> = (0..20_000).map(line).collect();
        lines[17_000] = "{\"src\":\"x\",\"dst\":\"192.0.2.1\",\"proto\":\"tcp\"}\n".into();
        lines[3_000] = "{\"src\":\"10.0.0.1\",\"dst\":\"y\",\"proto\":\"tcp\"}\n".into();
        let Err(CliError::Input(e)) = batch(&t, Hook::Forward, &lines.concat(), "p.jsonl") else {
            panic!("expected an input error");
        };
        assert_eq!(e.0.len(), 1);
        assert!(e.0[0].position().starts_with("p.jsonl:3001:"), "{}", e.0[0]);
    }
}
