//! iptables' address translation targets (`DNAT`, `SNAT`, `MASQUERADE`,
//! `REDIRECT`) and the conntrack and addrtype matches that read what they
//! did (`--ctstate DNAT/SNAT`, `--ctstatus`, `--ctorig*`, `-m addrtype`).

use super::tokens::Tok;
use super::Family;
use crate::values::port_range;
use ringfence_model::{AddrTypes, CtNat, IntervalSet, NatKind, NatRewrite};
use std::borrow::Cow;
use std::net::IpAddr;

/// How a translation target reads: the rewrite, or why the model cannot
/// follow it (the packets it matches then have an unknown fate).
pub(super) enum NatTarget {
    /// A rewrite the model follows, with a note to add when something of
    /// it is approximated (a random source port).
    Rewrite(NatRewrite, Option<String>),
    /// A form the model does not follow, and why.
    Unfollowed(String),
}

/// Read `-j DNAT|SNAT|MASQUERADE|REDIRECT` with its options. Errors are
/// `(column, message)` for the caller to locate.
pub(super) fn nat_target(
    target: &str,
    opts: &[(Cow<str>, Option<Tok>)],
    at: &Tok,
    family: Family,
) -> Result<NatTarget, (u64, String)> {
    let kind = match target {
        "DNAT" => NatKind::Dnat,
        "SNAT" => NatKind::Snat,
        "MASQUERADE" => NatKind::Masquerade,
        _ => NatKind::Redirect,
    };
    let (spec_opt, allowed): (&str, &[&str]) = match kind {
        NatKind::Dnat => (
            "--to-destination",
            &["--to-destination", "--random", "--persistent"],
        ),
        NatKind::Snat => (
            "--to-source",
            &["--to-source", "--random", "--random-fully", "--persistent"],
        ),
        NatKind::Masquerade => ("--to-ports", &["--to-ports", "--random", "--random-fully"]),
        NatKind::Redirect => ("--to-ports", &["--to-ports", "--random"]),
    };
    let mut spec: Option<&Tok> = None;
    let mut random = false;
    for (name, val) in opts {
        if !allowed.contains(&name.as_ref()) {
            return Err((
                val.as_ref().map(|v| v.col).unwrap_or(at.col),
                format!(
                    "`-j {target}` option `{name}`: expected {}",
                    allowed.join(", ")
                ),
            ));
        }
        match name.as_ref() {
            "--random" | "--random-fully" => random = true,
            "--persistent" => {}
            _ => {
                let Some(v) = val else {
                    return Err((
                        at.col,
                        format!(
                            "`-j {target} {name}` needs a value: expected {}",
                            spec_help(kind)
                        ),
                    ));
                };
                if spec.is_some() {
                    return Ok(NatTarget::Unfollowed(format!(
                        "`-j {target}` with several `{name}` ranges (kernels before 2.6.11) is not followed"
                    )));
                }
                spec = Some(v);
            }
        }
    }
    let (addrs, ports) = match (kind, spec) {
        (NatKind::Dnat | NatKind::Snat, None) => {
            return Err((
                at.col,
                format!(
                    "`-j {target}` needs `{spec_opt}`: expected for example `{spec_opt} {}`",
                    example(kind)
                ),
            ))
        }
        (_, None) => (None, None),
        (NatKind::Dnat | NatKind::Snat, Some(v)) => {
            if v.text.contains('/') {
                return Ok(NatTarget::Unfollowed(format!(
                    "`{spec_opt} {}`: a shifted port range (`/BASE`) is not followed",
                    v.text
                )));
            }
            parse_spec(&v.text, family)
                .map_err(|m| (v.col, format!("`{spec_opt} {}`: {m}", v.text)))?
        }
        (_, Some(v)) => {
            let p = port_range(&v.text, '-').ok_or_else(|| {
                (
                    v.col,
                    format!(
                        "`--to-ports {}`: expected PORT or PORT-PORT (0-65535, first <= last)",
                        v.text
                    ),
                )
            })?;
            (None, Some(p))
        }
    };
    if addrs.is_none() && ports.is_none() && matches!(kind, NatKind::Dnat | NatKind::Snat) {
        return Err((
            spec.map(|v| v.col).unwrap_or(at.col),
            format!("`{spec_opt}` is empty: expected {}", spec_help(kind)),
        ));
    }
    let rw = NatRewrite { kind, addrs, ports };
    let mut note = None;
    if random {
        if rw.is_destination() {
            if ports.is_some_and(|(a, b)| a != b) {
                return Ok(NatTarget::Unfollowed(format!(
                    "`-j {target} --random` picks the destination port at random from a range: not followed"
                )));
            }
        } else {
            note = Some(format!(
                "`-j {target} --random`: the kernel picks the new source port at random; the analyses keep the packet's source port (only a chain after source NAT could read it)"
            ));
        }
    }
    Ok(NatTarget::Rewrite(rw, note))
}

fn example(kind: NatKind) -> &'static str {
    match kind {
        NatKind::Dnat => "10.0.0.1:80",
        _ => "10.0.0.1",
    }
}

fn spec_help(kind: NatKind) -> &'static str {
    match kind {
        NatKind::Dnat | NatKind::Snat => {
            "ADDR[-ADDR][:PORT[-PORT]] (IPv6 in brackets before a port: [ADDR]:PORT)"
        }
        _ => "PORT or PORT-PORT",
    }
}

/// `ADDR[-ADDR][:PORT[-PORT]]`; IPv6: `ADDR[-ADDR]` or `[ADDR[-ADDR]]:PORT[-PORT]`
/// (also `[ADDR]-[ADDR]`); `:PORT[-PORT]` alone keeps the address.
type Spec = (Option<(IpAddr, IpAddr)>, Option<(u16, u16)>);

fn parse_spec(s: &str, family: Family) -> Result<Spec, String> {
    let (addr_part, port_part) = match family {
        Family::V4 => match s.split_once(':') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        },
        Family::V6 => {
            if let Some(rest) = s.strip_prefix('[') {
                let close = rest
                    .rfind(']')
                    .ok_or("an opening `[` without `]`: expected [ADDR]:PORT")?;
                let after = &rest[close + 1..];
                let port = match after {
                    "" => None,
                    p => Some(p.strip_prefix(':').ok_or("expected `:PORT` after `]`")?),
                };
                (&rest[..close], port)
            } else {
                // As ip6tables reads it: one colon separates the port (`:PORT`
                // alone keeps the address); more make an IPv6 address
                // (`::1`, `fd00::1-fd00::3`), with no port.
                match s.split_once(':') {
                    Some((a, p)) if !p.contains(':') => (a, Some(p)),
                    _ => (s, None),
                }
            }
        }
    };
    let addrs = if addr_part.is_empty() {
        None
    } else {
        let clean = |a: &str| a.trim_start_matches('[').trim_end_matches(']').to_string();
        let (a, b) = addr_part.split_once('-').unwrap_or((addr_part, addr_part));
        let fam_name = if family == Family::V4 { "IPv4" } else { "IPv6" };
        let parse = |x: &str| -> Result<IpAddr, String> {
            let ip: IpAddr = clean(x)
                .parse()
                .map_err(|_| format!("`{x}` is not an {fam_name} address"))?;
            if ip.is_ipv4() != (family == Family::V4) {
                return Err(format!(
                    "`{x}` is not an {fam_name} address (the file's family)"
                ));
            }
            Ok(ip)
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b {
            return Err("the address range is reversed: expected first <= last".into());
        }
        Some((a, b))
    };
    let ports = match port_part {
        None => None,
        Some(p) => Some(port_range(p, '-').ok_or_else(|| {
            format!("port `{p}`: expected PORT or PORT-PORT (0-65535, first <= last)")
        })?),
    };
    Ok((addrs, ports))
}

/// What a `--ctstate`/`--state` list names: conntrack states, and whether
/// SNAT and DNAT (facts about the connection, not states) are in it.
pub(super) struct StateList {
    /// The state bits named.
    pub states: u8,
    /// The translation combinations `SNAT`/`DNAT` name (their union).
    pub nat: CtNat,
}

/// The match of `[!] --ctstate LIST`, as disjoint alternatives of (states,
/// translations): the kernel matches when the packet's state or one of its
/// connection's translations is in the list (negated: none is). Without
/// SNAT/DNAT in the list it is one alternative with every translation.
pub(super) fn state_alternatives(list: &StateList, neg: bool) -> Vec<(u8, CtNat)> {
    use ringfence_model::CtStates;
    let all = CtStates::ALL.0;
    if list.nat.0 == 0 {
        let s = if neg { !list.states & all } else { list.states };
        return vec![(s, CtNat::ALL)];
    }
    if neg {
        // Neither the state nor a translation named.
        vec![(!list.states & all, list.nat.complement())]
    } else {
        // The state named; or another state with a translation named.
        let mut v = Vec::new();
        if list.states != 0 {
            v.push((list.states, CtNat::ALL));
        }
        if !list.states & all != 0 {
            v.push((!list.states & all, list.nat));
        }
        v
    }
}

/// `--ctstatus LIST`: the translations named (SNAT, DNAT) and whether
/// another status (EXPECTED, ASSURED, SEEN_REPLY, CONFIRMED, NONE) is
/// named, which the model does not read. `None` for an unknown name.
pub(super) fn ctstatus(list: &str) -> Result<(CtNat, Vec<String>), String> {
    let mut nat = CtNat(0);
    let mut other = Vec::new();
    for name in list.split(',') {
        match name.to_ascii_uppercase().as_str() {
            "SNAT" => nat = nat.union(CtNat::snat()),
            "DNAT" => nat = nat.union(CtNat::dnat()),
            "NONE" | "EXPECTED" | "SEEN_REPLY" | "ASSURED" | "CONFIRMED" => {
                other.push(name.to_string())
            }
            _ => {
                return Err(format!(
                    "unknown conntrack status `{name}`: expected NONE, EXPECTED, SEEN_REPLY, ASSURED, CONFIRMED, SNAT or DNAT"
                ))
            }
        }
    }
    Ok((nat, other))
}

/// `-m addrtype` types: `TYPE[,TYPE...]`.
pub(super) fn addr_types(list: &str) -> Result<AddrTypes, String> {
    let mut bits = 0;
    for name in list.split(',') {
        bits |= AddrTypes::parse_one(name).ok_or_else(|| {
            format!("unknown address type `{name}`: expected UNSPEC, UNICAST, LOCAL, BROADCAST, ANYCAST, MULTICAST, BLACKHOLE, UNREACHABLE, PROHIBIT, THROW, NAT or XRESOLVE")
        })?;
    }
    Ok(AddrTypes(bits))
}

/// `--ctorigsrcport`/`--ctorigdstport`: `PORT` or `PORT:PORT`.
pub(super) fn orig_ports(s: &str) -> Option<IntervalSet<u16>> {
    port_range(s, ':').map(|(a, b)| IntervalSet::range(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translation_specs_read_addresses_ranges_and_ports_of_both_families() {
        let v4 = |s| parse_spec(s, Family::V4);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            v4("10.0.0.1").unwrap(),
            (Some((ip("10.0.0.1"), ip("10.0.0.1"))), None)
        );
        assert_eq!(
            v4("10.0.0.1-10.0.0.3:80-90").unwrap(),
            (Some((ip("10.0.0.1"), ip("10.0.0.3"))), Some((80, 90)))
        );
        assert_eq!(v4(":8080").unwrap(), (None, Some((8080, 8080))));
        assert!(v4("10.0.0.3-10.0.0.1").is_err());
        assert!(v4("10.0.0.1:90-80").is_err());
        assert!(v4("::1").is_err());
        let v6 = |s| parse_spec(s, Family::V6);
        assert_eq!(
            v6("fd00::1").unwrap(),
            (Some((ip("fd00::1"), ip("fd00::1"))), None)
        );
        assert_eq!(
            v6("[fd00::1-fd00::3]:443").unwrap(),
            (Some((ip("fd00::1"), ip("fd00::3"))), Some((443, 443)))
        );
        assert_eq!(
            v6("[fd00::1]-[fd00::2]").unwrap(),
            (Some((ip("fd00::1"), ip("fd00::2"))), None)
        );
        assert!(v6("[fd00::1:80").is_err());
        // Unbracketed: more than one colon is an address, never a port.
        assert_eq!(v6("::1").unwrap(), (Some((ip("::1"), ip("::1"))), None));
        assert_eq!(v6("::1-::3").unwrap(), (Some((ip("::1"), ip("::3"))), None));
        assert_eq!(v6(":8443").unwrap(), (None, Some((8443, 8443))));
    }

    #[test]
    fn ctstate_lists_with_translations_become_disjoint_alternatives() {
        use ringfence_model::CtStates as S;
        let l = StateList {
            states: S::NEW,
            nat: CtNat::dnat(),
        };
        assert_eq!(
            state_alternatives(&l, false),
            vec![(S::NEW, CtNat::ALL), (S::ALL.0 & !S::NEW, CtNat::dnat())]
        );
        assert_eq!(
            state_alternatives(&l, true),
            vec![(S::ALL.0 & !S::NEW, CtNat::dnat().complement())]
        );
        let only = StateList {
            states: 0,
            nat: CtNat::snat(),
        };
        assert_eq!(
            state_alternatives(&only, false),
            vec![(S::ALL.0, CtNat::snat())]
        );
    }
}
