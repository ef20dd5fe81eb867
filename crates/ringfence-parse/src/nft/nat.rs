//! nft address translation statements (`dnat`, `snat`, `masquerade`,
//! `redirect`, with ranges and maps) and the matches that read what they
//! did or what the host's addresses are (`ct status`, `ct original ...`,
//! `fib saddr|daddr type`).

use super::expressions::restrict_family;
use super::{compact, single_key, Fam, Kind, Op, Parser, Why, NAT_STATES};
use ringfence_model::{
    Action, AddrSet, AddrSide, AddrTypes, CtNat, CtStates, IfaceSide, IntervalSet, Match, NatKind,
    NatRewrite, Opaque, OrigTuple, Rule, RuleRef,
};
use serde_json::Value;
use std::net::IpAddr;

/// What a translation statement became.
pub(super) enum NatLowered {
    /// The rule's action (the statement ends the rule).
    Action(Action),
    /// One rule per map element was added: the rule is done.
    Done,
    /// A hard error was recorded.
    Failed,
}

/// The conntrack status bits nft names (`ct status`), as the kernel's values.
fn status_bit(name: &str) -> Option<u32> {
    Some(match name {
        "expected" => 1,
        "seen-reply" => 2,
        "assured" => 4,
        "confirmed" => 8,
        "snat" => 16,
        "dnat" => 32,
        "dying" => 512,
        _ => return None,
    })
}

const SNAT_BIT: u32 = 16;
const DNAT_BIT: u32 = 32;

fn status_value(v: &Value) -> Option<u32> {
    match v {
        Value::String(s) => status_bit(s),
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::Array(a) => a.iter().try_fold(0, |acc, x| Some(acc | status_value(x)?)),
        Value::Object(_) => match single_key(v)? {
            ("|", b) => status_value(b),
            _ => None,
        },
        _ => None,
    }
}

fn op_of(o: Option<&Value>) -> Option<Op> {
    Some(match o.map(Value::as_str) {
        None | Some(Some("implicit")) => Op::In,
        Some(Some("==" | "eq")) => Op::Eq,
        Some(Some("!=" | "ne")) => Op::Ne,
        Some(Some("in")) => Op::In,
        Some(Some("<" | "lt")) => Op::Lt,
        Some(Some(">" | "gt")) => Op::Gt,
        Some(Some("<=" | "le")) => Op::Le,
        Some(Some(">=" | "ge")) => Op::Ge,
        _ => return None,
    })
}

/// The routing type names of nft's `fib ... type`.
fn fib_type(v: &Value) -> Option<u16> {
    match v {
        Value::String(s) => AddrTypes::parse_one(s),
        Value::Object(_) => match single_key(v)? {
            ("set", Value::Array(a)) => a.iter().try_fold(0, |acc, x| Some(acc | fib_type(x)?)),
            _ => None,
        },
        Value::Array(a) => a.iter().try_fold(0, |acc, x| Some(acc | fib_type(x)?)),
        _ => None,
    }
}

impl<'a> Parser<'a> {
    /// `ct status ...`, `ct original saddr|daddr|proto-src|proto-dst ...`
    /// and `fib saddr|daddr type ...`: `None` when `left` is none of them
    /// (the general match reader takes it).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn nat_match<'r>(
        &mut self,
        o: &serde_json::Map<String, Value>,
        left: &'r Value,
        right: &'r Value,
        ptr: &str,
        family: &str,
        table: &str,
        alts: &mut [Match],
    ) -> Option<Result<(), Why>>
    where
        'a: 'r,
    {
        let unsupported = |what: String| Some(Err(Why::Unsupported(what)));
        let op = op_of(o.get("op"));
        // `ct status & MASK`, or `ct status`.
        let (ct_key, mask) = match single_key(left) {
            Some(("ct", b)) => (Some(b), None),
            Some(("&", Value::Array(a))) if a.len() == 2 => match single_key(&a[0]) {
                Some(("ct", b)) if b.get("key").and_then(Value::as_str) == Some("status") => {
                    (Some(b), status_value(&a[1]))
                }
                _ => (None, None),
            },
            _ => (None, None),
        };
        if let Some(b) = ct_key {
            let key = b.get("key").and_then(Value::as_str).unwrap_or("");
            let dir = b.get("dir").and_then(Value::as_str);
            if key == "status" && dir.is_none() {
                let Some(op) = op else {
                    return Some(Err(
                        self.bad(ptr, "`op` must be one of ==, !=, in, <, >, <=, >=")
                    ));
                };
                let Some(value) = status_value(right) else {
                    return unsupported(format!("`ct status` compared with {}", compact(right)));
                };
                let nat_bits = SNAT_BIT | DNAT_BIT;
                // The combinations (snat, dnat) for which the test holds.
                let holds = |s: bool, d: bool| -> Option<bool> {
                    let status = if s { SNAT_BIT } else { 0 } | if d { DNAT_BIT } else { 0 };
                    match (mask, op) {
                        (None, Op::In) if value & !nat_bits == 0 => Some(status & value != 0),
                        (Some(m), Op::Eq) if m & !nat_bits == 0 => Some(status & m == value),
                        (Some(m), Op::Ne) if m & !nat_bits == 0 => Some(status & m != value),
                        _ => None,
                    }
                };
                let mut set = 0u8;
                for (s, d) in [(false, false), (true, false), (false, true), (true, true)] {
                    match holds(s, d) {
                        Some(true) => set |= CtNat::bit(s, d),
                        Some(false) => {}
                        None => {
                            return unsupported(format!(
                                "`ct status` test {} on bits other than snat and dnat",
                                compact(right)
                            ))
                        }
                    }
                }
                for m in alts.iter_mut() {
                    m.ct_nat = m.ct_nat.intersect(CtNat(set));
                    // Without a connection the expression breaks the rule.
                    m.ct_state = CtStates(m.ct_state.0 & CtStates::TRACKED);
                }
                return Some(Ok(()));
            }
            if dir == Some("original") {
                let fam = match b.get("family").and_then(Value::as_str) {
                    Some("ip") => Some(Fam::V4),
                    Some("ip6") => Some(Fam::V6),
                    _ => None,
                };
                let (key, fam) = match key {
                    "ip saddr" => ("saddr", Some(Fam::V4)),
                    "ip daddr" => ("daddr", Some(Fam::V4)),
                    "ip6 saddr" => ("saddr", Some(Fam::V6)),
                    "ip6 daddr" => ("daddr", Some(Fam::V6)),
                    k => (k, fam),
                };
                let Some(op) = op.map(|o| {
                    if o == Op::In && single_key(right).is_none() {
                        Op::Eq
                    } else {
                        o
                    }
                }) else {
                    return Some(Err(
                        self.bad(ptr, "`op` must be one of ==, !=, in, <, >, <=, >=")
                    ));
                };
                let rptr = format!("{ptr}/right");
                let mut tuple = OrigTuple::any();
                match key {
                    "saddr" | "daddr" => {
                        let fam =
                            match fam {
                                Some(f) => f,
                                None => match family {
                                    "ip" => Fam::V4,
                                    "ip6" => Fam::V6,
                                    _ => return unsupported(
                                        "`ct original` address without a family in an inet table"
                                            .into(),
                                    ),
                                },
                            };
                        let ranges =
                            match self.numeric(right, &rptr, Kind::Addr(fam), op, family, table) {
                                Ok(r) => r,
                                Err(e) => return Some(Err(e)),
                            };
                        let set = match fam {
                            Fam::V4 => AddrSet {
                                v4: IntervalSet::from_ranges(
                                    ranges
                                        .iter()
                                        .filter(|&&(a, _)| a <= u32::MAX as u128)
                                        .map(|&(a, b)| (a as u32, b.min(u32::MAX as u128) as u32)),
                                ),
                                v6: IntervalSet::empty(),
                            },
                            Fam::V6 => AddrSet {
                                v4: IntervalSet::empty(),
                                v6: IntervalSet::from_ranges(ranges),
                            },
                        };
                        if key == "saddr" {
                            tuple.src = set;
                        } else {
                            tuple.dst = set;
                        }
                        for m in alts.iter_mut() {
                            restrict_family(m, fam);
                        }
                    }
                    "proto-src" | "proto-dst" => {
                        let ranges = match self.numeric(right, &rptr, Kind::Port, op, family, table)
                        {
                            Ok(r) => r,
                            Err(e) => return Some(Err(e)),
                        };
                        let set = IntervalSet::from_ranges(
                            ranges
                                .iter()
                                .filter(|&&(a, _)| a <= u16::MAX as u128)
                                .map(|&(a, b)| (a as u16, b.min(u16::MAX as u128) as u16)),
                        );
                        if key == "proto-src" {
                            tuple.sport = set;
                        } else {
                            tuple.dport = set;
                        }
                    }
                    _ => return unsupported(format!("match on {} is not modelled", compact(left))),
                }
                for m in alts.iter_mut() {
                    let t = m.ct_orig.get_or_insert_with(|| Box::new(OrigTuple::any()));
                    t.src = t.src.intersect(&tuple.src);
                    t.dst = t.dst.intersect(&tuple.dst);
                    t.sport = t.sport.intersect(&tuple.sport);
                    t.dport = t.dport.intersect(&tuple.dport);
                    m.ct_state = CtStates(m.ct_state.0 & CtStates::TRACKED);
                }
                return Some(Ok(()));
            }
            return None;
        }
        if let Some(("fib", b)) = single_key(left) {
            if b.get("result").and_then(Value::as_str) != Some("type") {
                return None;
            }
            let flags: Vec<&str> = match b.get("flags") {
                Some(Value::String(s)) => vec![s.as_str()],
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            // The address, and the interface the lookup is limited to
            // (`fib daddr . iif type`); a lookup by mark is not modelled.
            let mut side = None;
            let mut dev = None;
            for f in &flags {
                match *f {
                    "saddr" if side.is_none() => side = Some(AddrSide::Src),
                    "daddr" if side.is_none() => side = Some(AddrSide::Dst),
                    "iif" if dev.is_none() => dev = Some(IfaceSide::In),
                    "oif" if dev.is_none() => dev = Some(IfaceSide::Out),
                    _ => side = None,
                }
                if side.is_none() {
                    break;
                }
            }
            let Some(side) = side else {
                return unsupported(format!(
                    "`fib {} type` (address types by mark, or of no one address) is not modelled",
                    flags.join(" . ")
                ));
            };
            let Some(types) = fib_type(right) else {
                return unsupported(format!("`fib ... type` compared with {}", compact(right)));
            };
            let types = match op {
                Some(Op::Eq | Op::In) => AddrTypes(types),
                Some(Op::Ne) => AddrTypes(types).complement(),
                _ => return unsupported("an ordering comparison on an address type".into()),
            };
            for m in alts.iter_mut() {
                let t = match (dev, side) {
                    (Some(dev), _) => m.iface_types_mut().get_mut(side, dev),
                    (None, AddrSide::Src) => &mut m.src_type,
                    (None, AddrSide::Dst) => &mut m.dst_type,
                };
                t.0 &= types.0;
            }
            return Some(Ok(()));
        }
        None
    }

    /// A `dnat`/`snat`/`masquerade`/`redirect` statement of a rule whose
    /// alternatives so far are `alts`. A map of addresses becomes one rule
    /// per element (pushed here, sharing the rule's origin).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn nat_stmt(
        &mut self,
        key: &str,
        body: &Value,
        sptr: &str,
        family: &str,
        table: &str,
        alts: &mut [Match],
        origin: &RuleRef,
        comment: &Option<String>,
        ci: usize,
    ) -> NatLowered {
        let kind = match key {
            "dnat" => NatKind::Dnat,
            "snat" => NatKind::Snat,
            "masquerade" => NatKind::Masquerade,
            _ => NatKind::Redirect,
        };
        let bptr = format!("{sptr}/{key}");
        let unknown = |p: &mut Self, why: String| {
            p.note(
                sptr,
                format!("{why}: packets reaching it have an unknown verdict"),
            );
            NatLowered::Action(p.unknown_jump(key, origin))
        };
        let empty = serde_json::Map::new();
        let o = match body {
            Value::Null => &empty,
            Value::Object(o) => o,
            _ => {
                self.error(&bptr, format!("`{key}` must be null or an object"));
                return NatLowered::Failed;
            }
        };
        let flags: Vec<&str> = match o.get("flags") {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            Some(_) => {
                self.error(
                    &format!("{bptr}/flags"),
                    "`flags` must be a name or an array of names",
                );
                return NatLowered::Failed;
            }
        };
        if let Some(f) = flags
            .iter()
            .find(|f| !matches!(**f, "random" | "fully-random" | "persistent"))
        {
            return unknown(self, format!("`{key}` with flag `{f}` is not followed"));
        }
        if o.contains_key("type_flags")
            && !matches!(o.get("type_flags"), Some(Value::Array(a)) if a.is_empty())
        {
            // `prefix`, `interval` or `concat` mappings.
            let tf = compact(o.get("type_flags").expect("present"));
            if !tf.contains("concat") {
                return unknown(
                    self,
                    format!("`{key}` with type flags {tf} is not followed"),
                );
            }
        }
        let random = !flags.iter().all(|f| *f == "persistent");
        let nat_fam = match o.get("family").and_then(Value::as_str) {
            Some("ip") => Some(Fam::V4),
            Some("ip6") => Some(Fam::V6),
            _ => None,
        };
        let port = match o.get("port") {
            None => None,
            Some(v) => match port_range(v) {
                Some(p) => Some(p),
                None => {
                    return unknown(
                        self,
                        format!("`{key}` to port {} is not followed", compact(v)),
                    )
                }
            },
        };
        let addr = o.get("addr");
        if matches!(kind, NatKind::Masquerade | NatKind::Redirect) && addr.is_some() {
            self.error(&format!("{bptr}/addr"), format!("`{key}` takes no address"));
            return NatLowered::Failed;
        }
        if random
            && port.is_some_and(|(a, b)| a != b)
            && matches!(kind, NatKind::Dnat | NatKind::Redirect)
        {
            return unknown(
                self,
                format!("`{key}` with `random` picks the destination port at random from a range: not followed"),
            );
        }
        if random && !matches!(kind, NatKind::Dnat | NatKind::Redirect) {
            self.note(
                sptr,
                format!("`{key}` with `random`: the kernel picks the new source port at random; the analyses keep the packet's source port"),
            );
        }
        // A map of addresses: one rule per element.
        if let Some(("map", m)) = addr.and_then(single_key) {
            return self.nat_map(
                kind, m, port, nat_fam, &bptr, sptr, family, table, alts, origin, comment, ci,
            );
        }
        let addrs = match addr {
            None => None,
            Some(v) => match addr_range(v) {
                Some(r) => Some(r),
                None => return unknown(self, format!("`{key}` to {} is not followed", compact(v))),
            },
        };
        if matches!(kind, NatKind::Dnat | NatKind::Snat) && addrs.is_none() && port.is_none() {
            self.error(&bptr, format!("`{key}` needs an address or a port"));
            return NatLowered::Failed;
        }
        let fam = nat_fam.or(addrs.map(|(a, _)| if a.is_ipv4() { Fam::V4 } else { Fam::V6 }));
        if let Some(f) = fam {
            for m in alts.iter_mut() {
                restrict_family(m, f);
            }
        }
        NatLowered::Action(Action::Nat(NatRewrite {
            kind,
            addrs,
            ports: port,
        }))
    }

    #[allow(clippy::too_many_arguments)]
    fn nat_map(
        &mut self,
        kind: NatKind,
        m: &Value,
        port: Option<(u16, u16)>,
        nat_fam: Option<Fam>,
        bptr: &str,
        sptr: &str,
        family: &str,
        table: &str,
        alts: &[Match],
        origin: &RuleRef,
        comment: &Option<String>,
        ci: usize,
    ) -> NatLowered {
        let mptr = format!("{bptr}/addr/map");
        let (Some(key), Some(data)) = (m.get("key"), m.get("data")) else {
            self.error(&mptr, "`map` needs `key` and `data`");
            return NatLowered::Failed;
        };
        let elems: Vec<Value> = match single_key(data) {
            Some(("set", Value::Array(a))) => a.clone(),
            _ => match data.as_str().filter(|s| s.starts_with('@')) {
                Some(s) => {
                    let mkey = (family.to_string(), table.to_string(), s[1..].to_string());
                    match self.maps.get(&mkey) {
                        Some((m, _)) => m
                            .get("elem")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default(),
                        None => {
                            self.error(
                                &format!("{mptr}/data"),
                                format!("map {s} is not defined in table {family} {table}"),
                            );
                            return NatLowered::Failed;
                        }
                    }
                }
                None => {
                    self.error(
                        &format!("{mptr}/data"),
                        "`data` must be an anonymous map `{\"set\": [[key, address], ...]}` or `@name`",
                    );
                    return NatLowered::Failed;
                }
            },
        };
        let field = match self.field(key) {
            Ok(f) => f,
            Err(Why::Unsupported(why)) => {
                self.note(
                    sptr,
                    format!("{why}: packets reaching this translation map have an unknown verdict"),
                );
                let key_s = match kind {
                    NatKind::Dnat => "dnat",
                    NatKind::Snat => "snat",
                    NatKind::Masquerade => "masquerade",
                    NatKind::Redirect => "redirect",
                };
                let a = self.unknown_jump(key_s, origin);
                self.push_rules(ci, alts.to_vec(), a, origin, comment);
                return NatLowered::Done;
            }
            Err(Why::Bad(e)) => {
                self.errors.push(e);
                return NatLowered::Failed;
            }
        };
        for (i, el) in elems.iter().enumerate() {
            let elptr = format!("{mptr}/data/set/{i}");
            let Some([k, v]) = el.as_array().map(Vec::as_slice) else {
                self.error(&elptr, "a map element must be `[key, address]`");
                return NatLowered::Failed;
            };
            // The data: an address, or `address . port`.
            let (a, p) = match single_key(v) {
                Some(("concat", Value::Array(parts))) if parts.len() == 2 => {
                    (addr_range(&parts[0]), port_range(&parts[1]).map(Some))
                }
                _ => (addr_range(v), Some(port)),
            };
            let (Some(addrs), Some(ports)) = (a, p) else {
                self.error(
                    &format!("{elptr}/1"),
                    format!(
                        "expected an address (or `address . port`) to translate to, found {}",
                        compact(v)
                    ),
                );
                return NatLowered::Failed;
            };
            let mut el_alts = alts.to_vec();
            match self.apply(
                field,
                Op::Eq,
                k,
                &format!("{elptr}/0"),
                family,
                table,
                &mut el_alts,
            ) {
                Ok(()) => {}
                Err(Why::Bad(e)) => {
                    self.errors.push(e);
                    return NatLowered::Failed;
                }
                Err(Why::Unsupported(why)) => {
                    self.note(&elptr, format!("{why}; this element may or may not apply"));
                    for m in &mut el_alts {
                        m.opaque.push(Opaque { text: compact(el) });
                    }
                }
            }
            let fam = nat_fam.unwrap_or(if addrs.0.is_ipv4() { Fam::V4 } else { Fam::V6 });
            for m in &mut el_alts {
                restrict_family(m, fam);
            }
            let action = Action::Nat(NatRewrite {
                kind,
                addrs: Some(addrs),
                ports,
            });
            self.push_rules(ci, el_alts, action, origin, comment);
        }
        NatLowered::Done
    }

    /// Append one rule per alternative to chain `ci` (nat chains: only a
    /// connection's first packet).
    fn push_rules(
        &mut self,
        ci: usize,
        alts: Vec<Match>,
        action: Action,
        origin: &RuleRef,
        comment: &Option<String>,
    ) {
        let nat = self.nat_chains.contains(&ci);
        let rules = &mut self.chains[ci].rules;
        for mut m in alts {
            if nat {
                m.ct_state = CtStates(m.ct_state.0 & NAT_STATES);
            }
            rules.push(Rule {
                matches: m,
                action: action.clone(),
                origin: origin.clone(),
                comment: comment.clone(),
            });
        }
    }
}

/// An address or `{"range": [a, b]}` of addresses.
fn addr_range(v: &Value) -> Option<(IpAddr, IpAddr)> {
    match v {
        Value::String(s) => {
            let a: IpAddr = s.parse().ok()?;
            Some((a, a))
        }
        _ => match single_key(v)? {
            ("range", Value::Array(r)) if r.len() == 2 => {
                let a: IpAddr = r[0].as_str()?.parse().ok()?;
                let b: IpAddr = r[1].as_str()?.parse().ok()?;
                (a.is_ipv4() == b.is_ipv4() && a <= b).then_some((a, b))
            }
            _ => None,
        },
    }
}

/// A port or `{"range": [a, b]}` of ports.
fn port_range(v: &Value) -> Option<(u16, u16)> {
    let one = |x: &Value| -> Option<u16> {
        match x {
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    };
    match single_key(v) {
        Some(("range", Value::Array(r))) if r.len() == 2 => {
            let (a, b) = (one(&r[0])?, one(&r[1])?);
            (a <= b).then_some((a, b))
        }
        _ => one(v).map(|p| (p, p)),
    }
}
