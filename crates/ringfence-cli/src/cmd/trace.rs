//! `ringfence trace`: one packet's verdict and path, or a batch of packets as JSON lines.

use crate::exit::{self, CliError};
use clap::{Args as ClapArgs, ValueEnum};
use ringfence_analysis::trace::TraceScratch;
use ringfence_analysis::Tracer;
use ringfence_diag::InputError;
use ringfence_model::{proto, CtStates, Hook, Packet, Verdict};
#[cfg(test)]
use ringfence_model::Ruleset;
use ringfence_parse::RulesetFormat;
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt::Write as _;
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
    /// Batch mode: JSON lines `{"src","dst","proto","sport","dport","iif","oif"}`;
    /// writes one JSON line per packet, in order, each with "verdict".
    #[arg(long, conflicts_with_all = ["src", "dst", "proto"])]
    pub packets: Option<PathBuf>,
    /// Output format (single packet).
    #[arg(long, value_enum, default_value = "text")]
    pub format: TraceFormat,
    /// Write the output here (atomically) instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Protocol name or number.
pub fn parse_proto(s: &str) -> Option<u8> {
    // Case-insensitive names without a lowercased copy (batch calls this per packet).
    const NAMES: [(&str, u8); 6] = [
        ("tcp", proto::TCP),
        ("udp", proto::UDP),
        ("icmp", proto::ICMP),
        ("icmpv6", proto::ICMPV6),
        ("ipv6-icmp", proto::ICMPV6),
        ("sctp", proto::SCTP),
    ];
    NAMES
        .iter()
        .find(|(name, _)| s.eq_ignore_ascii_case(name))
        .map(|&(_, n)| n)
        .or_else(|| s.parse().ok())
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Accept => "accept",
        Verdict::Drop => "drop",
        Verdict::Reject => "reject",
    }
}

/// Run `ringfence trace`.
pub fn run(args: Args) -> Result<u8, CliError> {
    let rs = crate::rulesets::load(&args.ruleset, args.ruleset_format)?;
    let tracer = Tracer::new(&rs);
    let hook: Hook = args.hook.into();
    if let Some(path) = &args.packets {
        let text = ringfence_diag::read_input(path, &path.display().to_string(), "packet file")?;
        let parts = batch_parts(&tracer, hook, &text, &path.display().to_string())?;
        match args.out.as_deref() {
            // One atomic write of the whole output.
            Some(_) => exit::emit(args.out.as_deref(), parts.concat().as_bytes())?,
            // Stdout: each worker's part in turn, without joining them first.
            None => {
                for part in &parts {
                    exit::emit(None, part.as_bytes())?;
                }
            }
        }
        // The process ends here: skip freeing the model and indexes piece by piece.
        std::mem::forget(tracer);
        std::mem::forget(rs);
        return Ok(exit::SUCCESS);
    }
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
    let packet = Packet {
        src,
        dst,
        protocol,
        sport: args.sport,
        dport: args.dport,
        iif: args.iif.clone(),
        oif: args.oif.clone(),
        ct_state: CtStates::NEW,
    };
    let (verdict, keys, uncertain) = tracer.trace_raw(hook, &packet);
    let r = ringfence_analysis::TraceResult {
        verdict,
        path: keys.iter().map(|&k| tracer.rule_ref(k)).collect(),
        uncertain,
    };
    let out = match args.format {
        TraceFormat::Json => {
            let v = serde_json::json!({
                "verdict": verdict_name(r.verdict),
                "uncertain": r.uncertain,
                "path": r.path.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                "hook": hook.to_string(),
            });
            let mut s = serde_json::to_string_pretty(&v).expect("json");
            s.push('\n');
            s
        }
        TraceFormat::Text => {
            let mut s = format!(
                "{} {} -> {} {}{}: {}{}\n",
                hook,
                src,
                dst,
                ringfence_analysis::space::proto_name(protocol),
                if args.dport != 0 || args.sport != 0 {
                    format!(" sport {} dport {}", args.sport, args.dport)
                } else {
                    String::new()
                },
                verdict_name(r.verdict),
                if r.uncertain {
                    " (uncertain: a rule the model cannot evaluate matched; this assumes it did not)"
                } else {
                    ""
                }
            );
            // Each step with the chain it is in, so the stages of the path
            // (nat:PREROUTING, FORWARD, ...) can be told apart.
            for (p, &(c, _)) in r.path.iter().zip(&keys) {
                let _ = writeln!(s, "  {p}  ({})", rs.chains[c as usize].name);
            }
            s
        }
    };
    exit::emit(args.out.as_deref(), out.as_bytes())?;
    Ok(exit::SUCCESS)
}

/// `"proto"`: a name or a number. A hand-written visitor: serde's untagged
/// enums buffer the value first, which costs a third of batch throughput.
enum ProtoField<'a> {
    Num(u8),
    Name(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for ProtoField<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ProtoField<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a protocol name or a number 0-255")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                u8::try_from(v)
                    .map(ProtoField::Num)
                    .map_err(|_| E::custom(format!("protocol number {v} is above 255")))
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(ProtoField::Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ProtoField::Name(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct PacketLine<'a> {
    #[serde(borrow)]
    src: Cow<'a, str>,
    #[serde(borrow)]
    dst: Cow<'a, str>,
    #[serde(borrow)]
    proto: ProtoField<'a>,
    #[serde(default)]
    sport: u16,
    #[serde(default)]
    dport: u16,
    #[serde(borrow, default)]
    iif: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    oif: Option<Cow<'a, str>>,
}

/// A packet line's fields, borrowed from the line.
struct LineFields<'a> {
    src: Cow<'a, str>,
    dst: Cow<'a, str>,
    proto: ProtoField<'a>,
    sport: u16,
    dport: u16,
    iif: Option<Cow<'a, str>>,
    oif: Option<Cow<'a, str>>,
}

/// Read a packet line of the plain shape every generator writes (one
/// object, known keys once each, strings without escapes, unsigned integers)
/// without serde. Anything else, valid or not, returns `None` and goes through
/// serde_json, which then decides exactly as before (and words the error).
fn quick_fields(line: &str) -> Option<LineFields<'_>> {
    let b = line.as_bytes();
    let mut i = 0;
    let ws = |i: &mut usize| {
        while b
            .get(*i)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            *i += 1;
        }
    };
    // A string without escapes or control characters; `i` at its opening quote.
    let string = |i: &mut usize| -> Option<&str> {
        if b.get(*i) != Some(&b'"') {
            return None;
        }
        let start = *i + 1;
        let len = b[start..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        if b[start + len] != b'"' {
            return None;
        }
        *i = start + len + 1;
        Some(&line[start..start + len])
    };
    // An unsigned JSON integer up to `max`; no sign, fraction, exponent or leading zero.
    let number = |i: &mut usize, max: u32| -> Option<u32> {
        let start = *i;
        let mut v: u32 = 0;
        while let Some(d) = b.get(*i).filter(|c| c.is_ascii_digit()) {
            v = v.checked_mul(10)?.checked_add(u32::from(d - b'0'))?;
            *i += 1;
        }
        let digits = *i - start;
        let bad_next = b.get(*i).is_some_and(|c| matches!(c, b'.' | b'e' | b'E'));
        (digits > 0 && digits <= 6 && !(digits > 1 && b[start] == b'0') && !bad_next && v <= max)
            .then_some(v)
    };
    let mut f = LineFields {
        src: Cow::Borrowed(""),
        dst: Cow::Borrowed(""),
        proto: ProtoField::Num(0),
        sport: 0,
        dport: 0,
        iif: None,
        oif: None,
    };
    let mut seen = 0u8;
    ws(&mut i);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    loop {
        ws(&mut i);
        let key = string(&mut i)?;
        ws(&mut i);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i += 1;
        ws(&mut i);
        let bit = match key {
            "src" => {
                f.src = Cow::Borrowed(string(&mut i)?);
                1
            }
            "dst" => {
                f.dst = Cow::Borrowed(string(&mut i)?);
                2
            }
            "proto" => {
                f.proto = if b.get(i) == Some(&b'"') {
                    ProtoField::Name(Cow::Borrowed(string(&mut i)?))
                } else {
                    ProtoField::Num(number(&mut i, 255)? as u8)
                };
                4
            }
            "sport" => {
                f.sport = number(&mut i, 65535)? as u16;
                8
            }
            "dport" => {
                f.dport = number(&mut i, 65535)? as u16;
                16
            }
            "iif" => {
                f.iif = Some(Cow::Borrowed(string(&mut i)?));
                32
            }
            "oif" => {
                f.oif = Some(Cow::Borrowed(string(&mut i)?));
                64
            }
            _ => return None,
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        ws(&mut i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {
                i += 1;
                break;
            }
            _ => return None,
        }
    }
    ws(&mut i);
    (i == b.len() && seen & 7 == 7).then_some(f)
}

/// A dotted quad in the plain form (`0`-`255`, no leading zeros); `None`
/// sends anything else to the standard parser, which accepts a superset.
fn quick_ipv4(s: &str) -> Option<IpAddr> {
    let b = s.as_bytes();
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (k, o) in octets.iter_mut().enumerate() {
        if k > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut v: u16 = 0;
        while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if i - start == 3 {
                return None;
            }
            v = v * 10 + u16::from(c - b'0');
            i += 1;
        }
        let len = i - start;
        if len == 0 || (len > 1 && b[start] == b'0') {
            return None;
        }
        *o = u8::try_from(v).ok()?;
    }
    (i == b.len()).then_some(IpAddr::from(octets))
}

fn parse_line(line: &str, file: &str, lineno: u64, out: &mut Packet) -> Result<(), InputError> {
    let pl = match quick_fields(line) {
        Some(f) => f,
        None => {
            let pl: PacketLine = serde_json::from_str(line).map_err(|e| {
                InputError::at(
                    file,
                    lineno,
                    e.column() as u64,
                    format!(
                        "packet line: {e}; expected {{\"src\", \"dst\", \"proto\", \"sport\", \"dport\", \"iif\", \"oif\"}}"
                    ),
                )
            })?;
            LineFields {
                src: pl.src,
                dst: pl.dst,
                proto: pl.proto,
                sport: pl.sport,
                dport: pl.dport,
                iif: pl.iif,
                oif: pl.oif,
            }
        }
    };
    let addr = |s: &str, what: &str| -> Result<IpAddr, InputError> {
        if let Some(a) = quick_ipv4(s) {
            return Ok(a);
        }
        s.parse().map_err(|_| {
            InputError::at(
                file,
                lineno,
                line.find(s).map(|c| c as u64 + 1).unwrap_or(1),
                format!("\"{what}\": `{s}` is not an IP address"),
            )
        })
    };
    let src = addr(&pl.src, "src")?;
    let dst = addr(&pl.dst, "dst")?;
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(InputError::at_line(
            file,
            lineno,
            "\"src\" and \"dst\" are of different address families: expected both IPv4 or both IPv6",
        ));
    }
    let protocol = match pl.proto {
        ProtoField::Num(n) => n,
        ProtoField::Name(n) => parse_proto(&n).ok_or_else(|| {
            InputError::at(
                file,
                lineno,
                line.find("\"proto\"").map(|c| c as u64 + 1).unwrap_or(1),
                format!("\"proto\": `{n}`: expected tcp, udp, icmp, icmpv6, sctp or a number"),
            )
        })?,
    };
    out.src = src;
    out.dst = dst;
    out.protocol = protocol;
    out.sport = pl.sport;
    out.dport = pl.dport;
    out.ct_state = CtStates::NEW;
    // Reuse the interface strings' buffers from the previous packet.
    for (slot, v) in [(&mut out.iif, pl.iif), (&mut out.oif, pl.oif)] {
        match (slot.as_mut(), v) {
            (Some(s), Some(v)) => {
                s.clear();
                s.push_str(&v);
            }
            (None, Some(v)) => *slot = Some(v.into_owned()),
            (_, None) => *slot = None,
        }
    }
    Ok(())
}

/// A cheap hasher for `(chain, rule)` keys of the rendered-name cache (SipHash
/// showed in batch profiles; the keys are not attacker-chosen in a way that
/// matters: the worst case is a slower cache).
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u32(u32::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(n)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type KeyHash = std::hash::BuildHasherDefault<KeyHasher>;

fn batch_chunk(
    tracer: &Tracer<'_>,
    hook: Hook,
    lines: &[(u64, &str)],
    file: &str,
) -> Result<String, InputError> {
    // Generous: untouched capacity costs no memory, a regrowth copies it all.
    let mut out = String::with_capacity(lines.len() * 128);
    // Rendered rule references, per deciding rule (few distinct ones).
    let mut names: std::collections::HashMap<(u32, u32), String, KeyHash> =
        std::collections::HashMap::default();
    let mut scratch = TraceScratch::default();
    let mut p = Packet::new_connection(
        IpAddr::from([0, 0, 0, 0]),
        IpAddr::from([0, 0, 0, 0]),
        0,
        0,
        0,
    );
    for &(lineno, line) in lines {
        parse_line(line, file, lineno, &mut p)?;
        let (verdict, last, uncertain) = tracer.trace_with(hook, &p, &mut scratch);
        out.push_str("{\"verdict\":\"");
        out.push_str(verdict_name(verdict));
        out.push_str("\",\"rule\":");
        match last {
            Some(k) => {
                let name = names.entry(k).or_insert_with(|| {
                    serde_json::to_string(&tracer.rule_ref(k).to_string()).expect("json string")
                });
                out.push_str(name);
            }
            None => out.push_str("null"),
        }
        out.push_str(",\"uncertain\":");
        out.push_str(if uncertain { "true" } else { "false" });
        out.push_str("}\n");
    }
    Ok(out)
}

/// Trace every packet line of `text`; output lines are in input order.
#[cfg(test)]
fn batch(tracer: &Tracer<'_>, hook: Hook, text: &str, file: &str) -> Result<String, CliError> {
    Ok(batch_parts(tracer, hook, text, file)?.concat())
}

/// Trace every packet line of `text`: the output lines, in input order, as
/// consecutive parts (one per worker thread) to be written one after another.
pub fn batch_parts(
    tracer: &Tracer<'_>,
    hook: Hook,
    text: &str,
    file: &str,
) -> Result<Vec<String>, CliError> {
    let lines: Vec<(u64, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i as u64 + 1, l))
        .collect();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    if lines.len() < 4096 || threads == 1 {
        return Ok(vec![batch_chunk(tracer, hook, &lines, file)?]);
    }
    // Many small runs handed out from a counter, not one half per thread: on
    // a shared machine a descheduled thread then delays one run, not half
    // the batch. Runs are put back in input order.
    let runs = (threads * 8).min(lines.len().div_ceil(1024));
    let pieces: Vec<&[(u64, &str)]> = lines.chunks(lines.len().div_ceil(runs)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut done: Vec<(usize, Result<String, InputError>)> = Vec::new();
        loop {
            let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(piece) = pieces.get(k) else {
                return done;
            };
            let r = batch_chunk(tracer, hook, piece, file);
            let failed = r.is_err();
            done.push((k, r));
            if failed {
                // Later runs cannot hold the first error: stop taking them.
                return done;
            }
        }
    };
    let mut parts: Vec<(usize, Result<String, InputError>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads).map(|_| s.spawn(work)).collect();
        let mut all = work();
        for h in handles {
            all.extend(h.join().expect("trace worker panicked"));
        }
        all
    });
    parts.sort_unstable_by_key(|(k, _)| *k);
    let mut out = Vec::with_capacity(parts.len());
    for (_, part) in parts {
        // The first error in input order; runs missing after it were never taken.
        out.push(part?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "{\"verdict\":\"accept\",\"rule\":\"r.rules:6\",\"uncertain\":false}\n\
             {\"verdict\":\"drop\",\"rule\":\"policy of FORWARD\",\"uncertain\":false}\n\
             {\"verdict\":\"reject\",\"rule\":\"r.rules:5\",\"uncertain\":false}\n"
        );
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

    /// The serde reading of a line, as (src, dst, proto, sport, dport, iif, oif).
    type Fields = (
        String,
        String,
        String,
        u16,
        u16,
        Option<String>,
        Option<String>,
    );

    fn fields(f: LineFields<'_>) -> Fields {
        let proto = match f.proto {
            ProtoField::Num(n) => format!("#{n}"),
            ProtoField::Name(n) => n.into_owned(),
        };
        (
            f.src.into_owned(),
            f.dst.into_owned(),
            proto,
            f.sport,
            f.dport,
            f.iif.map(Cow::into_owned),
            f.oif.map(Cow::into_owned),
        )
    }

    fn serde_fields(line: &str) -> Option<Fields> {
        let pl: PacketLine = serde_json::from_str(line).ok()?;
        Some(fields(LineFields {
            src: pl.src,
            dst: pl.dst,
            proto: pl.proto,
            sport: pl.sport,
            dport: pl.dport,
            iif: pl.iif,
            oif: pl.oif,
        }))
    }

    #[test]
    fn quick_line_reader_agrees_with_serde_or_defers_to_it() {
        let lines = [
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","sport":5000,"dport":443,"iif":"eth0","oif":"eth1"}"#,
            r#" { "dport" : 0 , "proto":6,"dst":"::1","src":"::2" } "#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":255,"sport":65535}"#,
            // Valid JSON the quick reader leaves to serde.
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","iif":null}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","extra":[1,2]}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.\u0031","proto":"tcp"}"#,
            // Invalid: serde must see them to word the error.
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","dport":65536}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":256}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","dport":080}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","dport":80.0}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","dport":-1}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp","src":"10.0.0.1"}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1"}"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp"} x"#,
            r#"{"src":"10.1.1.1","dst":"192.0.2.1","proto":"tcp",}"#,
            "{\"src\":\"10.1.1.1\t\",\"dst\":\"192.0.2.1\",\"proto\":\"tcp\"}",
            r#"{}"#,
            r#"[]"#,
        ];
        let mut quick = 0;
        for line in lines {
            if let Some(f) = quick_fields(line) {
                quick += 1;
                assert_eq!(Some(fields(f)), serde_fields(line), "{line}");
            }
        }
        assert_eq!(quick, 3, "the three plain lines take the quick path");
    }

    #[test]
    fn quick_ipv4_accepts_only_what_the_standard_parser_accepts_alike() {
        let samples = [
            "0.0.0.0",
            "10.1.1.1",
            "255.255.255.255",
            "256.1.1.1",
            "01.1.1.1",
            "1.1.1",
            "1.1.1.1.1",
            "1..1.1",
            "1.1.1.1 ",
            "",
            "1.1.1.0001",
            "a.b.c.d",
            "::1",
            "1.2.3.04",
            "100.200.250.199",
        ];
        for s in samples {
            if let Some(a) = quick_ipv4(s) {
                assert_eq!(Some(a), s.parse::<IpAddr>().ok(), "{s}");
            }
        }
        for a in [0u32, 1, 0x0a00_0001, 0xc000_0201, 0xffff_ffff, 0x7f00_0001] {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(a));
            assert_eq!(quick_ipv4(&ip.to_string()), Some(ip));
        }
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

    #[test]
    fn protocol_names_are_case_insensitive_and_numbers_pass_through() {
        for (s, want) in [
            ("tcp", Some(6)),
            ("TCP", Some(6)),
            ("Udp", Some(17)),
            ("ICMP", Some(1)),
            ("icmpV6", Some(58)),
            ("IPv6-ICMP", Some(58)),
            ("sctp", Some(132)),
            ("47", Some(47)),
            ("255", Some(255)),
            ("256", None),
            ("tcpx", None),
            ("", None),
        ] {
            assert_eq!(parse_proto(s), want, "{s}");
        }
    }
}
