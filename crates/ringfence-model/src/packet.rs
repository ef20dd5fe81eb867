//! One concrete packet, as `trace` and the kernel differential tests use it.

use crate::CtStates;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

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
}

impl Packet {
    /// A packet opening a new connection.
    pub fn new_connection(src: IpAddr, dst: IpAddr, protocol: u8, sport: u16, dport: u16) -> Self {
        Self {
            src,
            dst,
            protocol,
            sport,
            dport,
            iif: None,
            oif: None,
            ct_state: CtStates::NEW,
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
