//! nft match expressions: the `match` statement's left-hand side (payload,
//! meta, ct and mark fields, with the protocol dependencies they imply),
//! its operators and scalar right-hand sides, `ct state` in all its forms,
//! mark tests, and how each narrows the rule's alternatives. Set and map
//! right-hand sides are in `sets`; the rarer header fields in `fields`.

use super::concat::Part;
use super::fields::{self, XField};
use super::{compact, ptr_join, single_key, Fam, Field, Kind, Op, Parser, Side, Why};
use ringfence_model::{
    proto, AddrSet, CtStates, IfacePattern, IfaceSet, IntervalSet, MarkField, MarkTest, Match,
    Opaque,
};
use serde_json::Value;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The transport protocols whose header starts with source and destination port.
const PORT_PROTOS: [u8; 5] = [proto::TCP, proto::UDP, 33, proto::SCTP, 136];

fn port_protos() -> IntervalSet<u8> {
    IntervalSet::from_ranges(PORT_PROTOS.iter().map(|&p| (p, p)))
}

fn kernel_ct_bit(state: u8) -> u32 {
    match state {
        CtStates::INVALID => 1,
        CtStates::ESTABLISHED => 2,
        CtStates::RELATED => 4,
        CtStates::NEW => 8,
        _ => 64, // untracked
    }
}

const MODEL_STATES: [u8; 5] = [
    CtStates::NEW,
    CtStates::ESTABLISHED,
    CtStates::RELATED,
    CtStates::INVALID,
    CtStates::UNTRACKED,
];

/// Protocol names as nft prints them (from its protocol table).
fn proto_number(name: &str) -> Option<u8> {
    Some(match name {
        "icmp" => 1,
        "igmp" => 2,
        "ipip" | "ipencap" => 4,
        "tcp" => 6,
        "egp" => 8,
        "pup" => 12,
        "udp" => 17,
        "idp" => 22,
        "dccp" => 33,
        "ipv6" => 41,
        "rsvp" => 46,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "ipv6-icmp" | "icmpv6" => 58,
        "ospf" => 89,
        "pim" => 103,
        "comp" => 108,
        "vrrp" => 112,
        "l2tp" => 115,
        "sctp" => 132,
        "udplite" => 136,
        "mpls-in-ip" => 137,
        _ => return name.parse().ok(),
    })
}

/// `a ∩ b` for interface sets, when the result is again one set.
pub(crate) fn intersect_ifaces(a: &IfaceSet, b: &IfaceSet) -> Option<IfaceSet> {
    if a.is_any() {
        return Some(b.clone());
    }
    if b.is_any() {
        return Some(a.clone());
    }
    match (a.negated, b.negated) {
        (true, true) => {
            let mut p = a.patterns.clone();
            p.extend(b.patterns.iter().cloned());
            Some(IfaceSet::except(p))
        }
        (false, false) => {
            let mut out = Vec::new();
            for x in &a.patterns {
                for y in &b.patterns {
                    if let Some(z) = pattern_meet(x, y) {
                        out.push(z);
                    }
                }
            }
            Some(IfaceSet::only(out))
        }
        (false, true) | (true, false) => {
            let (pos, negs) = if a.negated { (b, a) } else { (a, b) };
            let mut out = Vec::new();
            for x in &pos.patterns {
                match x {
                    IfacePattern::Exact(n) => {
                        if !negs.patterns.iter().any(|y| y.matches(n)) {
                            out.push(x.clone());
                        }
                    }
                    IfacePattern::Prefix(p) => {
                        // Removed whole by a shorter prefix; untouched unless a
                        // negated pattern lies inside it (then not one set).
                        if negs.patterns.iter().any(
                            |y| matches!(y, IfacePattern::Prefix(q) if p.starts_with(q.as_str())),
                        ) {
                            continue;
                        }
                        let inside = negs.patterns.iter().any(|y| match y {
                            IfacePattern::Exact(n) => n.starts_with(p.as_str()),
                            IfacePattern::Prefix(q) => q.starts_with(p.as_str()),
                        });
                        if inside {
                            return None;
                        }
                        out.push(x.clone());
                    }
                }
            }
            Some(IfaceSet::only(out))
        }
    }
}

fn pattern_meet(x: &IfacePattern, y: &IfacePattern) -> Option<IfacePattern> {
    use IfacePattern::{Exact, Prefix};
    match (x, y) {
        (Exact(a), Exact(b)) => (a == b).then(|| x.clone()),
        (Exact(a), Prefix(p)) | (Prefix(p), Exact(a)) => {
            a.starts_with(p.as_str()).then(|| Exact(a.clone()))
        }
        (Prefix(p), Prefix(q)) => {
            if p.starts_with(q.as_str()) {
                Some(x.clone())
            } else if q.starts_with(p.as_str()) {
                Some(y.clone())
            } else {
                None
            }
        }
    }
}

/// [`implied_dependency`] of a match's left side, or of each part of a concatenation.
fn implied_dependencies(left: &Value) -> Vec<(Option<Fam>, Option<u8>)> {
    match single_key(left) {
        Some(("concat", Value::Array(parts))) => {
            parts.iter().filter_map(implied_dependency).collect()
        }
        _ => implied_dependency(left).into_iter().collect(),
    }
}

/// The family and transport protocol that nft makes a payload match depend
/// on (`icmp type` only matches ICMP over IPv4, `tcp flags` only TCP, ...).
/// `th` and raw payloads have no such dependency.
fn implied_dependency(left: &Value) -> Option<(Option<Fam>, Option<u8>)> {
    let mut left = left;
    if let Some(("&", Value::Array(a))) = single_key(left) {
        left = a.first()?;
    }
    let (key, body) = single_key(left)?;
    if key != "payload" {
        return None;
    }
    Some(match body.get("protocol")?.as_str()? {
        "ip" => (Some(Fam::V4), None),
        "ip6" => (Some(Fam::V6), None),
        "icmp" => (Some(Fam::V4), Some(proto::ICMP)),
        "icmpv6" => (Some(Fam::V6), Some(proto::ICMPV6)),
        "igmp" => (Some(Fam::V4), Some(2)),
        "tcp" => (None, Some(proto::TCP)),
        "udp" => (None, Some(proto::UDP)),
        "udplite" => (None, Some(136)),
        "sctp" => (None, Some(proto::SCTP)),
        "dccp" => (None, Some(33)),
        "esp" => (None, Some(50)),
        "ah" => (None, Some(51)),
        _ => return None,
    })
}

/// Intersect every alternative with `part` read by `field` (a numeric or
/// interface field), with the dependencies nft adds for it: an address is of
/// one family, a `tcp dport` only matches TCP, `th` ports are exact only for
/// protocols with ports.
pub(super) fn narrow(field: Field, part: &Part, alts: &mut Vec<Match>) -> Result<(), Why> {
    match (field, part) {
        (Field::Addr(side, fam), Part::Num(set)) => {
            let addrs = match fam {
                Fam::V4 => AddrSet {
                    v4: IntervalSet::from_ranges(
                        set.ranges()
                            .iter()
                            .filter(|&&(a, _)| a <= u32::MAX as u128)
                            .map(|&(a, b)| (a as u32, b.min(u32::MAX as u128) as u32)),
                    ),
                    v6: IntervalSet::empty(),
                },
                Fam::V6 => AddrSet {
                    v4: IntervalSet::empty(),
                    v6: set.clone(),
                },
            };
            for m in alts.iter_mut() {
                match side {
                    Side::Src => m.src = m.src.intersect(&addrs),
                    Side::Dst => m.dst = m.dst.intersect(&addrs),
                }
                restrict_family(m, fam);
            }
        }
        (Field::Proto(fam), Part::Num(set)) => {
            let p = IntervalSet::from_ranges(
                set.ranges()
                    .iter()
                    .filter(|&&(a, _)| a <= u8::MAX as u128)
                    .map(|&(a, b)| (a as u8, b.min(u8::MAX as u128) as u8)),
            );
            for m in alts.iter_mut() {
                m.protocol = m.protocol.intersect(&p);
                if let Some(f) = fam {
                    restrict_family(m, f);
                }
            }
        }
        (Field::Port(side, proto), Part::Num(set)) => {
            let ports = IntervalSet::from_ranges(
                set.ranges()
                    .iter()
                    .filter(|&&(a, _)| a <= u16::MAX as u128)
                    .map(|&(a, b)| (a as u16, b.min(u16::MAX as u128) as u16)),
            );
            let mut out = Vec::with_capacity(alts.len());
            for mut m in alts.drain(..) {
                if let Some(p) = proto {
                    m.protocol = m.protocol.intersect(&IntervalSet::single(p));
                    restrict_port(&mut m, side, &ports);
                    out.push(m);
                    continue;
                }
                // `th`: exact for protocols with ports, unknown bytes for the rest.
                let mut other = m.clone();
                other.protocol = other.protocol.difference(&port_protos());
                m.protocol = m.protocol.intersect(&port_protos());
                restrict_port(&mut m, side, &ports);
                let had_port_part = !m.protocol.is_empty();
                if had_port_part {
                    out.push(m);
                }
                if !other.protocol.is_empty() {
                    let text = "th port on a protocol without ports".to_string();
                    if !other.opaque.iter().any(|o| o.text == text) {
                        other.opaque.push(Opaque { text });
                    }
                    out.push(other);
                }
            }
            if out.is_empty() {
                // Every alternative became impossible: keep one empty match.
                let mut m = Match::any();
                m.protocol = IntervalSet::empty();
                out.push(m);
            }
            *alts = out;
        }
        (Field::Iface(side), Part::Iface(set)) => {
            for m in alts.iter_mut() {
                let cur = match side {
                    Side::Src => &mut m.iif,
                    Side::Dst => &mut m.oif,
                };
                *cur = intersect_ifaces(cur, set).ok_or_else(|| {
                    Why::Unsupported(
                        "this combination of interface matches is not expressible as one interface set".into(),
                    )
                })?;
            }
        }
        _ => unreachable!("a part is read with its field's kind"),
    }
    Ok(())
}

fn restrict_port(m: &mut Match, side: Side, ports: &IntervalSet<u16>) {
    match side {
        Side::Src => m.sport = m.sport.intersect(ports),
        Side::Dst => m.dport = m.dport.intersect(ports),
    }
}

pub(super) fn restrict_family(m: &mut Match, fam: Fam) {
    let keep = match fam {
        Fam::V4 => AddrSet::all_v4(),
        Fam::V6 => AddrSet::all_v6(),
    };
    m.src = m.src.intersect(&keep);
    m.dst = m.dst.intersect(&keep);
}

/// The mark a `meta mark` / `ct mark` expression reads, with the mask of
/// `mark & MASK` (every bit for the bare mark).
fn mark_operand(v: &Value) -> Option<(MarkField, u32)> {
    if let Some(f) = mark_key(v) {
        return Some((f, u32::MAX));
    }
    let (k, b) = single_key(v)?;
    let arr = b.as_array().filter(|a| a.len() == 2)?;
    if k != "&" {
        return None;
    }
    Some((mark_key(&arr[0])?, mark_number(&arr[1])?))
}

/// `meta mark` or `ct mark` (original direction only).
pub(super) fn mark_key(v: &Value) -> Option<MarkField> {
    match single_key(v)? {
        ("meta", m) if m.get("key").and_then(Value::as_str) == Some("mark") => {
            Some(MarkField::Packet)
        }
        ("ct", c)
            if c.get("key").and_then(Value::as_str) == Some("mark") && c.get("dir").is_none() =>
        {
            Some(MarkField::Conn)
        }
        _ => None,
    }
}

/// A 32-bit mark value: a JSON number or a numeric string (`0x10`).
pub(super) fn mark_number(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => match s.strip_prefix("0x") {
            Some(h) => u32::from_str_radix(h, 16).ok(),
            None => s.parse().ok(),
        },
        _ => None,
    }
}

impl<'a> Parser<'a> {
    /// Apply one `match` statement to every alternative; false on a hard error.
    pub(super) fn match_stmt<'r>(
        &mut self,
        body: &'r Value,
        ptr: &str,
        stmt: &Value,
        family: &str,
        table: &str,
        alts: &mut Vec<Match>,
    ) -> bool
    where
        'a: 'r,
    {
        let mptr = ptr_join(ptr, "match");
        match self.match_inner(body, &mptr, family, table, alts) {
            Ok(()) => true,
            Err(Why::Bad(e)) if e.help.is_some() => {
                self.errors.push(e);
                false
            }
            Err(Why::Bad(e)) => {
                self.errors.push(e.with_help(
                    "the file should be the unchanged output of `nft -j list ruleset` (libnftables JSON schema)",
                ));
                false
            }
            Err(Why::Unsupported(why)) => {
                let text = compact(stmt);
                self.note(
                    &mptr,
                    format!("{why}; the rule may or may not match ({text})"),
                );
                let implied = body
                    .get("left")
                    .map(implied_dependencies)
                    .unwrap_or_default();
                for m in alts.iter_mut() {
                    m.opaque.push(Opaque { text: text.clone() });
                    // Even an unmodelled header match only ever matches the
                    // protocol whose header it reads: nft adds that dependency
                    // (for a concatenation, every part's).
                    for &(fam, p) in &implied {
                        if let Some(f) = fam {
                            restrict_family(m, f);
                        }
                        if let Some(p) = p {
                            m.protocol = m.protocol.intersect(&IntervalSet::single(p));
                        }
                    }
                }
                true
            }
        }
    }

    fn match_inner<'r>(
        &mut self,
        body: &'r Value,
        ptr: &str,
        family: &str,
        table: &str,
        alts: &mut Vec<Match>,
    ) -> Result<(), Why>
    where
        'a: 'r,
    {
        let Some(o) = body.as_object() else {
            return Err(self.bad(
                ptr,
                "`match` must be an object with `left`, `right` and `op`",
            ));
        };
        let (Some(left), Some(right)) = (o.get("left"), o.get("right")) else {
            return Err(self.bad(ptr, "`match` needs both `left` and `right`"));
        };
        if let Some(("concat", parts)) = single_key(left) {
            let negated = match o.get("op").map(Value::as_str) {
                None | Some(Some("implicit" | "==" | "eq" | "in")) => false,
                Some(Some("!=" | "ne")) => true,
                Some(Some("<" | ">" | "<=" | ">=" | "lt" | "gt" | "le" | "ge")) => {
                    return Err(Why::Unsupported(
                        "an ordering comparison on a concatenation is not modelled".into(),
                    ))
                }
                _ => {
                    return Err(self.bad(
                        &ptr_join(ptr, "op"),
                        "`op` must be one of ==, !=, in, <, >, <=, >=",
                    ))
                }
            };
            return self.concat_match(
                parts,
                negated,
                right,
                &ptr_join(ptr, "right"),
                family,
                table,
                alts,
            );
        }
        if let Some(r) = self.nat_match(o, left, right, ptr, family, table, alts) {
            return r;
        }
        if let Some((field, mask)) = mark_operand(left) {
            let negated = match o.get("op").map(Value::as_str) {
                None | Some(Some("implicit" | "==" | "eq" | "in")) => false,
                Some(Some("!=" | "ne")) => true,
                _ => {
                    return Err(Why::Unsupported(
                        "an ordering comparison on a mark is not modelled".into(),
                    ))
                }
            };
            let values: Vec<u32> = match right {
                Value::Object(_) if single_key(right).is_some_and(|(k, _)| k == "set") => {
                    let items = single_key(right).and_then(|(_, b)| b.as_array());
                    items
                        .map(|a| a.iter().map(mark_number).collect::<Option<Vec<u32>>>())
                        .unwrap_or(None)
                        .ok_or_else(|| {
                            Why::Unsupported("a mark set other than a list of numbers".into())
                        })?
                }
                v => vec![mark_number(v).ok_or_else(|| {
                    Why::Unsupported("a mark compared with something other than a number".into())
                })?],
            };
            let test = |value: u32, invert: bool| MarkTest {
                field,
                mask,
                value,
                invert,
            };
            if negated {
                // Not any of them: every inequality holds.
                for m in alts.iter_mut() {
                    m.marks.extend(values.iter().map(|&v| test(v, true)));
                }
            } else {
                // One of them: one alternative per value.
                let old = std::mem::take(alts);
                for m in old {
                    for &v in &values {
                        let mut x = m.clone();
                        x.marks.push(test(v, false));
                        alts.push(x);
                    }
                }
            }
            return Ok(());
        }
        let field = self.field(left)?;
        let op = match o.get("op").map(Value::as_str) {
            None | Some(Some("implicit")) => {
                if matches!(field, Field::CtState(_) | Field::Extra(XField::TcpFlags(_))) {
                    Op::In
                } else {
                    Op::Eq
                }
            }
            Some(Some("==")) | Some(Some("eq")) => Op::Eq,
            Some(Some("!=")) | Some(Some("ne")) => Op::Ne,
            Some(Some("in")) => Op::In,
            Some(Some("<")) | Some(Some("lt")) => Op::Lt,
            Some(Some(">")) | Some(Some("gt")) => Op::Gt,
            Some(Some("<=")) | Some(Some("le")) => Op::Le,
            Some(Some(">=")) | Some(Some("ge")) => Op::Ge,
            _ => {
                return Err(self.bad(
                    &ptr_join(ptr, "op"),
                    "`op` must be one of ==, !=, in, <, >, <=, >=",
                ))
            }
        };
        self.apply(
            field,
            op,
            right,
            &ptr_join(ptr, "right"),
            family,
            table,
            alts,
        )
    }

    /// Intersect every alternative with `field op right`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply<'r>(
        &mut self,
        field: Field,
        op: Op,
        right: &'r Value,
        rptr: &str,
        family: &str,
        table: &str,
        alts: &mut Vec<Match>,
    ) -> Result<(), Why>
    where
        'a: 'r,
    {
        let rptr = rptr.to_string();
        match field {
            Field::Addr(_, fam) => {
                let set = self.numeric(right, &rptr, Kind::Addr(fam), op, family, table)?;
                narrow(field, &Part::Num(IntervalSet::from_ranges(set)), alts)?;
            }
            Field::Proto(_) => {
                let set = self.numeric(right, &rptr, Kind::Proto, op, family, table)?;
                narrow(field, &Part::Num(IntervalSet::from_ranges(set)), alts)?;
            }
            Field::Port(..) => {
                let set = self.numeric(right, &rptr, Kind::Port, op, family, table)?;
                narrow(field, &Part::Num(IntervalSet::from_ranges(set)), alts)?;
            }
            Field::Iface(_) => {
                if matches!(op, Op::Lt | Op::Gt | Op::Le | Op::Ge) {
                    return Err(Why::Unsupported(
                        "ordering comparison on an interface name is not modelled".into(),
                    ));
                }
                let pats = self.ifaces(right, &rptr, family, table)?;
                let set = if op == Op::Ne {
                    IfaceSet::except(pats)
                } else {
                    IfaceSet::only(pats)
                };
                narrow(field, &Part::Iface(set), alts)?;
            }
            Field::Family => {
                let Some(name) = right.as_str() else {
                    return Err(Why::Unsupported(
                        "`meta nfproto` with a non-name value".into(),
                    ));
                };
                let fam = match name {
                    "ipv4" | "ip" => Fam::V4,
                    "ipv6" | "ip6" => Fam::V6,
                    _ => {
                        return Err(Why::Unsupported(format!(
                            "protocol family `{name}` is not modelled"
                        )))
                    }
                };
                let fam = match (op, fam) {
                    (Op::Eq | Op::In, f) => f,
                    (Op::Ne, Fam::V4) => Fam::V6,
                    (Op::Ne, Fam::V6) => Fam::V4,
                    _ => return Err(Why::Unsupported("ordering comparison on a family".into())),
                };
                for m in alts.iter_mut() {
                    restrict_family(m, fam);
                }
            }
            Field::CtState(mask) => {
                let states = self.ct_state(right, &rptr, op, mask)?;
                for m in alts.iter_mut() {
                    m.ct_state = CtStates(m.ct_state.0 & states.0);
                }
            }
            Field::Extra(XField::TcpFlags(mask)) => {
                let set = fields::tcp_flags(mask, op, right)?;
                fields::narrow_flags(&set, alts);
            }
            Field::Extra(f) => {
                let set = self.numeric(right, &rptr, Kind::Extra(f), op, family, table)?;
                fields::narrow(f, &set, alts);
            }
        }
        Ok(())
    }

    pub(super) fn field(&self, left: &Value) -> Result<Field, Why> {
        let unsupported =
            || Why::Unsupported(format!("match on {} is not modelled", compact(left)));
        let Some((key, body)) = single_key(left) else {
            return Err(unsupported());
        };
        match key {
            "payload" => {
                let p = body.get("protocol").and_then(Value::as_str);
                let f = body.get("field").and_then(Value::as_str);
                let (Some(p), Some(f)) = (p, f) else {
                    return Err(unsupported());
                };
                let side = match f {
                    "saddr" | "sport" => Some(Side::Src),
                    "daddr" | "dport" => Some(Side::Dst),
                    _ => None,
                };
                if let Some(x) = XField::of_payload(p, f) {
                    return Ok(Field::Extra(x));
                }
                Ok(match (p, f, side) {
                    ("ip", "saddr" | "daddr", Some(s)) => Field::Addr(s, Fam::V4),
                    ("ip6", "saddr" | "daddr", Some(s)) => Field::Addr(s, Fam::V6),
                    ("ip", "protocol", _) => Field::Proto(Some(Fam::V4)),
                    ("ip6", "nexthdr", _) => Field::Proto(Some(Fam::V6)),
                    ("th", "sport" | "dport", Some(s)) => Field::Port(s, None),
                    (t, "sport" | "dport", Some(s)) => match t {
                        "tcp" => Field::Port(s, Some(proto::TCP)),
                        "udp" => Field::Port(s, Some(proto::UDP)),
                        "sctp" => Field::Port(s, Some(proto::SCTP)),
                        "dccp" => Field::Port(s, Some(33)),
                        "udplite" => Field::Port(s, Some(136)),
                        _ => return Err(unsupported()),
                    },
                    _ => return Err(unsupported()),
                })
            }
            "meta" => match body.get("key").and_then(Value::as_str) {
                Some("l4proto") => Ok(Field::Proto(None)),
                Some("iifname") => Ok(Field::Iface(Side::Src)),
                Some("oifname") => Ok(Field::Iface(Side::Dst)),
                Some("iif") => Ok(Field::Iface(Side::Src)),
                Some("oif") => Ok(Field::Iface(Side::Dst)),
                Some("nfproto") | Some("protocol") => Ok(Field::Family),
                Some(k) if XField::of_meta(k).is_some() => {
                    Ok(Field::Extra(XField::of_meta(k).expect("checked")))
                }
                _ => Err(unsupported()),
            },
            "ct" => match body.get("key").and_then(Value::as_str) {
                Some("state") if body.get("dir").is_none() => Ok(Field::CtState(None)),
                _ => Err(unsupported()),
            },
            "&" => {
                let arr = body
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .ok_or_else(unsupported)?;
                if matches!(self.field(&arr[0]), Ok(Field::CtState(None))) {
                    let mask = self.ct_value(&arr[1]).ok_or_else(unsupported)?;
                    Ok(Field::CtState(Some(
                        u8::try_from(mask).map_err(|_| unsupported())?,
                    )))
                } else if matches!(
                    self.field(&arr[0]),
                    Ok(Field::Extra(XField::TcpFlags(0xff)))
                ) {
                    // `tcp flags & (syn|ack) == syn`: the masked flags.
                    let mask = fields::flag_value(&arr[1]).ok_or_else(unsupported)?;
                    Ok(Field::Extra(XField::TcpFlags(mask)))
                } else {
                    Err(unsupported())
                }
            }
            _ => Err(unsupported()),
        }
    }

    /// A ct state value: a name, a number, a flag list or `{"|": [...]}`.
    fn ct_value(&self, v: &Value) -> Option<u32> {
        match v {
            Value::String(s) => CtStates::parse_one(s).map(kernel_ct_bit),
            Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Value::Array(a) => a.iter().try_fold(0, |acc, x| Some(acc | self.ct_value(x)?)),
            Value::Object(_) => {
                let (k, b) = single_key(v)?;
                if k == "|" {
                    self.ct_value(b)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    fn ct_state(
        &self,
        right: &Value,
        ptr: &str,
        op: Op,
        mask: Option<u8>,
    ) -> Result<CtStates, Why> {
        let mask = mask.map(u32::from).unwrap_or(u32::MAX);
        // A set: membership of the (masked) value.
        let members: Option<Vec<u32>> = match single_key(right) {
            Some(("set", Value::Array(elems))) => Some(
                elems
                    .iter()
                    .map(|e| {
                        let e = e.get("elem").and_then(|x| x.get("val")).unwrap_or(e);
                        self.ct_value(e)
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| self.bad(ptr, "expected conntrack state names (new, established, related, invalid, untracked)"))?,
            ),
            _ => None,
        };
        let value = match &members {
            Some(_) => 0,
            None => match right.as_str() {
                Some(s) if s.starts_with('@') => {
                    return Err(Why::Unsupported("a named set of conntrack states is not modelled".into()))
                }
                _ => self.ct_value(right).ok_or_else(|| {
                    self.bad(ptr, "expected conntrack state names (new, established, related, invalid, untracked)")
                })?,
            },
        };
        let mut out = 0u8;
        for st in MODEL_STATES {
            let s = kernel_ct_bit(st) & mask;
            let hit = match (&members, op) {
                (Some(ms), Op::Eq | Op::In) => ms.contains(&s),
                (Some(ms), Op::Ne) => !ms.contains(&s),
                (None, Op::In) => s & value != 0,
                (None, Op::Eq) => s == value,
                (None, Op::Ne) => s != value,
                _ => {
                    return Err(Why::Unsupported(
                        "ordering comparison on conntrack state".into(),
                    ))
                }
            };
            if hit {
                out |= st;
            }
        }
        Ok(CtStates(out))
    }

    /// Read a right-hand side as numeric ranges, then apply the operator.
    pub(super) fn numeric<'r>(
        &mut self,
        right: &'r Value,
        ptr: &str,
        kind: Kind,
        op: Op,
        family: &str,
        table: &str,
    ) -> Result<Vec<(u128, u128)>, Why>
    where
        'a: 'r,
    {
        let mut ranges = Vec::new();
        self.collect(right, ptr, kind, family, table, &mut ranges, 0)?;
        let set = IntervalSet::from_ranges(ranges);
        let max = kind.max();
        let within = |s: &IntervalSet<u128>| s.intersect(&IntervalSet::range(0, max));
        let single = || -> Result<u128, Why> {
            match set.ranges() {
                [(a, b)] if a == b => Ok(*a),
                _ => Err(Why::Unsupported(
                    "an ordering comparison against a set or range".into(),
                )),
            }
        };
        let out = match op {
            Op::Eq | Op::In => set.clone(),
            Op::Ne => within(&set.complement()),
            Op::Lt => match single()? {
                0 => IntervalSet::empty(),
                v => IntervalSet::range(0, v - 1),
            },
            Op::Le => IntervalSet::range(0, single()?),
            Op::Gt => {
                let v = single()?;
                if v >= max {
                    IntervalSet::empty()
                } else {
                    IntervalSet::range(v + 1, max)
                }
            }
            Op::Ge => IntervalSet::range(single()?, max),
        };
        Ok(out.ranges().to_vec())
    }

    pub(super) fn scalar(&self, v: &Value, ptr: &str, kind: Kind) -> Result<u128, Why> {
        let bad = || {
            self.bad(
                ptr,
                format!("expected {}, found {}", kind.what(), compact(v)),
            )
        };
        let n = match (kind, v) {
            (_, Value::Number(n)) if kind != Kind::Addr(Fam::V6) => n.as_u64().map(u128::from).ok_or_else(bad)?,
            (Kind::Addr(Fam::V4), Value::String(s)) => s.parse::<Ipv4Addr>().map(|a| u32::from(a) as u128).map_err(|_| bad())?,
            (Kind::Addr(Fam::V6), Value::String(s)) => s.parse::<Ipv6Addr>().map(u128::from).map_err(|_| bad())?,
            (Kind::Proto, Value::String(s)) => proto_number(s).map(u128::from).ok_or_else(bad)?,
            (Kind::Extra(f), Value::String(s)) => match f.name(s) {
                Some(v) => v,
                None if f == XField::Length => return Err(bad()),
                None => s.parse::<u128>().map_err(|_| bad())?,
            },
            (Kind::Port, Value::String(s)) => match s.parse::<u16>() {
                Ok(p) => p as u128,
                Err(_) => {
                    return Err(Why::Unsupported(format!(
                        "service name `{s}` (list with `nft -j list ruleset` without -S to get numbers)"
                    )))
                }
            },
            _ => return Err(bad()),
        };
        if n > kind.max() {
            return Err(bad());
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(n: &str) -> IfacePattern {
        IfacePattern::Exact(n.into())
    }
    fn prefix(n: &str) -> IfacePattern {
        IfacePattern::Prefix(n.into())
    }

    #[test]
    fn interface_intersections_are_exact_or_refused() {
        let names = ["rf-a", "rf-b", "eth0", "rf-", "x"];
        let sets = [
            IfaceSet::any(),
            IfaceSet::only(vec![prefix("rf-")]),
            IfaceSet::only(vec![exact("rf-a"), exact("eth0")]),
            IfaceSet::except(vec![exact("rf-a")]),
            IfaceSet::except(vec![prefix("eth")]),
            IfaceSet::only(vec![prefix("rf-a"), exact("x")]),
        ];
        for a in &sets {
            for b in &sets {
                match intersect_ifaces(a, b) {
                    Some(c) => {
                        for n in names {
                            assert_eq!(
                                c.matches(Some(n)),
                                a.matches(Some(n)) && b.matches(Some(n)),
                                "{a:?} ∩ {b:?} on {n}"
                            );
                        }
                    }
                    // Only a prefix with a hole in it is not one set.
                    None => assert!(a.negated != b.negated),
                }
            }
        }
        assert!(intersect_ifaces(
            &IfaceSet::only(vec![prefix("rf-")]),
            &IfaceSet::except(vec![exact("rf-a")])
        )
        .is_none());
    }
}
