//! `ipset save` output: the set definitions iptables rules name with
//! `-m set --match-set NAME src|dst[,...]`.
//!
//! Types read: `hash:ip`, `hash:net`, `hash:ip,port`, `hash:net,port`,
//! `hash:ip,port,ip`, `hash:ip,port,net`, `hash:net,port,net`,
//! `hash:net,net`, `hash:net,iface`, `bitmap:ip`, `bitmap:port` and
//! `list:set` (the union of its members). A set is a union of boxes, one per
//! element, over the header fields its dimensions read in the direction the
//! rule's flags give (`src,dst`: first dimension from the source, second from
//! the destination); the iptables reader turns a `--match-set` into one model
//! rule per box (`!`: per box of the complement), as for nft concatenations.
//!
//! Kept opaque (the rule may or may not match, with a note): sets with
//! `nomatch` elements (exceptions inside a net), MAC and mark dimensions,
//! port elements of protocols without ports (`icmp:echo-request`), and
//! matches whose boxes exceed the budget.

use crate::nft::concat::{self, Part, TBox};
use ringfence_diag::{InputError, InputErrors};
use ringfence_model::{proto, IfacePattern, IfaceSet, IntervalSet};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// At most this many model rules for one `--match-set` (elements times
/// the rule's alternatives); over it the match stays opaque.
pub(crate) const SET_RULE_BUDGET: usize = 20_000;

/// The header fields a set match can read, in the order boxes hold them
/// (interfaces last: the complement sweep needs them there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum SetField {
    /// Source address.
    SrcAddr,
    /// Destination address.
    DstAddr,
    /// Transport protocol (a port dimension reads it too).
    Proto,
    /// Source port.
    SrcPort,
    /// Destination port.
    DstPort,
    /// Input interface.
    Iif,
    /// Output interface.
    Oif,
}

/// One dimension of a set type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dim {
    /// `ip` or `net`: an address, prefix or range.
    Addr,
    /// `port`: a protocol and a port (range).
    Port,
    /// `iface`: an interface name.
    Iface,
}

/// One part of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Addr(u128, u128),
    /// Protocols (any of) and a port range.
    Port(Vec<u8>, u16, u16),
    Iface(IfacePattern),
}

/// One set definition.
#[derive(Debug, Clone)]
struct IpSet {
    file: String,
    line: u64,
    v6: bool,
    dims: Vec<Dim>,
    /// Why matches on this set stay opaque, if they do.
    opaque: Option<String>,
    elems: Vec<Vec<Value>>,
    /// Member set names of a `list:set`.
    members: Option<Vec<String>>,
}

/// The sets of one or more `ipset save` files.
#[derive(Debug, Clone, Default)]
pub struct Sets {
    sets: HashMap<String, IpSet>,
    files: Vec<String>,
}

/// What a `--match-set` becomes.
pub(crate) enum Lowered {
    /// Boxes over `fields`: the packets the match (or its negation) matches.
    Boxes {
        /// The fields each box gives a value set for, in [`SetField`] order.
        fields: Vec<SetField>,
        /// Boxes whose union is the match.
        boxes: Vec<TBox>,
    },
    /// Not modelled: the rule may or may not match; the reason.
    Opaque(String),
}

/// Whether `text` reads as `ipset save` output: its first line is a
/// `create NAME TYPE` with an ipset type.
pub fn looks_like(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() >= 3
                && w[0] == "create"
                && ["hash:", "bitmap:", "list:"]
                    .iter()
                    .any(|p| w[2].starts_with(p))
        })
}

/// Split a line into words with their 1-based columns; `"..."` is one word.
fn words(line: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0u64;
    let mut quoted = false;
    for (i, c) in line.chars().enumerate() {
        let col = i as u64 + 1;
        if c == '"' {
            if cur.is_empty() && !quoted {
                start = col;
            }
            quoted = !quoted;
            continue;
        }
        if c.is_whitespace() && !quoted {
            if !cur.is_empty() {
                out.push((std::mem::take(&mut cur), start));
            }
            continue;
        }
        if cur.is_empty() {
            start = col;
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push((cur, start));
    }
    out
}

impl Sets {
    /// No sets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no set is defined.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// The files the sets came from, for messages.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Add the sets of one `ipset save` file.
    pub fn add_file(&mut self, text: &str, file: &str) -> Result<(), InputErrors> {
        let mut errors = Vec::new();
        self.files.push(file.to_string());
        for (idx, raw) in text.lines().enumerate() {
            let line = idx as u64 + 1;
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let w = words(raw);
            let r = match w[0].0.as_str() {
                "create" | "-N" => self.create(&w, file, line),
                "add" | "-A" => self.add(&w, file, line),
                other => Err(InputError::at(
                    file,
                    line,
                    w[0].1,
                    format!("unexpected `{other}`: expected `create NAME TYPE ...` or `add NAME ELEMENT` lines"),
                )
                .with_help("give the output of `ipset save` (not `ipset list`)")),
            };
            if let Err(e) = r {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(InputErrors(errors))
        }
    }

    fn create(&mut self, w: &[(String, u64)], file: &str, line: u64) -> Result<(), InputError> {
        let (Some((name, ncol)), Some((ty, tcol))) = (w.get(1), w.get(2)) else {
            return Err(InputError::at(
                file,
                line,
                w[0].1,
                "`create` needs a set name and a type: expected `create NAME hash:ip ...`",
            ));
        };
        if let Some(prev) = self.sets.get(name) {
            return Err(InputError::at(
                file,
                line,
                *ncol,
                format!(
                    "set `{name}` is defined twice (first at {}:{})",
                    prev.file, prev.line
                ),
            ));
        }
        let v6 = w
            .windows(2)
            .any(|p| p[0].0 == "family" && p[1].0 == "inet6");
        let (method, dims) = ty.split_once(':').unwrap_or((ty, ""));
        let mut set = IpSet {
            file: file.to_string(),
            line,
            v6,
            dims: Vec::new(),
            opaque: None,
            elems: Vec::new(),
            members: None,
        };
        match (method, dims) {
            ("list", "set") => set.members = Some(Vec::new()),
            ("hash" | "bitmap", dims) => {
                for d in dims.split(',') {
                    match d {
                        "ip" | "net" => set.dims.push(Dim::Addr),
                        "port" => set.dims.push(Dim::Port),
                        "iface" => set.dims.push(Dim::Iface),
                        "mac" | "mark" => {
                            set.opaque = Some(format!("set `{name}` of type {ty}: {d} is not a field of the model"));
                            set.dims.push(Dim::Addr);
                        }
                        _ => {
                            return Err(InputError::at(
                                file,
                                line,
                                *tcol,
                                format!("unknown set type `{ty}`: expected hash:ip, hash:net, hash:ip,port, hash:net,port, bitmap:port, list:set or another ipset type"),
                            ))
                        }
                    }
                }
            }
            _ => {
                return Err(InputError::at(
                    file,
                    line,
                    *tcol,
                    format!("unknown set type `{ty}`: expected hash:..., bitmap:... or list:set"),
                ))
            }
        }
        self.sets.insert(name.clone(), set);
        Ok(())
    }

    fn add(&mut self, w: &[(String, u64)], file: &str, line: u64) -> Result<(), InputError> {
        let (Some((name, ncol)), Some((elem, ecol))) = (w.get(1), w.get(2)) else {
            return Err(InputError::at(
                file,
                line,
                w[0].1,
                "`add` needs a set name and an element: expected `add NAME ELEMENT`",
            ));
        };
        let names: Vec<String> = self.sets.keys().cloned().collect();
        let Some(set) = self.sets.get_mut(name) else {
            let mut e = InputError::at(
                file,
                line,
                *ncol,
                format!("element for set `{name}`, which no `create` line before it defines"),
            );
            if let Some(c) = ringfence_diag::closest(name, names.iter().map(String::as_str)) {
                e = e.with_help(format!("did you mean `{c}`?"));
            }
            return Err(e);
        };
        if let Some(m) = &mut set.members {
            m.push(elem.clone());
            return Ok(());
        }
        if w[3..].iter().any(|(x, _)| x == "nomatch") {
            set.opaque = Some(format!(
                "set `{name}` has `nomatch` elements (exceptions inside its nets), which are not modelled"
            ));
        }
        let parts: Vec<&str> = elem.split(',').collect();
        if parts.len() != set.dims.len() {
            return Err(InputError::at(
                file,
                line,
                *ecol,
                format!(
                    "element `{elem}` has {} part(s), but set `{name}` has {} dimension(s)",
                    parts.len(),
                    set.dims.len()
                ),
            ));
        }
        let mut values = Vec::with_capacity(parts.len());
        let mut col = *ecol;
        for (d, p) in set.dims.iter().zip(&parts) {
            let bad = |what: &str| {
                InputError::at(
                    file,
                    line,
                    col,
                    format!("`{p}` in set `{name}`: expected {what}"),
                )
            };
            let v = match d {
                Dim::Addr if set.opaque.is_some() => Value::Addr(0, 0),
                Dim::Addr => {
                    let (lo, hi) = addr_range(p, set.v6).ok_or_else(|| {
                        bad(if set.v6 {
                            "an IPv6 address, prefix or range (the set has family inet6)"
                        } else {
                            "an IPv4 address, prefix or range"
                        })
                    })?;
                    Value::Addr(lo, hi)
                }
                Dim::Port => {
                    let (protos, rest) = match p.split_once(':') {
                        Some((pr, rest)) => (proto_of(pr).map(|x| vec![x]), rest),
                        // bitmap:port reads TCP and UDP ports; hash types default to TCP.
                        None if set.dims.len() == 1 => (Some(vec![proto::TCP, proto::UDP]), *p),
                        None => (Some(vec![proto::TCP]), *p),
                    };
                    let protos =
                        protos.ok_or_else(|| bad("`PROTO:PORT` with a protocol name or number"))?;
                    if !protos.iter().all(|p| matches!(*p, 6 | 17 | 132 | 136)) {
                        set.opaque = Some(format!(
                            "set `{name}` holds `{p}`: ICMP types and protocols without ports are not modelled"
                        ));
                        Value::Port(protos, 0, 0)
                    } else {
                        let (lo, hi) = crate::values::port_range(rest, '-')
                            .ok_or_else(|| bad("a port or port range"))?;
                        Value::Port(protos, lo, hi)
                    }
                }
                Dim::Iface => {
                    let n = p.strip_prefix("physdev:").unwrap_or(p);
                    Value::Iface(IfacePattern::Exact(n.to_string()))
                }
            };
            values.push(v);
            col += p.chars().count() as u64 + 1;
        }
        set.elems.push(values);
        Ok(())
    }

    /// The name of the closest defined set, for "did you mean".
    pub(crate) fn closest(&self, name: &str) -> Option<&str> {
        ringfence_diag::closest(name, self.sets.keys().map(String::as_str))
    }

    /// Whether `name` is defined.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.sets.contains_key(name)
    }

    /// `--match-set name flags` (negated with `!`) as boxes over the fields
    /// it reads. `disjoint`: the boxes must not overlap (the rule jumps).
    /// `Err` when the set is used against its definition (a family or
    /// dimension mismatch the kernel would refuse), with the reason.
    pub(crate) fn lower(
        &self,
        name: &str,
        flags: &[bool],
        v6: bool,
        negated: bool,
        disjoint: bool,
    ) -> Result<Lowered, String> {
        let mut members = Vec::new();
        self.flatten(name, &mut members, 0)?;
        let mut fields: Vec<SetField> = Vec::new();
        let mut boxes_by_member = Vec::new();
        for m in &members {
            let set = &self.sets[*m];
            if let Some(why) = &set.opaque {
                return Ok(Lowered::Opaque(why.clone()));
            }
            if set.v6 != v6 {
                return Err(format!(
                    "set `{m}` holds {} addresses, but this is an {} ruleset",
                    if set.v6 { "IPv6" } else { "IPv4" },
                    if v6 { "ip6tables" } else { "iptables" }
                ));
            }
            if flags.len() < set.dims.len() {
                return Err(format!(
                    "set `{m}` has {} dimension(s), but the match gives {} direction(s): expected one of src/dst per dimension",
                    set.dims.len(),
                    flags.len()
                ));
            }
            let dims: Vec<(Dim, bool)> = set
                .dims
                .iter()
                .copied()
                .zip(flags.iter().copied())
                .collect();
            for &(d, src) in &dims {
                for f in fields_of(d, src) {
                    if !fields.contains(&f) {
                        fields.push(f);
                    }
                }
            }
            boxes_by_member.push((dims, &set.elems));
        }
        fields.sort();
        let mut boxes = Vec::new();
        for (dims, elems) in boxes_by_member {
            for e in elems.iter() {
                if let Some(b) = element_box(&fields, &dims, e, v6) {
                    boxes.push(b);
                }
            }
            if boxes.len() > SET_RULE_BUDGET {
                return Ok(Lowered::Opaque(format!(
                    "set `{name}` has more than {SET_RULE_BUDGET} elements (the budget)"
                )));
            }
        }
        let boxes = concat::merge(boxes);
        let boxes = if negated {
            let full: TBox = fields.iter().map(|&f| full_part(f, v6)).collect();
            concat::complement(&full, &boxes, SET_RULE_BUDGET).map(concat::merge)
        } else if disjoint {
            concat::disjoint(&boxes, SET_RULE_BUDGET)
        } else {
            Ok(boxes)
        };
        Ok(match boxes {
            Ok(boxes) => Lowered::Boxes { fields, boxes },
            Err(_) => Lowered::Opaque(format!(
                "set `{name}` used {} needs more than {SET_RULE_BUDGET} model rules (the budget) or an interface set the model cannot express",
                if negated { "with `!`" } else { "by a jump" }
            )),
        })
    }

    /// The plain sets `name` stands for (itself, or a list's members).
    fn flatten<'s>(&'s self, name: &str, out: &mut Vec<&'s str>, depth: u8) -> Result<(), String> {
        let Some((key, set)) = self.sets.get_key_value(name) else {
            return Err(format!("list:set member `{name}` is not defined"));
        };
        match &set.members {
            Some(_) if depth > 8 => Err(format!("list:set `{name}` nests too deeply")),
            Some(ms) => {
                for m in ms {
                    self.flatten(m, out, depth + 1)?;
                }
                Ok(())
            }
            None => {
                out.push(key);
                Ok(())
            }
        }
    }
}

fn fields_of(d: Dim, src: bool) -> Vec<SetField> {
    match (d, src) {
        (Dim::Addr, true) => vec![SetField::SrcAddr],
        (Dim::Addr, false) => vec![SetField::DstAddr],
        (Dim::Port, true) => vec![SetField::Proto, SetField::SrcPort],
        (Dim::Port, false) => vec![SetField::Proto, SetField::DstPort],
        (Dim::Iface, true) => vec![SetField::Iif],
        (Dim::Iface, false) => vec![SetField::Oif],
    }
}

fn full_part(f: SetField, v6: bool) -> Part {
    match f {
        SetField::SrcAddr | SetField::DstAddr => Part::Num(IntervalSet::range(
            0,
            if v6 { u128::MAX } else { u32::MAX as u128 },
        )),
        SetField::Proto => Part::Num(IntervalSet::range(0, 255)),
        SetField::SrcPort | SetField::DstPort => Part::Num(IntervalSet::range(0, 65535)),
        SetField::Iif | SetField::Oif => Part::Iface(IfaceSet::any()),
    }
}

/// One element as a box over `fields` (parts it does not name are full);
/// `None` when two dimensions read one field with disjoint values.
fn element_box(fields: &[SetField], dims: &[(Dim, bool)], e: &[Value], v6: bool) -> Option<TBox> {
    let mut b: TBox = fields.iter().map(|&f| full_part(f, v6)).collect();
    let at = |f: SetField| fields.iter().position(|&x| x == f).expect("field listed");
    let meet = |b: &mut TBox, f: SetField, p: Part| {
        let i = at(f);
        b[i] = match (&b[i], &p) {
            (Part::Num(a), Part::Num(c)) => Part::Num(a.intersect(c)),
            (Part::Iface(_), Part::Iface(c)) => Part::Iface(c.clone()),
            _ => unreachable!("a field has one kind"),
        };
    };
    for (&(d, src), v) in dims.iter().zip(e) {
        match (d, v) {
            (Dim::Addr, Value::Addr(lo, hi)) => {
                let f = if src {
                    SetField::SrcAddr
                } else {
                    SetField::DstAddr
                };
                meet(&mut b, f, Part::Num(IntervalSet::range(*lo, *hi)));
            }
            (Dim::Port, Value::Port(protos, lo, hi)) => {
                meet(
                    &mut b,
                    SetField::Proto,
                    Part::Num(IntervalSet::from_ranges(
                        protos.iter().map(|&p| (p as u128, p as u128)),
                    )),
                );
                let f = if src {
                    SetField::SrcPort
                } else {
                    SetField::DstPort
                };
                meet(
                    &mut b,
                    f,
                    Part::Num(IntervalSet::range(*lo as u128, *hi as u128)),
                );
            }
            (Dim::Iface, Value::Iface(p)) => {
                let f = if src { SetField::Iif } else { SetField::Oif };
                meet(&mut b, f, Part::Iface(IfaceSet::only(vec![p.clone()])));
            }
            _ => unreachable!("elements are read with their set's dimensions"),
        }
    }
    let empty = b.iter().any(|p| match p {
        Part::Num(s) => s.is_empty(),
        Part::Iface(s) => s.is_empty(),
    });
    (!empty).then_some(b)
}

/// `a`, `a/len` or `a-b` of one family, as an inclusive range.
fn addr_range(s: &str, v6: bool) -> Option<(u128, u128)> {
    let one = |x: &str| -> Option<u128> {
        if v6 {
            x.parse::<Ipv6Addr>().ok().map(u128::from)
        } else {
            x.parse::<Ipv4Addr>().ok().map(|a| u32::from(a) as u128)
        }
    };
    let bits: u32 = if v6 { 128 } else { 32 };
    if let Some((a, len)) = s.split_once('/') {
        let len: u32 = len.parse().ok().filter(|l| *l <= bits)?;
        let a = one(a)?;
        let host = if len == bits {
            0
        } else if v6 {
            u128::MAX >> len
        } else {
            (u32::MAX >> len) as u128
        };
        return Some((a & !host, (a & !host) | host));
    }
    if let Some((a, b)) = s.split_once('-') {
        let (a, b) = (one(a)?, one(b)?);
        return (a <= b).then_some((a, b));
    }
    one(s).map(|a| (a, a))
}

fn proto_of(s: &str) -> Option<u8> {
    Some(match s {
        "tcp" => proto::TCP,
        "udp" => proto::UDP,
        "sctp" => proto::SCTP,
        "udplite" => 136,
        "icmp" => proto::ICMP,
        "icmpv6" | "ipv6-icmp" => proto::ICMPV6,
        _ => return s.parse().ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVE: &str = "create h4 hash:ip family inet hashsize 1024 maxelem 65536\n\
add h4 198.18.0.1\n\
add h4 198.18.0.8\n\
create ip4 hash:ip,port family inet hashsize 1024\n\
add ip4 198.18.0.1,tcp:22\n\
add ip4 198.18.0.2,udp:53\n\
create bp bitmap:port range 1000-2000\n\
add bp 1000\n\
create n6 hash:net family inet6 timeout 300 comment\n\
add n6 2001:db8::/64 timeout 299 comment \"x y\"\n\
create l list:set size 8\n\
add l h4\n";

    fn sets() -> Sets {
        let mut s = Sets::new();
        s.add_file(SAVE, "sets.save")
            .unwrap_or_else(|e| panic!("{e}"));
        s
    }

    #[test]
    fn detects_ipset_save_output() {
        assert!(looks_like(SAVE));
        assert!(!looks_like("create table inet t\n"));
        assert!(!looks_like("*filter\n"));
    }

    #[test]
    fn two_dimensions_read_source_and_destination() {
        let Lowered::Boxes { fields, boxes } = sets()
            .lower("ip4", &[true, false], false, false, false)
            .unwrap()
        else {
            panic!("opaque")
        };
        assert_eq!(
            fields,
            [SetField::SrcAddr, SetField::Proto, SetField::DstPort]
        );
        assert_eq!(boxes.len(), 2);
    }

    #[test]
    fn a_list_is_the_union_of_its_members() {
        let Lowered::Boxes { boxes, .. } =
            sets().lower("l", &[false], false, false, false).unwrap()
        else {
            panic!("opaque")
        };
        let held = |a: Ipv4Addr| {
            boxes
                .iter()
                .any(|b| matches!(&b[0], Part::Num(s) if s.contains(u32::from(a) as u128)))
        };
        assert!(held(Ipv4Addr::new(198, 18, 0, 1)) && held(Ipv4Addr::new(198, 18, 0, 8)));
        assert!(!held(Ipv4Addr::new(198, 18, 0, 2)));
    }

    #[test]
    fn family_and_dimension_mismatches_are_refused() {
        assert!(sets().lower("n6", &[true], false, false, false).is_err());
        assert!(sets().lower("ip4", &[true], false, false, false).is_err());
    }

    #[test]
    fn bad_elements_are_located() {
        let e = Sets::new()
            .add_file(
                "create s hash:ip,port\nadd s 198.18.0.1,tcp:99999\n",
                "s.save",
            )
            .unwrap_err();
        assert_eq!(e.0[0].position(), "s.save:2:18");
    }
}
