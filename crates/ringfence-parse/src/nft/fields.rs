//! nft matches on the fields the model keeps in
//! [`ringfence_model::ExtraFields`]: `tcp flags` (with nft's bitmask
//! semantics), `icmp`/`icmpv6` `type` and `code`, `ip`/`ip6` `dscp`,
//! `meta length`, `meta pkttype` and `ether saddr`.

use super::expressions::restrict_family;
use super::{Fam, Op, Why};
use ringfence_model::fields::all_macs;
use ringfence_model::names;
use ringfence_model::{proto, IntervalSet, Match};
use serde_json::Value;

/// A rare field an nft match reads.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum XField {
    /// `tcp flags`, under a mask (`tcp flags & (syn|ack) == syn`; 0xff bare).
    TcpFlags(u8),
    /// `icmp type` (V4) or `icmpv6 type` (V6).
    IcmpType(Fam),
    /// `icmp code` or `icmpv6 code`.
    IcmpCode(Fam),
    /// `ip dscp` or `ip6 dscp`.
    Dscp(Fam),
    /// `meta length`.
    Length,
    /// `meta pkttype`.
    PktType,
    /// `ether saddr`.
    Mac,
}

impl XField {
    /// The field a payload expression reads, if it is one of these.
    pub(super) fn of_payload(protocol: &str, field: &str) -> Option<Self> {
        Some(match (protocol, field) {
            ("tcp", "flags") => XField::TcpFlags(0xff),
            ("icmp", "type") => XField::IcmpType(Fam::V4),
            ("icmp", "code") => XField::IcmpCode(Fam::V4),
            ("icmpv6", "type") => XField::IcmpType(Fam::V6),
            ("icmpv6", "code") => XField::IcmpCode(Fam::V6),
            ("ip", "dscp") => XField::Dscp(Fam::V4),
            ("ip6", "dscp") => XField::Dscp(Fam::V6),
            ("ether", "saddr") => XField::Mac,
            _ => return None,
        })
    }

    /// The field a `meta` key reads, if it is one of these.
    pub(super) fn of_meta(key: &str) -> Option<Self> {
        Some(match key {
            "length" => XField::Length,
            "pkttype" => XField::PktType,
            _ => return None,
        })
    }

    /// The largest value of the field.
    pub(super) fn max(self) -> u128 {
        match self {
            XField::TcpFlags(_) | XField::IcmpType(_) | XField::IcmpCode(_) | XField::PktType => {
                u8::MAX as u128
            }
            XField::Dscp(_) => 63,
            XField::Length => u32::MAX as u128,
            XField::Mac => (1u128 << 48) - 1,
        }
    }

    /// What a value of the field looks like, for errors.
    pub(super) fn what(self) -> &'static str {
        match self {
            XField::TcpFlags(_) => "TCP flags (names such as syn, ack, or a number)",
            XField::IcmpType(Fam::V4) => {
                "an ICMP type name such as echo-request, or a number 0-255"
            }
            XField::IcmpType(Fam::V6) => {
                "an ICMPv6 type name such as echo-request, or a number 0-255"
            }
            XField::IcmpCode(_) => "an ICMP code name such as port-unreachable, or a number 0-255",
            XField::Dscp(_) => "a DSCP class such as cs1 or af41, or a number 0-63",
            XField::Length => "a length in bytes",
            XField::PktType => "a packet type (host, unicast, broadcast, multicast, other)",
            XField::Mac => "a MAC address such as 00:11:22:33:44:55",
        }
    }

    /// A named value of the field (numbers are read by the caller).
    pub(super) fn name(self, s: &str) -> Option<u128> {
        let v = match self {
            XField::TcpFlags(_) => names::tcp_flag_bits(s).map(u64::from),
            XField::IcmpType(fam) => names::icmp_name(s, fam == Fam::V6)
                .filter(|(_, code)| code.is_none())
                .map(|(t, _)| u64::from(t)),
            XField::IcmpCode(fam) => names::icmp_code_name(s, fam == Fam::V6).map(u64::from),
            XField::Dscp(_) => names::dscp_class(s).map(u64::from),
            XField::Length => None,
            XField::PktType => names::pkttype_name(s).map(u64::from),
            XField::Mac => names::mac(s),
        };
        v.map(u128::from)
    }
}

/// A TCP flags value: a flag name, a number, a list or `|` of them (OR).
pub(super) fn flag_value(v: &Value) -> Option<u8> {
    match v {
        Value::String(s) => names::tcp_flag_bits(s),
        Value::Number(n) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
        Value::Array(a) => a.iter().try_fold(0u8, |acc, x| Some(acc | flag_value(x)?)),
        Value::Object(o) if o.len() == 1 => match o.iter().next() {
            Some((k, b)) if k == "|" => flag_value(b),
            Some((k, b)) if k == "elem" => flag_value(b.get("val")?),
            _ => None,
        },
        _ => None,
    }
}

/// The flags bytes `tcp flags & mask OP right` holds for, as nft reads it:
/// a bare flag list (`in`, nft's implicit operator on a bitmask) holds when
/// any of its flags is set; `==` and `!=` compare the masked byte with the
/// value; a set (`{ syn, syn | ack }`) holds when the masked byte is one of
/// its elements.
pub(super) fn tcp_flags(mask: u8, op: Op, right: &Value) -> Result<IntervalSet<u8>, Why> {
    let unsupported = || Why::Unsupported(format!("tcp flags compared with {right}"));
    let members: Option<Vec<u8>> = match right.as_object().and_then(|o| o.get("set")) {
        Some(Value::Array(elems)) => Some(
            elems
                .iter()
                .map(flag_value)
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(unsupported)?,
        ),
        Some(_) => return Err(unsupported()),
        None => None,
    };
    let value = match &members {
        Some(_) => 0,
        None if right.as_str().is_some_and(|s| s.starts_with('@')) => {
            return Err(Why::Unsupported(
                "a named set of TCP flags is not modelled".into(),
            ))
        }
        None => flag_value(right).ok_or_else(unsupported)?,
    };
    let mut out = Vec::new();
    for b in 0..=255u8 {
        let f = b & mask;
        let hit = match (&members, op) {
            (Some(ms), Op::Eq | Op::In) => ms.contains(&f),
            (Some(ms), Op::Ne) => !ms.contains(&f),
            (None, Op::In) => f & value != 0,
            (None, Op::Eq) => f == value,
            (None, Op::Ne) => f != value,
            _ => {
                return Err(Why::Unsupported(
                    "an ordering comparison on TCP flags is not modelled".into(),
                ))
            }
        };
        if hit {
            out.push((b, b));
        }
    }
    Ok(IntervalSet::from_ranges(out))
}

/// Narrow every alternative by field `f` holding one of the values
/// `ranges` (already read and with the operator applied; not for TCP
/// flags, see [`narrow_flags`]), with the dependencies nft adds: ICMP
/// matches only ICMP over IPv4, ICMPv6 only over IPv6, `ip dscp` only IPv4.
pub(super) fn narrow(f: XField, ranges: &[(u128, u128)], alts: &mut [Match]) {
    let clip = |max: u128| {
        ranges
            .iter()
            .filter(move |r| r.0 <= max)
            .map(move |&(a, b)| (a, b.min(max)))
    };
    for m in alts.iter_mut() {
        match f {
            XField::TcpFlags(_) => unreachable!("tcp flags are narrowed by narrow_flags"),
            XField::IcmpType(fam) | XField::IcmpCode(fam) => {
                let set: IntervalSet<u16> = if matches!(f, XField::IcmpType(_)) {
                    IntervalSet::from_ranges(
                        clip(255).map(|(a, b)| ((a as u16) << 8, (b as u16) << 8 | 0xff)),
                    )
                } else {
                    IntervalSet::from_ranges((0..=255u16).flat_map(|t| {
                        clip(255).map(move |(a, b)| (t << 8 | a as u16, t << 8 | b as u16))
                    }))
                };
                let p = if fam == Fam::V4 {
                    proto::ICMP
                } else {
                    proto::ICMPV6
                };
                m.protocol = m.protocol.intersect(&IntervalSet::single(p));
                restrict_family(m, fam);
                let x = m.extra_mut();
                x.icmp = x.icmp.intersect(&set);
            }
            XField::Dscp(fam) => {
                let set = IntervalSet::from_ranges(
                    clip(63).map(|(a, b)| ((a as u8) << 2, (b as u8) << 2 | 3)),
                );
                restrict_family(m, fam);
                let x = m.extra_mut();
                x.tos = x.tos.intersect(&set);
            }
            XField::Length => {
                let set = IntervalSet::from_ranges(
                    clip(u32::MAX as u128).map(|(a, b)| (a as u32, b as u32)),
                );
                let x = m.extra_mut();
                x.length = x.length.intersect(&set);
            }
            XField::PktType => {
                let set = IntervalSet::from_ranges(clip(255).map(|(a, b)| (a as u8, b as u8)));
                let x = m.extra_mut();
                x.pkttype = x.pkttype.intersect(&set);
            }
            XField::Mac => {
                let set = IntervalSet::from_ranges(
                    clip(all_macs_max()).map(|(a, b)| (a as u64, b as u64)),
                );
                let x = m.extra_mut();
                x.mac_src = x.mac_src.intersect(&set);
            }
        }
        m.normalize_extra();
    }
}

fn all_macs_max() -> u128 {
    u128::from(all_macs().ranges()[0].1)
}

/// Narrow every alternative to TCP packets whose flags are in `set`.
pub(super) fn narrow_flags(set: &IntervalSet<u8>, alts: &mut [Match]) {
    for m in alts.iter_mut() {
        m.protocol = m.protocol.intersect(&IntervalSet::single(proto::TCP));
        let x = m.extra_mut();
        x.tcp_flags = x.tcp_flags.intersect(set);
        m.normalize_extra();
    }
}
