//! Names and values of the rarely tested header fields (TCP flags, ICMP
//! and ICMPv6 types and codes, DSCP classes, TOS names, packet types, MAC
//! addresses), shared by the iptables and nft readers and by `trace`'s
//! packet lines. The numbers are the
//! kernel's; the names are those iptables and nft print and accept.

use crate::fields::tcp_flag;

/// One TCP flag name (iptables upper case, nft lower case; `ecn` is nft's
/// name for ECE), or iptables' `ALL` (the six classic flags) and `NONE`.
pub fn tcp_flag_bits(name: &str) -> Option<u8> {
    use tcp_flag::*;
    Some(match name.to_ascii_lowercase().as_str() {
        "fin" => FIN,
        "syn" => SYN,
        "rst" => RST,
        "psh" => PSH,
        "ack" => ACK,
        "urg" => URG,
        "ecn" | "ece" => ECE,
        "cwr" => CWR,
        "all" => FIN | SYN | RST | PSH | ACK | URG,
        "none" => 0,
        _ => return None,
    })
}

/// A comma-separated flag list as `--tcp-flags` takes it (`SYN,ACK`).
pub fn tcp_flag_list(list: &str) -> Option<u8> {
    list.split(',')
        .try_fold(0u8, |acc, n| Some(acc | tcp_flag_bits(n.trim())?))
}

/// ICMP type names with their type and, for names of one code, the code
/// (iptables `--icmp-type` names and nft `icmp type` names).
const ICMP_NAMES: &[(&str, u8, Option<u8>)] = &[
    ("echo-reply", 0, None),
    ("pong", 0, None),
    ("destination-unreachable", 3, None),
    ("network-unreachable", 3, Some(0)),
    ("host-unreachable", 3, Some(1)),
    ("protocol-unreachable", 3, Some(2)),
    ("port-unreachable", 3, Some(3)),
    ("fragmentation-needed", 3, Some(4)),
    ("source-route-failed", 3, Some(5)),
    ("network-unknown", 3, Some(6)),
    ("host-unknown", 3, Some(7)),
    ("network-prohibited", 3, Some(9)),
    ("host-prohibited", 3, Some(10)),
    ("tos-network-unreachable", 3, Some(11)),
    ("tos-host-unreachable", 3, Some(12)),
    ("communication-prohibited", 3, Some(13)),
    ("host-precedence-violation", 3, Some(14)),
    ("precedence-cutoff", 3, Some(15)),
    ("source-quench", 4, None),
    ("redirect", 5, None),
    ("network-redirect", 5, Some(0)),
    ("host-redirect", 5, Some(1)),
    ("tos-network-redirect", 5, Some(2)),
    ("tos-host-redirect", 5, Some(3)),
    ("echo-request", 8, None),
    ("ping", 8, None),
    ("router-advertisement", 9, None),
    ("router-solicitation", 10, None),
    ("time-exceeded", 11, None),
    ("ttl-exceeded", 11, None),
    ("ttl-zero-during-transit", 11, Some(0)),
    ("ttl-zero-during-reassembly", 11, Some(1)),
    ("parameter-problem", 12, None),
    ("ip-header-bad", 12, Some(0)),
    ("required-option-missing", 12, Some(1)),
    ("timestamp-request", 13, None),
    ("timestamp-reply", 14, None),
    ("info-request", 15, None),
    ("info-reply", 16, None),
    ("address-mask-request", 17, None),
    ("address-mask-reply", 18, None),
];

/// ICMPv6 type names (ip6tables `--icmpv6-type` and nft `icmpv6 type`).
const ICMPV6_NAMES: &[(&str, u8, Option<u8>)] = &[
    ("destination-unreachable", 1, None),
    ("no-route", 1, Some(0)),
    ("communication-prohibited", 1, Some(1)),
    ("beyond-scope", 1, Some(2)),
    ("address-unreachable", 1, Some(3)),
    ("port-unreachable", 1, Some(4)),
    ("failed-policy", 1, Some(5)),
    ("reject-route", 1, Some(6)),
    ("packet-too-big", 2, None),
    ("time-exceeded", 3, None),
    ("ttl-exceeded", 3, None),
    ("ttl-zero-during-transit", 3, Some(0)),
    ("ttl-zero-during-reassembly", 3, Some(1)),
    ("parameter-problem", 4, None),
    ("bad-header", 4, Some(0)),
    ("unknown-header-type", 4, Some(1)),
    ("unknown-option", 4, Some(2)),
    ("echo-request", 128, None),
    ("ping", 128, None),
    ("echo-reply", 129, None),
    ("pong", 129, None),
    ("mld-listener-query", 130, None),
    ("mld-listener-report", 131, None),
    ("mld-listener-done", 132, None),
    ("mld-listener-reduction", 132, None),
    ("router-solicitation", 133, None),
    ("nd-router-solicit", 133, None),
    ("router-advertisement", 134, None),
    ("nd-router-advert", 134, None),
    ("neighbour-solicitation", 135, None),
    ("neighbor-solicitation", 135, None),
    ("nd-neighbor-solicit", 135, None),
    ("neighbour-advertisement", 136, None),
    ("neighbor-advertisement", 136, None),
    ("nd-neighbor-advert", 136, None),
    ("redirect", 137, None),
    ("nd-redirect", 137, None),
    ("router-renumbering", 138, None),
    ("ind-neighbor-solicit", 141, None),
    ("ind-neighbor-advert", 142, None),
    ("mld2-listener-report", 143, None),
];

/// An ICMP (or, with `v6`, ICMPv6) type name: its type, and its code when
/// the name stands for one code (`port-unreachable`).
pub fn icmp_name(name: &str, v6: bool) -> Option<(u8, Option<u8>)> {
    let table = if v6 { ICMPV6_NAMES } else { ICMP_NAMES };
    table
        .iter()
        .find(|(n, ..)| n.eq_ignore_ascii_case(name))
        .map(|&(_, t, c)| (t, c))
}

/// An iptables ICMP type argument: `any`, a name, `TYPE` or `TYPE/CODE`.
/// `Ok(None)` is `any`; `Err` says what was expected.
pub fn icmp_arg(text: &str, v6: bool) -> Result<Option<(u8, Option<u8>)>, String> {
    if text.eq_ignore_ascii_case("any") {
        return Ok(None);
    }
    if let Some(x) = icmp_name(text, v6) {
        return Ok(Some(x));
    }
    let (t, c) = match text.split_once('/') {
        Some((t, c)) => (t, Some(c)),
        None => (text, None),
    };
    let t: Option<u8> = t.parse().ok();
    let c: Option<Option<u8>> = match c {
        None => Some(None),
        Some(c) => c.parse().ok().map(Some),
    };
    match (t, c) {
        (Some(t), Some(c)) => Ok(Some((t, c))),
        _ => Err(format!(
            "ICMP{} type `{text}`: expected a type name such as echo-request, a number 0-255, TYPE/CODE, or any",
            if v6 { "v6" } else { "" }
        )),
    }
}

/// nft ICMP code names (`icmp code`, `icmpv6 code`).
pub fn icmp_code_name(name: &str, v6: bool) -> Option<u8> {
    let v4 = [
        ("net-unreachable", 0),
        ("host-unreachable", 1),
        ("prot-unreachable", 2),
        ("port-unreachable", 3),
        ("frag-needed", 4),
        ("net-prohibited", 9),
        ("host-prohibited", 10),
        ("admin-prohibited", 13),
    ];
    let v6t = [
        ("no-route", 0),
        ("admin-prohibited", 1),
        ("addr-unreachable", 3),
        ("port-unreachable", 4),
        ("policy-fail", 5),
        ("reject-route", 6),
    ];
    let table: &[(&str, u8)] = if v6 { &v6t } else { &v4 };
    table
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, c)| c)
}

/// A DSCP class name (iptables `--dscp-class`, nft `ip dscp`): CS0-CS7,
/// AF11-AF43, EF, BE, and nft's `le` and `va`.
pub fn dscp_class(name: &str) -> Option<u8> {
    let n = name.to_ascii_lowercase();
    if let Some(d) = n.strip_prefix("cs") {
        return d.parse::<u8>().ok().filter(|d| *d <= 7).map(|d| d * 8);
    }
    if let Some(d) = n.strip_prefix("af") {
        let b = d.as_bytes();
        if b.len() == 2 && (b'1'..=b'4').contains(&b[0]) && (b'1'..=b'3').contains(&b[1]) {
            return Some((b[0] - b'0') * 8 + (b[1] - b'0') * 2);
        }
        return None;
    }
    match n.as_str() {
        "ef" => Some(46),
        "be" => Some(0),
        "le" => Some(1),
        "va" => Some(44),
        _ => None,
    }
}

/// A TOS name as `-m tos --tos` takes it (compared under mask 0x3f).
pub fn tos_name(name: &str) -> Option<u8> {
    Some(match name.to_ascii_lowercase().as_str() {
        "minimize-delay" => 0x10,
        "maximize-throughput" => 0x08,
        "maximize-reliability" => 0x04,
        "minimize-cost" => 0x02,
        "normal-service" => 0x00,
        _ => return None,
    })
}

/// A packet type name (`-m pkttype --pkt-type`, nft `meta pkttype`).
pub fn pkttype_name(name: &str) -> Option<u8> {
    Some(match name.to_ascii_lowercase().as_str() {
        "unicast" | "host" => 0,
        "broadcast" => 1,
        "multicast" => 2,
        "otherhost" | "other" => 3,
        "outgoing" => 4,
        "loopback" => 5,
        _ => return None,
    })
}

/// A MAC address `aa:bb:cc:dd:ee:ff` (one or two hex digits a part) as a
/// 48-bit number.
pub fn mac(text: &str) -> Option<u64> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    parts.iter().try_fold(0u64, |acc, p| {
        (!p.is_empty() && p.len() <= 2)
            .then(|| u8::from_str_radix(p, 16).ok())
            .flatten()
            .map(|b| acc << 8 | u64::from(b))
    })
}

/// A number in decimal or `0x` hex.
pub fn number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_as_the_kernel_numbers() {
        assert_eq!(tcp_flag_list("SYN,RST,ACK,FIN"), Some(0x17));
        assert_eq!(tcp_flag_list("ALL"), Some(0x3f));
        assert_eq!(tcp_flag_list("SYN,BOGUS"), None);
        assert_eq!(icmp_arg("port-unreachable", false), Ok(Some((3, Some(3)))));
        assert_eq!(icmp_arg("3/4", false), Ok(Some((3, Some(4)))));
        assert_eq!(icmp_arg("8", false), Ok(Some((8, None))));
        assert_eq!(icmp_arg("any", false), Ok(None));
        assert!(icmp_arg("9/x", false).is_err());
        assert_eq!(icmp_arg("echo-request", true), Ok(Some((128, None))));
        assert_eq!(dscp_class("AF41"), Some(34));
        assert_eq!(dscp_class("cs6"), Some(48));
        assert_eq!(dscp_class("af51"), None);
        assert_eq!(mac("00:11:22:aa:bb:cc"), Some(0x0011_22aa_bbcc));
        assert_eq!(mac("00:11:22:aa:bb"), None);
        assert_eq!(pkttype_name("BROADCAST"), Some(1));
    }
}
