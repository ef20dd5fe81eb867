//! A small evaluator for `nft -j list ruleset` dumps of one base chain, used to
//! check what the kernel actually holds after loading our script. It knows
//! the expressions our nftables target emits (payload ip/ip6 saddr/daddr,
//! tcp/udp/th dport, their concatenation, meta l4proto/nfproto, ct state,
//! named and anonymous sets, prefixes, ranges; accept/drop; the host rules'
//! iifname/oifname, icmp/icmpv6 type and udp sport) including the implied
//! protocol of a payload match, and panics on anything else.

use super::eval::{Packet, Verdict};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One component of a set element: an inclusive range of numbers.
type Span = (u128, u128);

pub struct NftChain {
    policy: Verdict,
    sets: BTreeMap<String, Vec<Vec<Span>>>,
    rules: Vec<Vec<Value>>,
}

fn addr_num(s: &str) -> u128 {
    match s
        .parse::<IpAddr>()
        .unwrap_or_else(|_| panic!("nfteval: bad address {s}"))
    {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn proto_num(s: &str) -> u128 {
    match s {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "ipv6-icmp" => 58,
        other => icmp_type_num(other).unwrap_or_else(|| panic!("nfteval: unknown symbol {other}")),
    }
}

/// ICMP and ICMPv6 type names as nft prints them (RFC 792, RFC 4443,
/// RFC 4861, RFC 2710, RFC 3810).
fn icmp_type_num(s: &str) -> Option<u128> {
    Some(match s {
        "echo-reply" => 0,
        "destination-unreachable" => 3,
        "echo-request" => 8,
        "time-exceeded" => 11,
        "parameter-problem" => 12,
        "packet-too-big" => 2,
        "mld-listener-query" => 130,
        "mld-listener-report" => 131,
        "mld-listener-done" | "mld-listener-reduction" => 132,
        "nd-router-solicit" => 133,
        "nd-router-advert" => 134,
        "nd-neighbor-solicit" => 135,
        "nd-neighbor-advert" => 136,
        "mld2-listener-report" => 143,
        _ => return None,
    })
}

/// One component value of a set element or a right-hand side.
fn span(v: &Value) -> Span {
    match v {
        Value::Number(n) => {
            let x = u128::from(n.as_u64().unwrap());
            (x, x)
        }
        Value::String(s) if s.contains(['.', ':']) => {
            let x = addr_num(s);
            (x, x)
        }
        Value::String(s) if s == "ipv4" => (2, 2),
        Value::String(s) if s == "ipv6" => (10, 10),
        Value::String(s) => {
            let x = proto_num(s);
            (x, x)
        }
        Value::Object(o) if o.contains_key("prefix") => {
            let p = &o["prefix"];
            let addr = p["addr"].as_str().unwrap();
            let len = p["len"].as_u64().unwrap() as u32;
            let bits = if addr.contains(':') { 128 } else { 32 };
            let base = addr_num(addr);
            let host = if len == 0 && bits == 128 {
                u128::MAX
            } else {
                (1u128 << (bits - len)) - 1
            };
            (base, base | host)
        }
        Value::Object(o) if o.contains_key("range") => {
            let r = o["range"].as_array().unwrap();
            (span(&r[0]).0, span(&r[1]).1)
        }
        other => panic!("nfteval: unsupported value {other}"),
    }
}

fn element(v: &Value) -> Vec<Span> {
    match v.get("concat") {
        Some(Value::Array(parts)) => parts.iter().map(span).collect(),
        _ => match v.get("elem") {
            // {"elem": {"val": ..., "comment": ...}} wrappers.
            Some(e) => element(&e["val"]),
            None => vec![span(v)],
        },
    }
}

impl NftChain {
    /// Parse the dump and pick the base chain `chain` of table `inet ringfence`.
    pub fn parse(dump: &str, chain: &str) -> NftChain {
        let doc: Value = serde_json::from_str(dump).expect("nft -j output is JSON");
        let mut policy = None;
        let mut sets = BTreeMap::new();
        let mut rules = Vec::new();
        for o in doc["nftables"].as_array().unwrap() {
            if let Some(s) = o.get("set") {
                let elems = s
                    .get("elem")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().map(element).collect())
                    .unwrap_or_default();
                sets.insert(s["name"].as_str().unwrap().to_string(), elems);
            }
            if let Some(c) = o.get("chain") {
                if c["name"] == chain {
                    policy = Some(match c["policy"].as_str() {
                        Some("drop") => Verdict::Drop,
                        Some("accept") => Verdict::Accept,
                        p => panic!("nfteval: chain policy {p:?}"),
                    });
                }
            }
            if let Some(r) = o.get("rule") {
                if r["chain"] == chain {
                    rules.push(r["expr"].as_array().unwrap().clone());
                }
            }
        }
        NftChain {
            policy: policy.expect("base chain present"),
            sets,
            rules,
        }
    }

    /// The value(s) a left-hand expression takes for `p`; `None` when the
    /// packet cannot match it (wrong family or protocol: the implied match).
    fn left(&self, e: &Value, p: &Packet) -> Option<Vec<u128>> {
        if let Some(parts) = e.get("concat").and_then(Value::as_array) {
            let mut out = Vec::new();
            for part in parts {
                out.extend(self.left(part, p)?);
            }
            return Some(out);
        }
        if let Some(pl) = e.get("payload") {
            let proto = pl["protocol"].as_str().unwrap();
            let field = pl["field"].as_str().unwrap();
            let v4 = p.src.is_ipv4();
            let addr = |a: IpAddr| match a {
                IpAddr::V4(x) => u128::from(u32::from(x)),
                IpAddr::V6(x) => u128::from(x),
            };
            return match (proto, field) {
                ("ip", "saddr") if v4 => Some(vec![addr(p.src)]),
                ("ip", "daddr") if v4 => Some(vec![addr(p.dst)]),
                ("ip6", "saddr") if !v4 => Some(vec![addr(p.src)]),
                ("ip6", "daddr") if !v4 => Some(vec![addr(p.dst)]),
                ("ip" | "ip6", _) => None,
                // Probes come from source port PROBE_SPORT; an ICMP probe's
                // type is its `dport` field.
                ("tcp", "sport") => {
                    (p.proto == 6).then(|| vec![u128::from(super::eval::PROBE_SPORT)])
                }
                ("udp", "sport") => {
                    (p.proto == 17).then(|| vec![u128::from(super::eval::PROBE_SPORT)])
                }
                ("icmp", "type") => (p.proto == 1).then(|| vec![u128::from(p.dport)]),
                ("icmpv6", "type") => (p.proto == 58).then(|| vec![u128::from(p.dport)]),
                ("tcp", "dport") => (p.proto == 6).then(|| vec![u128::from(p.dport)]),
                ("udp", "dport") => (p.proto == 17).then(|| vec![u128::from(p.dport)]),
                ("th", "dport") => matches!(p.proto, 6 | 17).then(|| vec![u128::from(p.dport)]),
                other => panic!("nfteval: unsupported payload {other:?}"),
            };
        }
        if let Some(m) = e.get("meta") {
            return match m["key"].as_str().unwrap() {
                "l4proto" => Some(vec![u128::from(p.proto)]),
                "nfproto" => Some(vec![if p.src.is_ipv4() { 2 } else { 10 }]),
                // Probes never use the loopback device (the only one we name).
                "iifname" | "oifname" => None,
                k => panic!("nfteval: unsupported meta {k}"),
            };
        }
        panic!("nfteval: unsupported left side {e}")
    }

    fn right_elems(&self, r: &Value) -> Vec<Vec<Span>> {
        match r {
            Value::String(s) if s.starts_with('@') => self
                .sets
                .get(&s[1..])
                .unwrap_or_else(|| panic!("nfteval: unknown set {s}"))
                .clone(),
            Value::Object(o) if o.contains_key("set") => {
                o["set"].as_array().unwrap().iter().map(element).collect()
            }
            v => vec![element(v)],
        }
    }

    fn matches(&self, m: &Value, p: &Packet) -> bool {
        let op = m["op"].as_str().unwrap();
        assert!(op == "==" || op == "in", "nfteval: unsupported op {op}");
        let left = &m["left"];
        if left.get("ct").is_some() {
            // Probes are the first packet of a new connection.
            let states: Vec<&str> = match &m["right"] {
                Value::Array(a) => a.iter().map(|s| s.as_str().unwrap()).collect(),
                Value::String(s) => vec![s.as_str()],
                v => panic!("nfteval: ct state {v}"),
            };
            return states.contains(&"new");
        }
        let Some(vals) = self.left(left, p) else {
            return false;
        };
        self.right_elems(&m["right"]).iter().any(|el| {
            el.len() == vals.len() && el.iter().zip(&vals).all(|((a, b), v)| a <= v && v <= b)
        })
    }

    /// The chain's verdict for the first packet of a new connection.
    pub fn eval(&self, p: &Packet) -> Verdict {
        'rules: for rule in &self.rules {
            for stmt in rule {
                if let Some(m) = stmt.get("match") {
                    if !self.matches(m, p) {
                        continue 'rules;
                    }
                } else if stmt.get("accept").is_some() {
                    return Verdict::Accept;
                } else if stmt.get("drop").is_some() {
                    return Verdict::Drop;
                } else if stmt.get("counter").is_some() {
                    continue;
                } else {
                    panic!("nfteval: unsupported statement {stmt}");
                }
            }
        }
        self.policy
    }
}
