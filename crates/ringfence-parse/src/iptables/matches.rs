//! iptables match options, read into a [`RuleBuilder`]: addresses (`-s`,
//! `-d`, `-m iprange`), protocols, interfaces, ports (`--sport`/`--dport`,
//! `-m multiport`), conntrack (`--state`/`--ctstate`, `--ctstatus`,
//! `--ctorig*`, `--ctproto`), `-m addrtype`, marks (`-m mark`,
//! `-m connmark`), `-m set` against the ipset files, the fields the model
//! keeps in [`ringfence_model::ExtraFields`] (`--syn` and `--tcp-flags`,
//! `--icmp-type`/`--icmpv6-type`, `-m length`, `-m tos`, `-m dscp`,
//! `-m pkttype`, `-m mac`; see [`read`]), and unknown extensions, which
//! become opaque parts with a note. Once the rule is read, the builder gives
//! its model matches: one per alternative that `-m multiport --ports`,
//! `--ctstate` lists naming SNAT/DNAT, `--ctproto` and set elements split
//! it into.

use super::tokens::{Tok, Words};
use super::{nat, targets, Ctx, Family};
use crate::ipset::{Lowered, SetField, SET_RULE_BUDGET};
use crate::nft::concat::{Part, TBox};
use ringfence_diag::InputError;
use ringfence_model::fields::{icmp_values, masked_bytes, tcp_flag};
use ringfence_model::names;
use ringfence_model::{
    proto, AddrSet, AddrTypes, CtNat, CtStates, IfacePattern, IfaceSet, IntervalSet, MarkField,
    MarkTest, Match, Opaque, ParseNote,
};
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};

/// The options [`read`] takes: those whose fields are in
/// [`ringfence_model::ExtraFields`], and `--ctproto`.
pub(super) const OPTIONS: &[&str] = &[
    "--syn",
    "--tcp-flags",
    "--icmp-type",
    "--icmpv6-type",
    "--length",
    "--tos",
    "--dscp",
    "--dscp-class",
    "--pkt-type",
    "--mac-source",
    "--ctproto",
];

/// Where an option stands in its rule, for reading it and its values.
pub(super) struct At<'a, 't> {
    /// The option's index in the rule's words after `-A CHAIN`.
    pub i: usize,
    /// Whether `!` came before it.
    pub neg: bool,
    /// The `-m` module it follows, if any.
    pub module: Option<&'a str>,
    /// Which `-m conntrack` of the rule it follows (1 for the first).
    pub conntrack: u32,
    /// The rule's words and where they are, for errors.
    pub words: &'a Words<'a, 't>,
}

/// A `--ctproto` test, applied once the whole rule is read (see [`ctproto_split`]).
pub(super) struct CtProto {
    /// The protocols a tracked connection must have (negation applied).
    pub protos: IntervalSet<u8>,
    /// Which `-m conntrack` it came with.
    pub instance: u32,
    /// The option as written, for notes.
    pub text: String,
}

impl At<'_, '_> {
    fn opt(&self) -> &Tok<'_> {
        &self.words.toks[self.i]
    }

    fn err(&self, t: &Tok, msg: String) -> InputError {
        self.words.err(t, msg)
    }

    /// The `k`-th value after the option (1 is the first).
    fn value(&self, k: usize) -> Result<&Tok<'_>, InputError> {
        // No value of these options starts with `-`: that is the next option.
        let found = self
            .words
            .toks
            .get(self.i + 1..=self.i + k)
            .filter(|ts| ts.iter().all(|t| !t.text.starts_with('-') && t.text != "!"))
            .map(|ts| &ts[k - 1]);
        found.ok_or_else(|| {
            InputError::at(
                self.words.file,
                self.words.line,
                self.words.end_col + 1,
                format!(
                    "`{}` needs {} value{}: found the end of the line or the next option",
                    self.opt().text,
                    if k == 1 { "a" } else { "two" },
                    if k == 1 { "" } else { "s" }
                ),
            )
        })
    }

    /// The option is read only after `-m MODULE` for one of `modules`, or
    /// implicitly after `-p PROTO` when `implicit` names that protocol.
    fn require(&self, modules: &[&str], m: &Match, implicit: Option<u8>) -> Result<(), InputError> {
        let by_proto = implicit.is_some_and(|p| m.protocol == IntervalSet::single(p));
        if by_proto || self.module.is_some_and(|x| modules.contains(&x)) {
            return Ok(());
        }
        Err(self.err(
            self.opt(),
            format!(
                "`{}` outside its match module: expected it after `-m {}`",
                self.opt().text,
                modules.join("` or `-m ")
            ),
        ))
    }
}

/// Read the option at `at` into `m` (or, for `--ctproto`, into `ctproto`);
/// returns how many words it took.
pub(super) fn read(
    at: &At<'_, '_>,
    m: &mut Match,
    ctproto: &mut Vec<CtProto>,
) -> Result<usize, InputError> {
    let opt = at.opt().text.as_ref();
    let neg = at.neg;
    match opt {
        "--syn" => {
            at.require(&["tcp"], m, Some(proto::TCP))?;
            let mask = tcp_flag::FIN | tcp_flag::SYN | tcp_flag::RST | tcp_flag::ACK;
            tcp_flags(m, masked_bytes(mask, tcp_flag::SYN, neg));
            Ok(1)
        }
        "--tcp-flags" => {
            at.require(&["tcp"], m, Some(proto::TCP))?;
            let (mt, ct) = (at.value(1)?, at.value(2)?);
            let flags = |t: &Tok| {
                names::tcp_flag_list(&t.text).ok_or_else(|| {
                    at.err(
                        t,
                        format!(
                            "TCP flags `{}`: expected a comma-separated list of SYN, ACK, FIN, RST, URG, PSH, ALL or NONE",
                            t.text
                        ),
                    )
                })
            };
            let (mask, comp) = (flags(mt)?, flags(ct)?);
            tcp_flags(m, masked_bytes(mask, comp & mask, neg));
            Ok(3)
        }
        "--icmp-type" | "--icmpv6-type" => {
            let v6 = opt == "--icmpv6-type";
            let (module, p) = if v6 {
                ("icmp6", proto::ICMPV6)
            } else {
                ("icmp", proto::ICMP)
            };
            at.require(&[module, "icmpv6"], m, Some(p))?;
            let v = at.value(1)?;
            let set = match names::icmp_arg(&v.text, v6).map_err(|e| at.err(v, e))? {
                None => IntervalSet::full(),
                Some((t, c)) => icmp_values(t, c),
            };
            let set = if neg { set.complement() } else { set };
            m.protocol = m.protocol.intersect(&IntervalSet::single(p));
            let x = m.extra_mut();
            x.icmp = x.icmp.intersect(&set);
            m.normalize_extra();
            Ok(2)
        }
        "--length" => {
            at.require(&["length"], m, None)?;
            let v = at.value(1)?;
            let (lo, hi) = range(&v.text).ok_or_else(|| {
                at.err(
                    v,
                    format!(
                        "length `{}`: expected LENGTH or MIN:MAX, each 0-65535",
                        v.text
                    ),
                )
            })?;
            let set = IntervalSet::range(u32::from(lo), u32::from(hi));
            let set = if neg { set.complement() } else { set };
            let x = m.extra_mut();
            x.length = x.length.intersect(&set);
            m.normalize_extra();
            Ok(2)
        }
        "--tos" => {
            at.require(&["tos"], m, None)?;
            let v = at.value(1)?;
            let (value, mask) = tos_arg(&v.text).ok_or_else(|| {
                at.err(
                    v,
                    format!(
                        "TOS `{}`: expected VALUE[/MASK] (numbers 0-255) or a name such as Minimize-Delay",
                        v.text
                    ),
                )
            })?;
            tos(m, masked_bytes(mask, value & mask, neg));
            Ok(2)
        }
        "--dscp" | "--dscp-class" => {
            at.require(&["dscp"], m, None)?;
            let v = at.value(1)?;
            let dscp = if opt == "--dscp" {
                names::number(&v.text).filter(|d| *d <= 63).map(|d| d as u8)
            } else {
                names::dscp_class(&v.text)
            };
            let dscp = dscp.ok_or_else(|| {
                at.err(
                    v,
                    if opt == "--dscp" {
                        format!(
                            "DSCP `{}`: expected a number 0-63 (decimal or 0x hex)",
                            v.text
                        )
                    } else {
                        format!(
                            "DSCP class `{}`: expected CS0-CS7, AF11-AF43, EF or BE",
                            v.text
                        )
                    },
                )
            })?;
            tos(m, masked_bytes(0xfc, dscp << 2, neg));
            Ok(2)
        }
        "--pkt-type" => {
            at.require(&["pkttype"], m, None)?;
            let v = at.value(1)?;
            let t = names::pkttype_name(&v.text).ok_or_else(|| {
                at.err(
                    v,
                    format!(
                        "packet type `{}`: expected unicast, broadcast, multicast or otherhost",
                        v.text
                    ),
                )
            })?;
            let set = IntervalSet::single(t);
            let set = if neg { set.complement() } else { set };
            let x = m.extra_mut();
            x.pkttype = x.pkttype.intersect(&set);
            m.normalize_extra();
            Ok(2)
        }
        "--mac-source" => {
            at.require(&["mac"], m, None)?;
            let v = at.value(1)?;
            let a = names::mac(&v.text).ok_or_else(|| {
                at.err(
                    v,
                    format!(
                        "MAC address `{}`: expected six hex bytes such as 00:11:22:33:44:55",
                        v.text
                    ),
                )
            })?;
            let set = IntervalSet::single(a);
            let set = if neg {
                set.complement()
                    .intersect(&ringfence_model::fields::all_macs())
            } else {
                set
            };
            let x = m.extra_mut();
            x.mac_src = x.mac_src.intersect(&set);
            m.normalize_extra();
            Ok(2)
        }
        "--ctproto" => {
            at.require(&["conntrack"], m, None)?;
            let v = at.value(1)?;
            let set = parse_protocol(&v.text).ok_or_else(|| {
                at.err(
                    v,
                    format!(
                        "unknown protocol `{}`: expected tcp, udp, icmp, icmpv6, sctp, all or a number 0-255",
                        v.text
                    ),
                )
            })?;
            ctproto.push(CtProto {
                protos: if neg { set.complement() } else { set },
                instance: at.conntrack,
                text: format!("{}--ctproto {}", if neg { "! " } else { "" }, v.text),
            });
            Ok(2)
        }
        other => unreachable!("`{other}` is not in OPTIONS"),
    }
}

fn tcp_flags(m: &mut Match, set: IntervalSet<u8>) {
    m.protocol = m.protocol.intersect(&IntervalSet::single(proto::TCP));
    let x = m.extra_mut();
    x.tcp_flags = x.tcp_flags.intersect(&set);
    m.normalize_extra();
}

fn tos(m: &mut Match, set: IntervalSet<u8>) {
    let x = m.extra_mut();
    x.tos = x.tos.intersect(&set);
    m.normalize_extra();
}

/// `N` or `MIN:MAX` (either end may be left out), each a u16.
fn range(text: &str) -> Option<(u16, u16)> {
    let (a, b) = match text.split_once(':') {
        Some((a, b)) => (a, b),
        None => (text, text),
    };
    let lo = if a.is_empty() { 0 } else { a.parse().ok()? };
    let hi = if b.is_empty() {
        u16::MAX
    } else {
        b.parse().ok()?
    };
    (lo <= hi).then_some((lo, hi))
}

/// `--tos VALUE[/MASK]` (mask 0xff by default) or a TOS name (mask 0x3f).
fn tos_arg(text: &str) -> Option<(u8, u8)> {
    if let Some(v) = names::tos_name(text) {
        return Some((v, 0x3f));
    }
    let (v, mk) = match text.split_once('/') {
        Some((v, mk)) => (v, Some(mk)),
        None => (text, None),
    };
    let byte = |s: &str| names::number(s).filter(|n| *n <= 255).map(|n| n as u8);
    Some((byte(v)?, mk.map(byte).unwrap_or(Some(0xff))?))
}

/// Apply the rule's `--ctproto` tests to its match, as alternatives that
/// conntrack states keep apart. A tracked connection (NEW, ESTABLISHED)
/// has the packet's protocol, and so does a RELATED packet that is not an
/// ICMP error; an ICMP or ICMPv6 RELATED packet carries an error about a
/// connection whose protocol the packet does not show, so there the test
/// may or may not match. A packet without a connection (INVALID,
/// UNTRACKED) passes a `-m conntrack` that also tests `--ctstate` and fails
/// one that does not (the kernel's xt_conntrack stops after the state test
/// when there is no connection).
pub(super) fn ctproto_split(m: Match, tests: &[CtProto], ctstate_in: &[u32]) -> Vec<Match> {
    let original = m.clone();
    let mut alts = vec![m];
    let icmps =
        IntervalSet::from_ranges([(proto::ICMP, proto::ICMP), (proto::ICMPV6, proto::ICMPV6)]);
    for t in tests {
        let mut next = Vec::new();
        for m in alts {
            let mut tracked = m.clone();
            tracked.ct_state = CtStates(m.ct_state.0 & (CtStates::NEW | CtStates::ESTABLISHED));
            tracked.protocol = m.protocol.intersect(&t.protos);
            next.push(tracked);
            let mut related = m.clone();
            related.ct_state = CtStates(m.ct_state.0 & CtStates::RELATED);
            related.protocol = m.protocol.intersect(&t.protos).difference(&icmps);
            next.push(related);
            let mut error = m.clone();
            error.ct_state = CtStates(m.ct_state.0 & CtStates::RELATED);
            error.protocol = m.protocol.intersect(&icmps);
            error.opaque.push(Opaque {
                text: format!(
                    "{} (on an ICMP error, the protocol of the connection it is about)",
                    t.text
                ),
            });
            next.push(error);
            if ctstate_in.contains(&t.instance) {
                let mut untracked = m.clone();
                untracked.ct_state =
                    CtStates(m.ct_state.0 & (CtStates::INVALID | CtStates::UNTRACKED));
                next.push(untracked);
            }
        }
        alts = next.into_iter().filter(|m| !m.is_empty()).collect();
    }
    if alts.is_empty() {
        // Nothing can match: keep the rule, matching no packet.
        let mut m = original;
        m.protocol = IntervalSet::empty();
        alts.push(m);
    }
    alts
}
/// Options that end an unknown match extension's argument list.
fn is_core_option(s: &str) -> bool {
    matches!(
        s,
        "-m" | "--match"
            | "-j"
            | "--jump"
            | "-g"
            | "--goto"
            | "-s"
            | "--source"
            | "-d"
            | "--destination"
            | "-p"
            | "--protocol"
            | "-i"
            | "--in-interface"
            | "-o"
            | "--out-interface"
            | "-f"
            | "--fragment"
    )
}

/// A rule's matches as its options are read, and what is applied once
/// the whole rule is read.
pub(super) struct RuleBuilder<'t> {
    /// The fields read so far.
    pub m: Match,
    /// `--ctstate` lists naming SNAT/DNAT: disjoint alternatives of
    /// (states, translations), one model rule each.
    ct_alts: Option<Vec<(u8, CtNat)>>,
    /// A conntrack match (`-m conntrack`) named a state that has no
    /// connection (INVALID, UNTRACKED) beside a test on the connection:
    /// the kernel then skips the connection tests for such packets.
    ct_stateless_ok: bool,
    /// `-m multiport --ports`: split into a source-port rule and a destination-port rule.
    pub either_ports: Option<IntervalSet<u16>>,
    /// `-m set [!] --match-set NAME FLAGS`, read against the ipset files.
    pub sets: Vec<SetCond>,
    /// `-m conntrack [!] --ctproto P`: applied once the rule is read.
    ctproto: Vec<CtProto>,
    /// The `-m conntrack` instances (numbered from 1) that test `--ctstate`.
    ctstate_in: Vec<u32>,
    /// How many `-m conntrack` the rule has loaded so far.
    conntrack: u32,
    /// Connection tests of `-m conntrack` (status, original tuple): they
    /// need a connection.
    ct_conn_test: bool,
    /// `-m comment --comment`.
    pub comment: Option<String>,
    /// The `-m` module the options now read belong to.
    current_module: Option<Cow<'t, str>>,
    /// The address types before the current `-m addrtype`, that module's
    /// own source and destination type tests, and the interface it limits
    /// them to (then they are interface-limited tests, not global ones).
    types_before: (AddrTypes, AddrTypes),
    module_types: (AddrTypes, AddrTypes),
    types_limited: Option<ringfence_model::IfaceSide>,
}

/// One `--match-set`: the set, its direction flags (true: src), negation,
/// and where the name is (for errors).
pub(super) struct SetCond {
    name: String,
    flags: Vec<bool>,
    neg: bool,
    col: u64,
}

impl<'t> RuleBuilder<'t> {
    /// Nothing read yet: every address of `family`, any other field.
    pub(super) fn new(family: Family) -> Self {
        let all_addrs = family.all();
        let m = Match {
            src: all_addrs.clone(),
            dst: all_addrs,
            ..Match::any()
        };
        RuleBuilder {
            types_before: (m.src_type, m.dst_type),
            m,
            either_ports: None,
            sets: Vec::new(),
            ctproto: Vec::new(),
            ctstate_in: Vec::new(),
            conntrack: 0,
            ct_alts: None,
            ct_stateless_ok: false,
            ct_conn_test: false,
            comment: None,
            current_module: None,
            module_types: (AddrTypes::ALL, AddrTypes::ALL),
            types_limited: None,
        }
    }

    /// Read the match option `t` at index `i` of `w` (after `!` when
    /// `neg`); returns the index of the next option.
    pub(super) fn option(
        &mut self,
        ctx: &mut Ctx<'_>,
        w: &Words<'_, 't>,
        mut i: usize,
        t: Tok<'t>,
        neg: bool,
    ) -> Result<usize, InputError> {
        let b = self;
        let (file, line, toks, end_col) = (w.file, w.line, w.toks, w.end_col);
        let err = |t: &Tok, msg: String| w.err(t, msg);
        let value = |i: usize, opt: &Tok| w.value(i, opt);
        match t.text.as_ref() {
            "-s" | "--source" | "-d" | "--destination" => {
                let v = value(i, &t)?;
                let set = parse_addr_list(ctx, &v, line)?;
                let set = if neg { family_complement(ctx.family, &set) } else { set };
                if t.text.starts_with("-s") || t.text == "--source" {
                    b.m.src = b.m.src.intersect(&set);
                } else {
                    b.m.dst = b.m.dst.intersect(&set);
                }
                i += 2;
            }
            "-p" | "--protocol" => {
                let v = value(i, &t)?;
                let set = parse_protocol(&v.text).ok_or_else(|| {
                    err(
                        &v,
                        format!(
                            "unknown protocol `{}`: expected tcp, udp, icmp, icmpv6, sctp, all or a number 0-255",
                            v.text
                        ),
                    )
                })?;
                b.m.protocol = if neg { set.complement() } else { set };
                i += 2;
            }
            "-i" | "--in-interface" | "-o" | "--out-interface" => {
                let v = value(i, &t)?;
                let pat = IfacePattern::from_iptables(&v.text);
                let set = if neg {
                    IfaceSet::except(vec![pat])
                } else {
                    IfaceSet::only(vec![pat])
                };
                if t.text.starts_with("-i") || t.text == "--in-interface" {
                    b.m.iif = set;
                } else {
                    b.m.oif = set;
                }
                i += 2;
            }
            "-f" | "--fragment" => {
                b.m.opaque.push(Opaque {
                    text: format!("{}-f (fragment)", if neg { "! " } else { "" }),
                });
                ctx.notes.push(ParseNote {
                    location: format!("{file}:{line}"),
                    message: "fragment match is not modelled; results for this rule are unknown"
                        .to_string(),
                });
                i += 1;
            }
            "-4" | "--ipv4" | "-6" | "--ipv6" => i += 1,
            "-m" | "--match" => {
                if neg {
                    return Err(err(&t, "`!` before `-m`: expected `!` before a match option".into()));
                }
                let v = value(i, &t)?;
                b.current_module = Some(v.text.clone());
                b.types_before = (b.m.src_type, b.m.dst_type);
                b.module_types = (AddrTypes::ALL, AddrTypes::ALL);
                b.types_limited = None;
                i += 2;
                if v.text == "conntrack" {
                    b.conntrack += 1;
                }
                match v.text.as_ref() {
                    "tcp" | "udp" | "sctp" | "udplite" | "multiport" | "iprange" | "state"
                    | "conntrack" | "comment" | "icmp" | "icmp6" | "icmpv6" | "mark" | "connmark"
                    | "length" | "tos" | "dscp" | "pkttype" | "mac"
                    | "addrtype" => {}
                    "set" if ctx.sets.is_some() => {}
                    other => {
                        // Unknown extension: everything up to the next core option is its arguments.
                        let mut words = vec![format!("-m {other}")];
                        while i < toks.len() {
                            let w = &toks[i].text;
                            if is_core_option(w) {
                                break;
                            }
                            if w == "!" && toks.get(i + 1).is_some_and(|n| is_core_option(&n.text)) {
                                break;
                            }
                            words.push(w.to_string());
                            i += 1;
                        }
                        let text = words.join(" ");
                        let hint = if other == "set" {
                            "; give the `ipset save` output as another --ruleset to read the set"
                        } else {
                            ""
                        };
                        let message = match other {
                            // Facts the ruleset cannot tell: two branches by design.
                            "owner" => format!(
                                "match `{text}` tests the local socket that sent the packet, which a ruleset cannot tell: the rule may or may not match (two branches), so results it touches are unknown"
                            ),
                            "physdev" => format!(
                                "match `{text}` tests bridge ports, and whether and how the host bridges is not in the ruleset: the rule may or may not match (two branches), so results it touches are unknown"
                            ),
                            _ => format!(
                                "match `{text}` is not modelled; the rule may or may not match, so results it touches are unknown{hint}"
                            ),
                        };
                        ctx.notes.push(ParseNote {
                            location: format!("{file}:{line}:{}", v.col),
                            message,
                        });
                        b.m.opaque.push(Opaque { text });
                        b.current_module = None;
                    }
                }
            }
            "--sport" | "--source-port" | "--dport" | "--destination-port" => {
                let v = value(i, &t)?;
                // `-p tcp --dport 80` loads the tcp match implicitly, as iptables does.
                let implicit = b.m.protocol.ranges().len() == 1
                    && b.m.protocol.ranges()[0].0 == b.m.protocol.ranges()[0].1
                    && [proto::TCP, proto::UDP, proto::SCTP, 136].contains(&b.m.protocol.ranges()[0].0);
                if !implicit {
                    require_module(&t, &b.current_module, &["tcp", "udp", "sctp", "udplite"], file, line)?;
                }
                let set = parse_port_range(&v, file, line)?;
                let set = if neg { set.complement() } else { set };
                if t.text == "--sport" || t.text == "--source-port" {
                    b.m.sport = b.m.sport.intersect(&set);
                } else {
                    b.m.dport = b.m.dport.intersect(&set);
                }
                i += 2;
            }
            "--sports" | "--source-ports" | "--dports" | "--destination-ports" | "--ports" => {
                let v = value(i, &t)?;
                require_module(&t, &b.current_module, &["multiport"], file, line)?;
                let mut set = IntervalSet::empty();
                let mut col = v.col;
                for part in v.text.split(',') {
                    let pt = Tok {
                        text: Cow::Borrowed(part),
                        col,
                    };
                    set = set.union(&parse_port_range(&pt, file, line)?);
                    col += part.chars().count() as u64 + 1;
                }
                match t.text.as_ref() {
                    "--sports" | "--source-ports" => {
                        let s = if neg { set.complement() } else { set };
                        b.m.sport = b.m.sport.intersect(&s);
                    }
                    "--dports" | "--destination-ports" => {
                        let s = if neg { set.complement() } else { set };
                        b.m.dport = b.m.dport.intersect(&s);
                    }
                    _ => {
                        if neg {
                            // Neither port in the list.
                            let c = set.complement();
                            b.m.sport = b.m.sport.intersect(&c);
                            b.m.dport = b.m.dport.intersect(&c);
                        } else {
                            b.either_ports = Some(set);
                        }
                    }
                }
                i += 2;
            }
            "--src-range" | "--dst-range" => {
                let v = value(i, &t)?;
                require_module(&t, &b.current_module, &["iprange"], file, line)?;
                let set = parse_ip_range(ctx, &v, line)?;
                let set = if neg { family_complement(ctx.family, &set) } else { set };
                if t.text == "--src-range" {
                    b.m.src = b.m.src.intersect(&set);
                } else {
                    b.m.dst = b.m.dst.intersect(&set);
                }
                i += 2;
            }
            "--state" | "--ctstate" => {
                let v = value(i, &t)?;
                require_module(
                    &t,
                    &b.current_module,
                    if t.text == "--state" { &["state"] } else { &["conntrack"] },
                    file,
                    line,
                )?;
                let mut bits = 0u8;
                let mut col = v.col;
                // `DNAT`/`SNAT` are a fact about the connection (it was
                // translated), not states: the list matches a packet in one
                // of the named states *or* of a connection translated so.
                let mut nat_named = CtNat(0);
                for name in v.text.split(',') {
                    match CtStates::parse_one(name) {
                        Some(s) => bits |= s,
                        None if name.eq_ignore_ascii_case("SNAT") => {
                            nat_named = nat_named.union(CtNat::snat())
                        }
                        None if name.eq_ignore_ascii_case("DNAT") => {
                            nat_named = nat_named.union(CtNat::dnat())
                        }
                        None => {
                            return Err(InputError::at(
                                file,
                                line,
                                col,
                                format!(
                                    "unknown conntrack state `{name}`: expected NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED, SNAT or DNAT"
                                ),
                            ))
                        }
                    }
                    col += name.chars().count() as u64 + 1;
                }
                let list = nat::StateList {
                    states: bits,
                    nat: nat_named,
                };
                let alts = nat::state_alternatives(&list, neg);
                if t.text == "--ctstate" {
                    b.ctstate_in.push(b.conntrack);
                    // With no connection the kernel decides a conntrack
                    // match by its state test alone.
                    let stateless = CtStates::INVALID | CtStates::UNTRACKED;
                    if alts.iter().any(|(st, _)| st & stateless != 0) {
                        b.ct_stateless_ok = true;
                    }
                }
                match (alts.as_slice(), &mut b.ct_alts) {
                    ([(st, n)], None) if !n.is_test() => {
                        b.m.ct_state = CtStates(b.m.ct_state.0 & st);
                    }
                    (_, slot) => {
                        let prev = slot.take().unwrap_or_else(|| vec![(CtStates::ALL.0, CtNat::ALL)]);
                        let mut next = Vec::new();
                        for &(s1, n1) in &prev {
                            for &(s2, n2) in &alts {
                                if s1 & s2 != 0 && n1.intersect(n2).0 != 0 {
                                    next.push((s1 & s2, n1.intersect(n2)));
                                }
                            }
                        }
                        if next.is_empty() {
                            // Nothing can match: keep one empty alternative.
                            next.push((0, CtNat::ALL));
                        }
                        *slot = Some(next);
                    }
                }
                i += 2;
            }
            "--ctstatus" => {
                let v = value(i, &t)?;
                require_module(&t, &b.current_module, &["conntrack"], file, line)?;
                let (named, other) = nat::ctstatus(&v.text).map_err(|m| err(&v, m))?;
                if other.is_empty() {
                    b.m.ct_nat = b.m.ct_nat.intersect(if neg { named.complement() } else { named });
                } else {
                    let text = format!("{}--ctstatus {}", if neg { "! " } else { "" }, v.text);
                    ctx.notes.push(ParseNote {
                        location: format!("{file}:{line}:{}", t.col),
                        message: format!(
                            "`{text}`: conntrack status {} is not modelled; the rule may or may not match, so results it touches are unknown",
                            other.join(",")
                        ),
                    });
                    b.m.opaque.push(Opaque { text });
                }
                b.ct_conn_test = true;
                i += 2;
            }
            "--ctorigsrc" | "--ctorigdst" => {
                let v = value(i, &t)?;
                require_module(&t, &b.current_module, &["conntrack"], file, line)?;
                let set = parse_addr_list(ctx, &v, line)?;
                let set = if neg { family_complement(ctx.family, &set) } else { set };
                let o = b
                    .m
                    .ct_orig
                    .get_or_insert_with(|| Box::new(ringfence_model::OrigTuple::any()));
                if t.text == "--ctorigsrc" {
                    o.src = o.src.intersect(&set).intersect(&ctx.family.all());
                } else {
                    o.dst = o.dst.intersect(&set).intersect(&ctx.family.all());
                }
                b.ct_conn_test = true;
                i += 2;
            }
            "--ctorigsrcport" | "--ctorigdstport" => {
                let v = value(i, &t)?;
                require_module(&t, &b.current_module, &["conntrack"], file, line)?;
                let set = nat::orig_ports(&v.text).ok_or_else(|| {
                    err(&v, format!("`{} {}`: expected PORT or PORT:PORT (0-65535, first <= last)", t.text, v.text))
                })?;
                let set = if neg { set.complement() } else { set };
                let o = b
                    .m
                    .ct_orig
                    .get_or_insert_with(|| Box::new(ringfence_model::OrigTuple::any()));
                if t.text == "--ctorigsrcport" {
                    o.sport = o.sport.intersect(&set);
                } else {
                    o.dport = o.dport.intersect(&set);
                }
                b.ct_conn_test = true;
                i += 2;
            }
            "--src-type" | "--dst-type" => {
                let v = value(i, &t)?;
                require_module(&t, &b.current_module, &["addrtype"], file, line)?;
                let types = nat::addr_types(&v.text).map_err(|m| err(&v, m))?;
                let types = if neg { types.complement() } else { types };
                let side = if t.text == "--src-type" {
                    ringfence_model::AddrSide::Src
                } else {
                    ringfence_model::AddrSide::Dst
                };
                let own = match side {
                    ringfence_model::AddrSide::Src => &mut b.module_types.0,
                    ringfence_model::AddrSide::Dst => &mut b.module_types.1,
                };
                own.0 &= types.0;
                match (b.types_limited, side) {
                    (Some(dev), _) => b.m.iface_types_mut().get_mut(side, dev).0 &= types.0,
                    (None, ringfence_model::AddrSide::Src) => b.m.src_type.0 &= types.0,
                    (None, ringfence_model::AddrSide::Dst) => b.m.dst_type.0 &= types.0,
                }
                i += 2;
            }
            "--limit-iface-in" | "--limit-iface-out" => {
                require_module(&t, &b.current_module, &["addrtype"], file, line)?;
                if neg {
                    return Err(err(
                        &t,
                        format!("`! {}`: the interface limit cannot be negated; remove the `!`", t.text),
                    ));
                }
                let dev = if t.text == "--limit-iface-in" {
                    ringfence_model::IfaceSide::In
                } else {
                    ringfence_model::IfaceSide::Out
                };
                match b.types_limited {
                    Some(d) if d != dev => {
                        return Err(err(
                            &t,
                            "`--limit-iface-in` and `--limit-iface-out` in one `-m addrtype`: the kernel accepts only one; split the rule or keep one limit".into(),
                        ))
                    }
                    Some(_) => {}
                    None => {
                        // This module's type tests hold on one interface
                        // only: they move from the global address types to
                        // the interface-limited ones.
                        (b.m.src_type, b.m.dst_type) = b.types_before;
                        let (src, dst) = b.module_types;
                        if src.is_test() || dst.is_test() {
                            let lim = b.m.iface_types_mut();
                            lim.get_mut(ringfence_model::AddrSide::Src, dev).0 &= src.0;
                            lim.get_mut(ringfence_model::AddrSide::Dst, dev).0 &= dst.0;
                        }
                        b.types_limited = Some(dev);
                    }
                }
                i += 1;
            }
            o if OPTIONS.contains(&o) => {
                let at = At {
                    i,
                    neg,
                    module: b.current_module.as_deref(),
                    conntrack: b.conntrack,
                    words: w,
                };
                i += read(&at, &mut b.m, &mut b.ctproto)?;
            }
            "--comment" => {
                let v = value(i, &t)?;
                b.comment = Some(v.text.to_string());
                i += 2;
            }
            "--mark" => {
                let v = value(i, &t)?;
                require_module(&t, &b.current_module, &["mark", "connmark"], file, line)?;
                let (value, mask) = targets::parse_mark(&v, file, line)?;
                let field = if b.current_module.as_deref() == Some("connmark") {
                    MarkField::Conn
                } else {
                    MarkField::Packet
                };
                b.m.marks.push(MarkTest {
                    field,
                    mask,
                    value,
                    invert: neg,
                });
                i += 2;
            }
            "--match-set" | "--set" => {
                let v = value(i, &t)?;
                require_module(&t, &b.current_module, &["set"], file, line)?;
                let f = toks.get(i + 2).cloned().ok_or_else(|| {
                    InputError::at(
                        file,
                        line,
                        end_col + 1,
                        format!("`{} {}` needs directions: expected for example `src` or `src,dst`", t.text, v.text),
                    )
                })?;
                let mut flags = Vec::new();
                for d in f.text.split(',') {
                    match d {
                        "src" => flags.push(true),
                        "dst" => flags.push(false),
                        other => {
                            return Err(err(
                                &f,
                                format!("direction `{other}`: expected src or dst (comma-separated, one per set dimension)"),
                            ))
                        }
                    }
                }
                let sets = ctx.sets.expect("the set module is read only with sets");
                if !sets.contains(&v.text) {
                    let mut e = err(
                        &v,
                        format!(
                            "set `{}` is not defined in the ipset files given ({})",
                            v.text,
                            sets.files().join(", ")
                        ),
                    );
                    e = match sets.closest(&v.text) {
                        Some(c) => e.with_help(format!("did you mean `{c}`?")),
                        None => e.with_help("give the `ipset save` output that defines it as another --ruleset"),
                    };
                    return Err(e);
                }
                b.sets.push(SetCond {
                    name: v.text.to_string(),
                    flags,
                    neg,
                    col: v.col,
                });
                i += 3;
            }
            "--return-nomatch" | "--update-counters" | "--update-subcounters" => i += 1,
            "--packets-eq" | "--packets-lt" | "--packets-gt" | "--bytes-eq" | "--bytes-lt"
            | "--bytes-gt" => {
                let v = value(i, &t)?;
                let text = format!("{}{} {}", if neg { "! " } else { "" }, t.text, v.text);
                ctx.notes.push(ParseNote {
                    location: format!("{file}:{line}:{}", t.col),
                    message: format!(
                        "`{text}` (set element counters) is not modelled; the rule may or may not match"
                    ),
                });
                b.m.opaque.push(Opaque { text });
                i += 2;
            }
            "--tcp-option" | "--ctreplsrc" | "--ctrepldst" | "--ctreplsrcport"
            | "--ctrepldstport" | "--ctexpire" | "--ctdir" | "--chunk-types" => {
                // Understood options whose field the model does not carry.
                let mut words = vec![format!("{}{}", if neg { "! " } else { "" }, t.text)];
                i += 1;
                while i < toks.len() && !toks[i].text.starts_with('-') && toks[i].text != "!" {
                    words.push(toks[i].text.to_string());
                    i += 1;
                }
                let text = words.join(" ");
                ctx.notes.push(ParseNote {
                    location: format!("{file}:{line}:{}", t.col),
                    message: format!(
                        "`{text}` is not modelled; the rule may or may not match, so results it touches are unknown"
                    ),
                });
                b.m.opaque.push(Opaque { text });
            }
            other => {
                return Err(err(
                    &t,
                    format!(
                        "unknown option `{other}`{}: expected -s, -d, -p, -i, -o, -m MODULE, a module option, -j or -g",
                        b.current_module
                            .as_ref()
                            .map(|m| format!(" for match `{m}`"))
                            .unwrap_or_default()
                    ),
                ))
            }
        }
        Ok(i)
    }

    /// Once the whole rule is read: connection tests of `-m conntrack`
    /// fail for a packet without a connection, unless a stateless state
    /// was named beside them.
    pub(super) fn close_conntrack(&mut self) {
        let b = self;
        if b.ct_conn_test {
            if b.ct_stateless_ok {
                // `--ctstate INVALID ... --ctorigsrc X`: a packet without a
                // connection passes on its state alone; with one, the
                // connection tests apply. Not split: the rule may match.
                b.m.opaque.push(Opaque {
                    text: "-m conntrack (a stateless state beside connection tests)".into(),
                });
            } else {
                // The connection tests fail for a packet without a connection.
                b.m.ct_state = CtStates(b.m.ct_state.0 & CtStates::TRACKED);
            }
        }
    }

    /// The rule's model matches: one per alternative that `--ctproto`,
    /// `-m multiport --ports`, `--ctstate` lists naming SNAT/DNAT and
    /// `-m set` boxes split it into; `may_jump` when the rule jumps (a set
    /// then lowers to disjoint boxes).
    pub(super) fn alternatives(
        self,
        ctx: &mut Ctx<'_>,
        line: u64,
        may_jump: bool,
    ) -> Result<Vec<Match>, InputError> {
        let mut b = self;
        let file = ctx.file;
        let split = if b.ctproto.is_empty() {
            None
        } else {
            Some(ctproto_split(
                std::mem::take(&mut b.m),
                &b.ctproto,
                &b.ctstate_in,
            ))
        };
        let mut alts = match b.either_ports {
            None => split.unwrap_or_else(|| vec![b.m]),
            Some(ports) => split
                .unwrap_or_else(|| vec![b.m])
                .into_iter()
                .flat_map(|m| {
                    let mut by_sport = m.clone();
                    by_sport.sport = by_sport.sport.intersect(&ports);
                    let mut by_dport = m;
                    by_dport.dport = by_dport.dport.intersect(&ports);
                    [by_sport, by_dport]
                })
                .collect(),
        };
        if let Some(ct_alts) = &b.ct_alts {
            // Disjoint alternatives (a jump among them runs at most once).
            alts = alts
                .iter()
                .flat_map(|m| {
                    ct_alts.iter().map(move |&(st, n)| {
                        let mut m = m.clone();
                        m.ct_state = CtStates(m.ct_state.0 & st);
                        m.ct_nat = m.ct_nat.intersect(n);
                        m
                    })
                })
                .collect();
        }
        for c in &b.sets {
            let sets = ctx.sets.expect("set conditions are read only with sets");
            let lowered = sets
                .lower(&c.name, &c.flags, ctx.family == Family::V6, c.neg, may_jump)
                .map_err(|why| InputError::at(file, line, c.col, why))?;
            match lowered {
                Lowered::Boxes { fields, boxes } => {
                    if alts.len().saturating_mul(boxes.len()) > SET_RULE_BUDGET {
                        set_opaque(
                            ctx,
                            &mut alts,
                            c,
                            file,
                            line,
                            format!(
                                "the match needs more than {SET_RULE_BUDGET} model rules (the budget)"
                            ),
                        );
                        continue;
                    }
                    let mut next = Vec::with_capacity(alts.len() * boxes.len());
                    for m in &alts {
                        for bx in &boxes {
                            if let Some(n) = narrow_by_box(m, &fields, bx, ctx.family) {
                                next.push(n);
                            }
                        }
                    }
                    if next.is_empty() {
                        // Nothing can match: keep the rule, matching no packet.
                        let mut m = alts[0].clone();
                        m.protocol = IntervalSet::empty();
                        next.push(m);
                    }
                    alts = next;
                }
                Lowered::Opaque(why) => set_opaque(ctx, &mut alts, c, file, line, why),
            }
        }
        Ok(alts)
    }
}

/// A set match the model cannot read exactly: the rule may or may not match.
fn set_opaque(
    ctx: &mut Ctx<'_>,
    alts: &mut [Match],
    c: &SetCond,
    file: &str,
    line: u64,
    why: String,
) {
    let text = format!("{}--match-set {}", if c.neg { "! " } else { "" }, c.name);
    ctx.notes.push(ParseNote {
        location: format!("{file}:{line}:{}", c.col),
        message: format!("{why}; `{text}` may or may not match"),
    });
    for m in alts {
        m.opaque.push(Opaque { text: text.clone() });
    }
}

/// `m` narrowed to one box of a set match; `None` when nothing is left.
fn narrow_by_box(m: &Match, fields: &[SetField], bx: &TBox, family: Family) -> Option<Match> {
    let mut m = m.clone();
    for (f, part) in fields.iter().zip(bx) {
        match (f, part) {
            (SetField::SrcAddr | SetField::DstAddr, Part::Num(set)) => {
                let addrs = match family {
                    Family::V4 => AddrSet {
                        v4: IntervalSet::from_ranges(
                            set.ranges()
                                .iter()
                                .map(|&(a, b)| (a as u32, b.min(u32::MAX as u128) as u32)),
                        ),
                        v6: IntervalSet::empty(),
                    },
                    Family::V6 => AddrSet {
                        v4: IntervalSet::empty(),
                        v6: set.clone(),
                    },
                };
                if *f == SetField::SrcAddr {
                    m.src = m.src.intersect(&addrs);
                } else {
                    m.dst = m.dst.intersect(&addrs);
                }
            }
            (SetField::Proto, Part::Num(set)) => {
                m.protocol = m.protocol.intersect(&IntervalSet::from_ranges(
                    set.ranges()
                        .iter()
                        .map(|&(a, b)| (a as u8, b.min(255) as u8)),
                ));
            }
            (SetField::SrcPort | SetField::DstPort, Part::Num(set)) => {
                let ports = IntervalSet::from_ranges(
                    set.ranges()
                        .iter()
                        .map(|&(a, b)| (a as u16, b.min(65535) as u16)),
                );
                if *f == SetField::SrcPort {
                    m.sport = m.sport.intersect(&ports);
                } else {
                    m.dport = m.dport.intersect(&ports);
                }
            }
            (SetField::Iif | SetField::Oif, Part::Iface(s)) => {
                let cur = if *f == SetField::Iif {
                    &mut m.iif
                } else {
                    &mut m.oif
                };
                match crate::nft::intersect_ifaces(cur, s) {
                    Some(x) => *cur = x,
                    // Not one interface set (a wildcard with a hole): the
                    // rule may or may not match there.
                    None => m.opaque.push(Opaque {
                        text: "interface of a set element".into(),
                    }),
                }
            }
            _ => unreachable!("a set field has one kind"),
        }
    }
    (!m.is_empty()).then_some(m)
}

fn require_module(
    t: &Tok,
    current: &Option<Cow<str>>,
    allowed: &[&str],
    file: &str,
    line: u64,
) -> Result<(), InputError> {
    match current {
        Some(m) if allowed.contains(&m.as_ref()) => Ok(()),
        _ => Err(InputError::at(
            file,
            line,
            t.col,
            format!(
                "`{}` outside its match module: expected it after `-m {}`",
                t.text,
                allowed.join("` or `-m ")
            ),
        )),
    }
}

fn family_complement(f: Family, set: &AddrSet) -> AddrSet {
    set.complement().intersect(&f.all())
}

fn parse_protocol(s: &str) -> Option<IntervalSet<u8>> {
    let n = match s.to_ascii_lowercase().as_str() {
        "all" | "0" => return Some(IntervalSet::full()),
        "tcp" => proto::TCP,
        "udp" => proto::UDP,
        "icmp" => proto::ICMP,
        "icmpv6" | "ipv6-icmp" | "icmp6" => proto::ICMPV6,
        "sctp" => proto::SCTP,
        "udplite" => 136,
        "esp" => 50,
        "ah" => 51,
        "gre" => 47,
        // /etc/protocols' name for IP-in-IP; Calico writes `-p ipencap`.
        "ipencap" | "ipip" => 4,
        "igmp" => 2,
        "ipv6" => 41,
        "ospf" => 89,
        "vrrp" => 112,
        other => other.parse::<u8>().ok()?,
    };
    Some(IntervalSet::single(n))
}

/// `80`, `1024:65535`, `:1023`, `1024:` (iptables writes `0:1023`).
fn parse_port_range(v: &Tok, file: &str, line: u64) -> Result<IntervalSet<u16>, InputError> {
    let bad = || {
        InputError::at(
            file,
            line,
            v.col,
            format!(
                "port `{}`: expected a number 0-65535 or a range `first:last`",
                v.text
            ),
        )
    };
    let port = |s: &str| -> Result<u16, InputError> {
        s.parse::<u16>()
            .or_else(|_| service_port(s).ok_or_else(bad))
    };
    match v.text.split_once(':') {
        None => Ok(IntervalSet::single(port(&v.text)?)),
        Some((a, b)) => {
            let lo = if a.is_empty() { 0 } else { port(a)? };
            let hi = if b.is_empty() { u16::MAX } else { port(b)? };
            if lo > hi {
                return Err(InputError::at(
                    file,
                    line,
                    v.col,
                    format!(
                        "port range `{}` is reversed: expected first <= last",
                        v.text
                    ),
                ));
            }
            Ok(IntervalSet::range(lo, hi))
        }
    }
}

/// A few well-known service names iptables accepts in place of numbers.
fn service_port(s: &str) -> Option<u16> {
    Some(match s {
        "ssh" => 22,
        "http" | "www" => 80,
        "https" => 443,
        "domain" => 53,
        "ntp" => 123,
        "smtp" => 25,
        "ftp" => 21,
        "telnet" => 23,
        "bgp" => 179,
        _ => return None,
    })
}

fn parse_ip(ctx: &Ctx<'_>, s: &str, tok: &Tok, line: u64) -> Result<IpAddr, InputError> {
    let ip: IpAddr = s.parse().map_err(|_| {
        InputError::at(
            ctx.file,
            line,
            tok.col,
            format!(
                "address `{s}`: expected an {} address",
                if ctx.family == Family::V4 {
                    "IPv4"
                } else {
                    "IPv6"
                }
            ),
        )
    })?;
    match (ctx.family, ip) {
        (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_)) => Ok(ip),
        _ => Err(InputError::at(
            ctx.file,
            line,
            tok.col,
            format!(
                "address `{s}` is of the other family: this file is {} (detected from its header or first address); iptables-save and ip6tables-save output cannot be mixed",
                if ctx.family == Family::V4 { "IPv4" } else { "IPv6" }
            ),
        )),
    }
}

/// `a.b.c.d`, `a.b.c.d/len`, `a.b.c.d/mask`, comma lists; IPv6 likewise.
fn parse_addr_list(ctx: &Ctx<'_>, v: &Tok, line: u64) -> Result<AddrSet, InputError> {
    let mut out = AddrSet::empty();
    let mut col = v.col;
    for part in v.text.split(',') {
        let t = Tok {
            text: Cow::Borrowed(part),
            col,
        };
        let (addr, len) = match part.split_once('/') {
            None => (part, None),
            Some((a, l)) => (a, Some(l)),
        };
        let ip = parse_ip(ctx, addr, &t, line)?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len: u8 = match len {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => mask_len(l).filter(|_| ip.is_ipv4()).ok_or_else(|| {
                    InputError::at(
                        ctx.file,
                        line,
                        col + addr.chars().count() as u64 + 1,
                        format!("prefix length `{l}`: expected 0-{max} or a contiguous netmask"),
                    )
                })?,
            },
        };
        let set = match ip {
            IpAddr::V4(a) => AddrSet::v4_prefix(a, len),
            IpAddr::V6(a) => AddrSet::v6_prefix(a, len),
        };
        out = out.union(&set);
        col += part.chars().count() as u64 + 1;
    }
    Ok(out)
}

/// Length of a contiguous dotted netmask such as `255.255.255.0`.
fn mask_len(s: &str) -> Option<u8> {
    let m = u32::from(s.parse::<Ipv4Addr>().ok()?);
    let len = m.leading_ones();
    (m.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// `a-b` address range (`-m iprange`).
fn parse_ip_range(ctx: &Ctx<'_>, v: &Tok, line: u64) -> Result<AddrSet, InputError> {
    let (a, b) = v.text.split_once('-').unwrap_or((&*v.text, &*v.text));
    let lo = parse_ip(ctx, a, v, line)?;
    let hi = parse_ip(ctx, b, v, line)?;
    let set = match (lo, hi) {
        (IpAddr::V4(l), IpAddr::V4(h)) => AddrSet {
            v4: IntervalSet::range(u32::from(l), u32::from(h)),
            v6: IntervalSet::empty(),
        },
        (IpAddr::V6(l), IpAddr::V6(h)) => AddrSet {
            v4: IntervalSet::empty(),
            v6: IntervalSet::range(u128::from(l), u128::from(h)),
        },
        _ => unreachable!("parse_ip enforces one family"),
    };
    if set.is_empty() {
        return Err(InputError::at(
            ctx.file,
            line,
            v.col,
            format!(
                "address range `{}` is reversed: expected first <= last",
                v.text
            ),
        ));
    }
    Ok(set)
}
