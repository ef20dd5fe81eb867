//! Header fields that few rules test: TCP flags, ICMP type and code, packet
//! length, the DS field (TOS/DSCP), packet type and source MAC address.
//!
//! A [`Match`](crate::Match) (and the analysis engine's boxes) keep them in
//! one `Option<Box<ExtraFields>>` that is `None` for "every value of every
//! such field", so a ruleset that tests none of them pays one null pointer
//! per rule and per box, and nothing else. Every field is a canonical
//! [`IntervalSet`], so the same set operations serve all of them; a
//! `Some` value is never all-full (see [`normalize`]).

use crate::interval::IntervalSet;
use serde::Serialize;

/// TCP header flag bits (byte 13 of the TCP header).
pub mod tcp_flag {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;
}

/// Packet types (`skb->pkt_type`), as `-m pkttype` and nft `meta pkttype`
/// read them.
pub mod pkttype {
    /// Addressed to this host (`unicast`, nft `host`).
    pub const HOST: u8 = 0;
    /// Link-layer broadcast.
    pub const BROADCAST: u8 = 1;
    /// Link-layer multicast.
    pub const MULTICAST: u8 = 2;
    /// Addressed to another host (promiscuous reception, nft `other`).
    pub const OTHERHOST: u8 = 3;
}

/// The rarely tested header fields of a match or a region. Each set holds
/// the values a packet may have; "every value" is the full set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ExtraFields {
    /// TCP flags byte (FIN 0x01 ... CWR 0x80). Only TCP packets have flags;
    /// every match that tests them also requires protocol TCP.
    pub tcp_flags: IntervalSet<u8>,
    /// ICMP or ICMPv6 type and code, as `type << 8 | code`. Every match
    /// that tests them also requires protocol ICMP or ICMPv6.
    pub icmp: IntervalSet<u16>,
    /// Packet length in bytes (IPv4 total length; IPv6 payload length plus
    /// the 40-byte header).
    pub length: IntervalSet<u32>,
    /// The DS field byte (the old TOS byte: DSCP in the upper six bits,
    /// ECN in the lower two).
    pub tos: IntervalSet<u8>,
    /// Packet type (see [`pkttype`]).
    pub pkttype: IntervalSet<u8>,
    /// Source MAC address (48 bits).
    pub mac_src: IntervalSet<u64>,
}

/// Every 48-bit MAC address.
pub fn all_macs() -> IntervalSet<u64> {
    IntervalSet::range(0, (1u64 << 48) - 1)
}

impl ExtraFields {
    /// Every value of every field.
    pub fn full() -> Self {
        Self {
            tcp_flags: IntervalSet::full(),
            icmp: IntervalSet::full(),
            length: IntervalSet::full(),
            tos: IntervalSet::full(),
            pkttype: IntervalSet::full(),
            mac_src: all_macs(),
        }
    }

    /// Whether every field is full.
    pub fn is_full(&self) -> bool {
        self.tcp_flags.is_full()
            && self.icmp.is_full()
            && self.length.is_full()
            && self.tos.is_full()
            && self.pkttype.is_full()
            && self.mac_src == all_macs()
    }

    /// Whether some field is empty (no packet has these fields).
    pub fn is_empty(&self) -> bool {
        self.tcp_flags.is_empty()
            || self.icmp.is_empty()
            || self.length.is_empty()
            || self.tos.is_empty()
            || self.pkttype.is_empty()
            || self.mac_src.is_empty()
    }

    /// Fieldwise intersection.
    pub fn intersect(&self, o: &Self) -> Self {
        Self {
            tcp_flags: self.tcp_flags.intersect(&o.tcp_flags),
            icmp: self.icmp.intersect(&o.icmp),
            length: self.length.intersect(&o.length),
            tos: self.tos.intersect(&o.tos),
            pkttype: self.pkttype.intersect(&o.pkttype),
            mac_src: self.mac_src.intersect(&o.mac_src),
        }
    }

    /// Whether every field of `self` shares a value with `o`'s (no allocation).
    pub fn overlaps(&self, o: &Self) -> bool {
        self.tcp_flags.meets(&o.tcp_flags)
            && self.icmp.meets(&o.icmp)
            && self.length.meets(&o.length)
            && self.tos.meets(&o.tos)
            && self.pkttype.meets(&o.pkttype)
            && self.mac_src.meets(&o.mac_src)
    }

    /// Whether a packet's known values are in every field: a field the
    /// packet does not give (`None`) may hold any value, so it passes here;
    /// [`ExtraFields::decided_for`] says whether the answer is certain.
    pub fn admits(&self, p: &crate::Packet) -> bool {
        fn ok<T: crate::interval::Bound>(s: &IntervalSet<T>, v: Option<T>) -> bool {
            v.is_none_or(|v| s.contains(v))
        }
        ok(&self.tcp_flags, p.tcp_flags)
            && ok(&self.icmp, p.icmp())
            && ok(&self.length, p.length)
            && ok(&self.tos, p.tos)
            && ok(&self.pkttype, p.pkttype)
            && ok(&self.mac_src, p.mac_src)
    }

    /// Whether the packet gives every field this set restricts (then
    /// [`ExtraFields::admits`] is exact; otherwise the test may go either way).
    pub fn decided_for(&self, p: &crate::Packet) -> bool {
        (self.tcp_flags.is_full() || p.tcp_flags.is_some())
            && (self.icmp.is_full() || p.icmp().is_some())
            && (self.length.is_full() || p.length.is_some())
            && (self.tos.is_full() || p.tos.is_some())
            && (self.pkttype.is_full() || p.pkttype.is_some())
            && (self.mac_src == all_macs() || p.mac_src.is_some())
    }

    /// Whether every field is a subset of `o`'s.
    pub fn is_subset(&self, o: &Self) -> bool {
        self.tcp_flags.is_subset(&o.tcp_flags)
            && self.icmp.is_subset(&o.icmp)
            && self.length.is_subset(&o.length)
            && self.tos.is_subset(&o.tos)
            && self.pkttype.is_subset(&o.pkttype)
            && self.mac_src.is_subset(&o.mac_src)
    }

    /// `self \ o` as disjoint pieces (at most one per field), each a
    /// product like `self`.
    pub fn subtract(&self, o: &Self) -> Vec<Self> {
        let mut out = Vec::new();
        let mut rest = self.clone();
        macro_rules! split {
            ($f:ident) => {
                let outside = rest.$f.difference(&o.$f);
                if !outside.is_empty() {
                    let mut piece = rest.clone();
                    piece.$f = outside;
                    out.push(piece);
                    rest.$f = rest.$f.intersect(&o.$f);
                    if rest.$f.is_empty() {
                        return out;
                    }
                }
            };
        }
        split!(tcp_flags);
        split!(icmp);
        split!(length);
        split!(tos);
        split!(pkttype);
        split!(mac_src);
        out
    }
}

/// The rare fields as a match or a box keeps them: `None` is every value.
pub type Extra = Option<Box<ExtraFields>>;

/// `Some` fields that are all full become `None` (the one form of "every
/// value"), so that equal sets compare equal.
pub fn normalize(x: Extra) -> Extra {
    x.filter(|e| !e.is_full())
}

/// Whether the fields share a packet.
pub fn overlaps(a: &Extra, b: &Extra) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.overlaps(b),
        _ => true,
    }
}

/// The intersection (`None` when both are every value).
pub fn intersect(a: &Extra, b: &Extra) -> Extra {
    match (a, b) {
        (None, None) => None,
        (Some(a), None) | (None, Some(a)) => Some(a.clone()),
        (Some(a), Some(b)) => normalize(Some(Box::new(a.intersect(b)))),
    }
}

/// Whether `a` is a subset of `b`.
pub fn is_subset(a: &Extra, b: &Extra) -> bool {
    match (a, b) {
        (_, None) => true,
        (None, Some(b)) => b.is_full(),
        (Some(a), Some(b)) => a.is_subset(b),
    }
}

/// Whether `a` holds no value (some field empty).
pub fn is_empty(a: &Extra) -> bool {
    a.as_ref().is_some_and(|e| e.is_empty())
}

/// `a \ b` as disjoint pieces, and `a ∩ b` (what is left inside `b`).
pub fn subtract(a: &Extra, b: &Extra) -> (Vec<Extra>, Extra) {
    match b {
        None => (Vec::new(), a.clone()),
        Some(bb) => {
            let full;
            let aa: &ExtraFields = match a {
                Some(x) => x,
                None => {
                    full = ExtraFields::full();
                    &full
                }
            };
            let pieces = aa
                .subtract(bb)
                .into_iter()
                .map(|p| normalize(Some(Box::new(p))))
                .collect();
            (pieces, intersect(a, b))
        }
    }
}

/// The ICMP/ICMPv6 `type << 8 | code` values of one type (every code), or
/// of one type and code.
pub fn icmp_values(ty: u8, code: Option<u8>) -> IntervalSet<u16> {
    let base = u16::from(ty) << 8;
    match code {
        Some(c) => IntervalSet::single(base | u16::from(c)),
        None => IntervalSet::range(base, base | 0xff),
    }
}

/// The ICMP `type << 8 | code` values with code `code` (every type).
pub fn icmp_code_values(code: u8) -> IntervalSet<u16> {
    IntervalSet::from_ranges((0..=255u16).map(|t| {
        let v = t << 8 | u16::from(code);
        (v, v)
    }))
}

/// The byte values `b` with `b & mask == value` (`!=` when `invert`).
pub fn masked_bytes(mask: u8, value: u8, invert: bool) -> IntervalSet<u8> {
    IntervalSet::from_ranges(
        (0..=255u8)
            .filter(|b| ((b & mask) == value) != invert)
            .map(|b| (b, b)),
    )
}

/// TCP flag values conntrack accepts as valid (nf_conntrack_proto_tcp's
/// table), with PSH, ECE and CWR ignored: any other combination makes the
/// packet INVALID, so a NEW, ESTABLISHED or RELATED TCP packet has one of these.
const VALID_CORE: [u8; 9] = {
    use tcp_flag::*;
    [
        SYN,
        SYN | URG,
        SYN | ACK,
        RST,
        RST | ACK,
        FIN | ACK,
        FIN | ACK | URG,
        ACK,
        ACK | URG,
    ]
};

fn with_free_bits(core: &[u8]) -> IntervalSet<u8> {
    use tcp_flag::*;
    let free = PSH | ECE | CWR;
    IntervalSet::from_ranges(
        (0..=255u8)
            .filter(|b| core.contains(&(b & !free)))
            .map(|b| (b, b)),
    )
}

/// The TCP flags a tracked packet (NEW, ESTABLISHED or RELATED) can carry.
pub fn tcp_flags_tracked() -> IntervalSet<u8> {
    with_free_bits(&VALID_CORE)
}

/// Fields a ruleset may rewrite (see [`tests_made_opaque`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewritten {
    /// The DS field (iptables `DSCP`, `TOS`, `ECN` targets; nft `ip dscp
    /// set`, `ip ecn set`, ...).
    DsField,
    /// The packet type (nft `meta pkttype set`).
    PktType,
}

/// The ruleset with every test of a field it rewrites turned into an
/// opaque match: the model does not follow such rewrites, so a later test
/// of the field may or may not match (two branches) instead of reading the
/// value the packet arrived with. Returns how many rules changed.
pub fn tests_made_opaque(rs: &mut crate::Ruleset, field: Rewritten, at: &str) -> usize {
    let mut changed = 0;
    for c in &mut rs.chains {
        for r in &mut c.rules {
            let Some(x) = r.matches.extra.as_mut() else {
                continue;
            };
            let (name, tested) = match field {
                Rewritten::DsField => ("DS field (DSCP/TOS)", !x.tos.is_full()),
                Rewritten::PktType => ("packet type", !x.pkttype.is_full()),
            };
            if !tested {
                continue;
            }
            match field {
                Rewritten::DsField => x.tos = IntervalSet::full(),
                Rewritten::PktType => x.pkttype = IntervalSet::full(),
            }
            r.matches.normalize_extra();
            r.matches.opaque.push(crate::Opaque {
                text: format!("{name} test (the ruleset rewrites it)"),
            });
            changed += 1;
        }
    }
    if changed > 0 {
        rs.notes.push(crate::ParseNote {
            location: at.to_string(),
            message: format!(
                "this rule rewrites the {} and the model does not follow the rewrite, so the {changed} rule(s) testing it may or may not match",
                match field {
                    Rewritten::DsField => "DS field (DSCP/TOS/ECN)",
                    Rewritten::PktType => "packet type",
                }
            ),
        });
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_mask_keeps_exactly_the_bytes_with_syn_and_without_ack_rst_fin() {
        use tcp_flag::*;
        let s = masked_bytes(SYN | ACK | RST | FIN, SYN, false);
        assert!(s.contains(SYN));
        assert!(s.contains(SYN | PSH | ECE | CWR));
        assert!(!s.contains(SYN | ACK));
        assert_eq!(s.ranges().iter().map(|(a, b)| b - a + 1).sum::<u8>(), 16);
    }

    #[test]
    fn tracked_flags_are_the_combinations_conntrack_accepts() {
        use tcp_flag::*;
        let t = tcp_flags_tracked();
        assert!(t.contains(SYN) && t.contains(SYN | ACK) && t.contains(ACK | PSH));
        assert!(t.contains(FIN | ACK) && t.contains(RST) && t.contains(SYN | ECE | CWR));
        assert!(!t.contains(SYN | FIN) && !t.contains(0) && !t.contains(FIN));
        assert!(!t.contains(SYN | RST));
    }

    #[test]
    fn subtracting_fields_gives_disjoint_pieces_that_cover_the_difference() {
        let mut a = ExtraFields::full();
        a.tcp_flags = IntervalSet::range(0, 15);
        let mut b = ExtraFields::full();
        b.tcp_flags = IntervalSet::single(2);
        b.length = IntervalSet::range(0, 100);
        let (pieces, inside) = subtract(&Some(Box::new(a.clone())), &Some(Box::new(b.clone())));
        assert_eq!(pieces.len(), 2);
        let inside = inside.expect("restricted");
        assert_eq!(inside.tcp_flags, IntervalSet::single(2));
        assert_eq!(inside.length, IntervalSet::range(0, 100));
        for p in &pieces {
            assert!(!overlaps(p, &Some(Box::new(b.clone()))));
        }
        // Subtracting "every value" leaves nothing outside.
        let (none, same) = subtract(&Some(Box::new(a.clone())), &None);
        assert!(none.is_empty());
        assert_eq!(same, Some(Box::new(a)));
    }

    #[test]
    fn full_fields_normalize_to_none() {
        assert_eq!(normalize(Some(Box::new(ExtraFields::full()))), None);
        assert!(is_subset(&None, &Some(Box::new(ExtraFields::full()))));
    }
}
