//! iptables match options whose fields the model keeps in
//! [`ringfence_model::ExtraFields`]: `--syn` and `--tcp-flags` (tcp),
//! `--icmp-type`/`--icmpv6-type`, `-m length`, `-m tos`, `-m dscp`,
//! `-m pkttype`, `-m mac`, and `-m conntrack --ctproto`.

use super::tokens::Tok;
use ringfence_diag::InputError;
use ringfence_model::fields::{icmp_values, masked_bytes, tcp_flag};
use ringfence_model::names;
use ringfence_model::{proto, CtStates, IntervalSet, Match, Opaque};

/// The options this module reads.
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
    /// The rule's words after `-A CHAIN`.
    pub toks: &'a [Tok<'t>],
    /// The option's index in `toks`.
    pub i: usize,
    /// Whether `!` came before it.
    pub neg: bool,
    /// The `-m` module it follows, if any.
    pub module: Option<&'a str>,
    /// Which `-m conntrack` of the rule it follows (1 for the first).
    pub conntrack: u32,
    /// The file name, line and the column just past the line's end.
    pub file: &'a str,
    /// Line number.
    pub line: u64,
    /// Column past the end of the line.
    pub end_col: u64,
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
        &self.toks[self.i]
    }

    fn err(&self, t: &Tok, msg: String) -> InputError {
        InputError::at(self.file, self.line, t.col, msg)
    }

    /// The `k`-th value after the option (1 is the first).
    fn value(&self, k: usize) -> Result<&Tok<'_>, InputError> {
        // No value of these options starts with `-`: that is the next option.
        let found = self
            .toks
            .get(self.i + 1..=self.i + k)
            .filter(|ts| ts.iter().all(|t| !t.text.starts_with('-') && t.text != "!"))
            .map(|ts| &ts[k - 1]);
        found.ok_or_else(|| {
            InputError::at(
                self.file,
                self.line,
                self.end_col + 1,
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
            let set = super::parse_protocol(&v.text).ok_or_else(|| {
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
