//! A readable text rendering of a parsed ruleset, for golden tests.

#![allow(dead_code)]

use ringfence_model::{Action, AddrSet, IfaceSet, IntervalSet, Match, Ruleset};
use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

fn addrs(a: &AddrSet) -> Option<String> {
    if a.v4.is_full() && a.v6.is_full() {
        return None;
    }
    let mut parts = Vec::new();
    if a.v4.is_full() {
        parts.push("v4:any".to_string());
    } else if !a.v4.is_empty() {
        for &(lo, hi) in a.v4.ranges() {
            let (lo, hi) = (Ipv4Addr::from(lo), Ipv4Addr::from(hi));
            parts.push(if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            });
        }
    }
    if a.v6.is_full() {
        parts.push("v6:any".to_string());
    } else if !a.v6.is_empty() {
        for &(lo, hi) in a.v6.ranges() {
            let (lo, hi) = (Ipv6Addr::from(lo), Ipv6Addr::from(hi));
            parts.push(if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            });
        }
    }
    if parts.is_empty() {
        parts.push("none".into());
    }
    Some(parts.join(","))
}

fn ints<T: ringfence_model::interval::Bound + std::fmt::Display>(
    s: &IntervalSet<T>,
) -> Option<String> {
    if s.is_full() {
        return None;
    }
    if s.is_empty() {
        return Some("none".into());
    }
    Some(
        s.ranges()
            .iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn ifaces(s: &IfaceSet) -> Option<String> {
    if s.is_any() {
        return None;
    }
    let pats: Vec<String> = s
        .patterns
        .iter()
        .map(|p| match p {
            ringfence_model::IfacePattern::Exact(n) => n.clone(),
            ringfence_model::IfacePattern::Prefix(n) => format!("{n}*"),
        })
        .collect();
    Some(format!(
        "{}{{{}}}",
        if s.negated { "!" } else { "" },
        pats.join(",")
    ))
}

/// One line per match field that restricts anything.
pub fn render_match(m: &Match) -> String {
    let mut f = Vec::new();
    if let Some(s) = addrs(&m.src) {
        f.push(format!("src={s}"));
    }
    if let Some(s) = addrs(&m.dst) {
        f.push(format!("dst={s}"));
    }
    if let Some(s) = ints(&m.protocol) {
        f.push(format!("proto={s}"));
    }
    if let Some(s) = ints(&m.sport) {
        f.push(format!("sport={s}"));
    }
    if let Some(s) = ints(&m.dport) {
        f.push(format!("dport={s}"));
    }
    if let Some(s) = ifaces(&m.iif) {
        f.push(format!("iif={s}"));
    }
    if let Some(s) = ifaces(&m.oif) {
        f.push(format!("oif={s}"));
    }
    if m.ct_state.0 != 31 {
        let names = [
            (1, "new"),
            (2, "established"),
            (4, "related"),
            (8, "invalid"),
            (16, "untracked"),
        ];
        let n: Vec<&str> = names
            .iter()
            .filter(|(b, _)| m.ct_state.0 & b != 0)
            .map(|(_, n)| *n)
            .collect();
        f.push(format!("ct={{{}}}", n.join(",")));
    }
    for t in &m.marks {
        f.push(format!(
            "{}mark&{:#x}{}{:#x}",
            match t.field {
                ringfence_model::MarkField::Packet => "",
                ringfence_model::MarkField::Conn => "ct",
            },
            t.mask,
            if t.invert { "!=" } else { "==" },
            t.value
        ));
    }
    if let Some(x) = &m.extra {
        let hex = |r: &[(u64, u64)]| {
            r.iter()
                .map(|&(a, b)| {
                    if a == b {
                        format!("{a:#x}")
                    } else {
                        format!("{a:#x}-{b:#x}")
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let wide = |r: &[(u8, u8)]| -> Vec<(u64, u64)> {
            r.iter().map(|&(a, b)| (a.into(), b.into())).collect()
        };
        // A byte set as `&MASK==VALUE` (or `!=`) when it is one, else its values.
        let bytes = |set: &IntervalSet<u8>| {
            for mask in 1..=255u8 {
                for invert in [false, true] {
                    let value = (0..=255u8).find(|b| set.contains(*b));
                    let Some(v) = value else { continue };
                    let v = v & mask;
                    let v = if invert {
                        match (0..=255u8).find(|b| !set.contains(*b)) {
                            Some(b) => b & mask,
                            None => continue,
                        }
                    } else {
                        v
                    };
                    if ringfence_model::fields::masked_bytes(mask, v, invert) == *set {
                        return format!("&{mask:#x}{}{v:#x}", if invert { "!=" } else { "==" });
                    }
                }
            }
            format!("={}", hex(&wide(set.ranges())))
        };
        if !x.tcp_flags.is_full() {
            f.push(format!("tcpflags{}", bytes(&x.tcp_flags)));
        }
        if !x.icmp.is_full() {
            let r: Vec<(u64, u64)> = x
                .icmp
                .ranges()
                .iter()
                .map(|&(a, b)| (a.into(), b.into()))
                .collect();
            f.push(format!("icmp={}", hex(&r)));
        }
        if let Some(s) = ints(&x.length) {
            f.push(format!("length={s}"));
        }
        if !x.tos.is_full() {
            f.push(format!("tos{}", bytes(&x.tos)));
        }
        if let Some(s) = ints(&x.pkttype) {
            f.push(format!("pkttype={s}"));
        }
        if x.mac_src != ringfence_model::fields::all_macs() {
            f.push(format!("mac={}", hex(x.mac_src.ranges())));
        }
    }
    for o in &m.opaque {
        f.push(format!("opaque[{}]", o.text));
    }
    if f.is_empty() {
        "any".into()
    } else {
        f.join(" ")
    }
}

/// The whole ruleset, chains in order, one rule per line, then the notes.
pub fn render(r: &Ruleset) -> String {
    let mut out = String::new();
    writeln!(out, "format: {:?}  source: {}", r.format, r.source).unwrap();
    for c in &r.chains {
        match &c.base {
            Some(b) => writeln!(
                out,
                "chain {} [hook {} prio {} policy {:?}]",
                c.name, b.hook, b.priority, b.policy
            )
            .unwrap(),
            None => writeln!(out, "chain {}", c.name).unwrap(),
        }
        for rule in &c.rules {
            let action = match &rule.action {
                Action::Jump { target } => format!("jump {}", r.chains[target.0].name),
                Action::Goto { target } => format!("goto {}", r.chains[target.0].name),
                Action::Reject { with } => format!("reject({})", with.as_deref().unwrap_or("")),
                Action::Mark(m) => format!(
                    "mark {:?} clear={:#x} xor={:#x} copy={:#x}",
                    m.field, m.clear, m.xor, m.copy
                ),
                a => format!("{a:?}").to_lowercase(),
            };
            let comment = rule
                .comment
                .as_deref()
                .map(|c| format!("  # {c}"))
                .unwrap_or_default();
            writeln!(
                out,
                "  [{}] {} -> {}{}",
                rule.origin,
                render_match(&rule.matches),
                action,
                comment
            )
            .unwrap();
        }
    }
    for n in &r.notes {
        writeln!(out, "note {}: {}", n.location, n.message).unwrap();
    }
    out
}
