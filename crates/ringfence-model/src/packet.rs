//! One concrete packet, as `trace` and the kernel differential tests use it.

use crate::fields::{pkttype, tcp_flag};
use crate::{proto, CtStates};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};

/// A packet header as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Packet {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number.
    pub protocol: u8,
    /// Source port (0 for protocols without ports).
    pub sport: u16,
    /// Destination port (0 for protocols without ports).
    pub dport: u16,
    /// Input interface, if any.
    pub iif: Option<String>,
    /// Output interface, if any.
    pub oif: Option<String>,
    /// Conntrack state bit (one of the [`CtStates`] constants).
    pub ct_state: u8,
    /// TCP flags byte ([`tcp_flag`] bits); `None`: not known, so a flag
    /// test may go either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_flags: Option<u8>,
    /// ICMP or ICMPv6 type; `None`: not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    /// ICMP or ICMPv6 code (0 when only the type is known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
    /// Packet length in bytes; `None`: not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u32>,
    /// DS field byte (TOS: DSCP << 2 | ECN); `None`: not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos: Option<u8>,
    /// Packet type ([`pkttype`] values); `None`: not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkttype: Option<u8>,
    /// Source MAC address (48 bits); `None`: not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_src: Option<u64>,
}

impl Default for Packet {
    /// An IPv4 packet from and to 0.0.0.0, protocol 0, state NEW, with
    /// every other field unknown; callers set what they know.
    fn default() -> Self {
        Self {
            src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            protocol: 0,
            sport: 0,
            dport: 0,
            iif: None,
            oif: None,
            ct_state: CtStates::NEW,
            tcp_flags: None,
            icmp_type: None,
            icmp_code: None,
            length: None,
            tos: None,
            pkttype: None,
            mac_src: None,
        }
    }
}

impl Packet {
    /// A packet opening a new connection: for TCP a SYN, for ICMP and
    /// ICMPv6 an echo request, addressed to one host (packet type
    /// unicast); its length, DS field and MAC address are not known.
    pub fn new_connection(src: IpAddr, dst: IpAddr, protocol: u8, sport: u16, dport: u16) -> Self {
        let mut p = Self {
            src,
            dst,
            protocol,
            sport,
            dport,
            ..Self::default()
        };
        p.fill_defaults();
        p
    }

    /// The ICMP `type << 8 | code` value, when the type is known.
    pub fn icmp(&self) -> Option<u16> {
        self.icmp_type
            .map(|t| u16::from(t) << 8 | u16::from(self.icmp_code.unwrap_or(0)))
    }

    /// Fill the fields a packet line or a caller left unknown with those of
    /// the usual packet in its conntrack state: TCP flags SYN for a NEW
    /// packet and ACK otherwise; ICMP echo request for NEW and echo reply
    /// otherwise (ICMPv6 128 and 129); packet type unicast unless the
    /// destination is a multicast or the limited broadcast address.
    /// Length, DS field and MAC address stay unknown.
    pub fn fill_defaults(&mut self) {
        let new = self.ct_state == CtStates::NEW;
        if self.protocol == proto::TCP && self.tcp_flags.is_none() {
            self.tcp_flags = Some(if new { tcp_flag::SYN } else { tcp_flag::ACK });
        }
        if self.icmp_type.is_none() {
            match self.protocol {
                proto::ICMP => self.icmp_type = Some(if new { 8 } else { 0 }),
                proto::ICMPV6 => self.icmp_type = Some(if new { 128 } else { 129 }),
                _ => {}
            }
        }
        if self.pkttype.is_none() {
            self.pkttype = Some(match self.dst {
                IpAddr::V4(a) if a.is_broadcast() => pkttype::BROADCAST,
                a if a.is_multicast() => pkttype::MULTICAST,
                _ => pkttype::HOST,
            });
        }
    }
}

/// The final fate of a packet on a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Let through.
    Accept,
    /// Silently dropped.
    Drop,
    /// Dropped with an answer (RST or ICMP unreachable).
    Reject,
}
