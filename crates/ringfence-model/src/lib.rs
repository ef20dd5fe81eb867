//! The normalized firewall model.
//!
//! Every ruleset parser (iptables-save, nft JSON, NSX DFW) produces a
//! [`Ruleset`]; every analysis (verify, trace, diff, lab predictions) consumes
//! one. The model is deliberately small:
//!
//! - A ruleset is a list of [`Chain`]s. Base chains carry a [`Hook`], a
//!   priority and a [`Policy`]; a packet must be accepted by every base chain
//!   on its path ([`Hook::path`], [`Ruleset::path_chains`]): hook by hook in
//!   kernel order, each hook's chains in priority order (nftables semantics;
//!   iptables tables are base chains at the kernel's priorities: raw -300,
//!   mangle -150, nat -100 on prerouting/output and 100 on
//!   postrouting/input, filter 0, security 50).
//! - A [`Rule`] is a [`Match`] and an [`Action`]. A match is a *conjunction* of
//!   per-field sets (a box in header space): addresses, protocol, ports,
//!   interfaces and conntrack state, marks, the connection's translations
//!   and original tuple, address types. Disjunctions in the source (NSX
//!   service lists, `multiport --ports`, `--ctstate NEW,DNAT`, nft `dnat
//!   to ip daddr map {...}`) are split by the parser into consecutive rules
//!   that share one [`RuleRef`]; first-match semantics make that equivalent.
//! - Address translations are actions ([`Action::Nat`], [`NatRewrite`]):
//!   DNAT, SNAT, MASQUERADE and REDIRECT rewrite the packet that later
//!   stages see. The host's own addresses ([`LocalAddrs`]) are an input of
//!   the analyses, not of the ruleset.
//! - Anything the parser cannot model exactly is kept as an [`Opaque`] match:
//!   the rule *may* match, and analyses follow both branches (it matches; it
//!   does not). A target the model cannot follow (NETMAP, TPROXY, queues,
//!   ...) is a jump to a synthesized chain ([`Chain::is_unknown_target`])
//!   whose packets have an unknown fate.

pub mod fields;
pub mod iface;
pub mod interval;
pub mod names;
pub mod packet;

pub use fields::{Extra, ExtraFields};
pub use iface::{IfacePattern, IfaceSet};
pub use interval::IntervalSet;
pub use packet::{Packet, Verdict};

use serde::Serialize;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// IP protocol numbers used throughout.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// The netfilter hook a base chain is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    /// Before routing.
    Prerouting,
    /// Packets for the local host.
    Input,
    /// Routed packets.
    Forward,
    /// Locally generated packets.
    Output,
    /// After routing.
    Postrouting,
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        })
    }
}

impl Hook {
    /// The hooks a packet meets, in kernel order, on the traversal this
    /// hook names: a forwarded packet (`Forward`) passes prerouting, forward
    /// and postrouting; a packet to the host (`Input`) prerouting then
    /// input; a packet from the host (`Output`) output then postrouting.
    /// `Prerouting` and `Postrouting` name only themselves.
    pub fn path(self) -> &'static [Hook] {
        match self {
            Hook::Forward => &[Hook::Prerouting, Hook::Forward, Hook::Postrouting],
            Hook::Input => &[Hook::Prerouting, Hook::Input],
            Hook::Output => &[Hook::Output, Hook::Postrouting],
            Hook::Prerouting => &[Hook::Prerouting],
            Hook::Postrouting => &[Hook::Postrouting],
        }
    }

    /// The priority at which the kernel runs this hook's nat chains
    /// ([`BaseChain::nat`]): the nat core registers one hook function per
    /// hook, at -100 on prerouting and output (destination translation)
    /// and 100 on input and postrouting (source translation), and calls
    /// every nat chain of the hook from there, in the order of their own
    /// priorities. A nat chain's priority thus orders it among the hook's
    /// nat chains only, never against the other chains (checked in the
    /// kernel: a nat output chain at priority 150 rewrites the destination
    /// that a filter output chain at priority 0 then sees). `None` on
    /// forward, which has no nat chains.
    pub fn nat_priority(self) -> Option<i32> {
        match self {
            Hook::Prerouting | Hook::Output => Some(-100),
            Hook::Input | Hook::Postrouting => Some(100),
            Hook::Forward => None,
        }
    }
}

/// What a base chain does with a packet that no rule decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Accept (this base chain lets it through).
    Accept,
    /// Drop.
    Drop,
}

/// Which source format a ruleset came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceFormat {
    /// `iptables-save` output (IPv4).
    IptablesSave,
    /// `ip6tables-save` output (IPv6).
    Ip6tablesSave,
    /// `nft -j list ruleset`.
    NftJson,
    /// NSX Policy API export.
    NsxJson,
}

/// Where a rule came from, in the terms of its source format.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleRef {
    /// A line of a line-oriented file (iptables-save).
    Line {
        /// The file name as given by the user.
        file: String,
        /// 1-based line.
        line: u64,
    },
    /// An nftables rule handle.
    NftHandle {
        /// Table family (ip, ip6, inet, ...).
        family: String,
        /// Table name.
        table: String,
        /// Chain name.
        chain: String,
        /// The kernel's rule handle.
        handle: u64,
    },
    /// An NSX policy path such as `/infra/domains/default/security-policies/p/rules/r`.
    NsxPath {
        /// The rule's policy path.
        path: String,
    },
    /// A synthesized element: a chain policy or a default rule.
    Policy {
        /// The chain whose policy decided.
        chain: String,
    },
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleRef::Line { file, line } => write!(f, "{file}:{line}"),
            RuleRef::NftHandle {
                family,
                table,
                chain,
                handle,
            } => write!(f, "{family} {table} {chain} handle {handle}"),
            RuleRef::NsxPath { path } => f.write_str(path),
            RuleRef::Policy { chain } => write!(f, "policy of {chain}"),
        }
    }
}

/// Index of a chain inside [`Ruleset::chains`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ChainId(pub usize);

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Accept: ends this base chain's evaluation with accept.
    Accept,
    /// Drop silently.
    Drop,
    /// Drop and answer (TCP reset or ICMP unreachable).
    Reject {
        /// The `--reject-with` / `reject with` argument, when given.
        with: Option<String>,
    },
    /// Go back to the calling chain (or the base chain's policy).
    Return,
    /// Evaluate another chain, then continue here unless it decided.
    Jump {
        /// Target chain.
        target: ChainId,
    },
    /// Evaluate another chain and do not come back here.
    Goto {
        /// Target chain.
        target: ChainId,
    },
    /// No verdict (log, counter, comment-only rules): continue with the next rule.
    Continue,
    /// Rewrite the packet mark or the connection mark (iptables `MARK`,
    /// `CONNMARK`; nft `meta mark set`, `ct mark set`), then continue with
    /// the next rule.
    Mark(MarkRewrite),
    /// An address translation (iptables `DNAT`, `SNAT`, `MASQUERADE`,
    /// `REDIRECT`; nft `dnat to`, `snat to`, `masquerade`, `redirect`). In a
    /// nat base chain it ends that base chain for the packet, as an accept
    /// does there, and the packet goes on rewritten; nat chains see only a
    /// connection's first packet, and the connection's later packets take
    /// the same translation. See [`NatRewrite`].
    Nat(NatRewrite),
}

/// Which translation a [`NatRewrite`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NatKind {
    /// Rewrite the destination (nat prerouting and output).
    Dnat,
    /// Rewrite the source (nat postrouting and input).
    Snat,
    /// Rewrite the source to the address of the interface the packet
    /// leaves by (nat postrouting).
    Masquerade,
    /// Rewrite the destination to the host's own address on the interface
    /// the packet came in by (`127.0.0.1` / `::1` for a packet the host
    /// sends), so the host receives it (nat prerouting and output).
    Redirect,
}

/// An address translation: what the rewritten packet carries.
///
/// `addrs` and `ports` are inclusive ranges the kernel picks one value
/// from (the first one free for this connection: in practice the lowest
/// of the range unless another connection holds that tuple). `None`
/// keeps that part as it is, except that [`NatKind::Redirect`] always
/// rewrites the address (to the host's address on the incoming interface)
/// and [`NatKind::Masquerade`] always rewrites the source address (to the
/// outgoing interface's address); their `addrs` is always `None`. A port
/// range applies only to protocols with ports (tcp, udp, sctp, dccp,
/// udplite); for other packets only the address changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct NatRewrite {
    /// Destination or source translation, and how the address is chosen.
    pub kind: NatKind,
    /// The new address range (first, last), both of the rule's family.
    pub addrs: Option<(std::net::IpAddr, std::net::IpAddr)>,
    /// The new port range (first, last).
    pub ports: Option<(u16, u16)>,
}

impl NatRewrite {
    /// Whether this rewrites the destination (DNAT, REDIRECT) rather than
    /// the source (SNAT, MASQUERADE).
    pub fn is_destination(&self) -> bool {
        matches!(self.kind, NatKind::Dnat | NatKind::Redirect)
    }
}

impl fmt::Display for NatRewrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            NatKind::Dnat => "dnat",
            NatKind::Snat => "snat",
            NatKind::Masquerade => "masquerade",
            NatKind::Redirect => "redirect",
        })?;
        if let Some((a, b)) = self.addrs {
            if a == b {
                write!(f, " to {a}")?;
            } else {
                write!(f, " to {a}-{b}")?;
            }
        }
        if let Some((a, b)) = self.ports {
            let sep = if self.addrs.is_some() { ":" } else { " to :" };
            if a == b {
                write!(f, "{sep}{a}")?;
            } else {
                write!(f, "{sep}{a}-{b}")?;
            }
        }
        Ok(())
    }
}

/// Which address translations a connection has had, as a set over the
/// four combinations (source translated or not × destination translated or
/// not): the conntrack status bits `IPS_SRC_NAT` / `IPS_DST_NAT` that
/// `--ctstate SNAT/DNAT`, `--ctstatus SNAT/DNAT` and nft `ct status
/// snat/dnat` read. The kernel sets a bit only when the translation changed
/// the tuple (a DNAT to the address and port the packet already has leaves
/// `DNAT` unset), and only once it happened: the destination bit in nat
/// prerouting/output, the source bit in nat postrouting/input, so a filter
/// forward rule sees `DNAT` on a connection's first packet but not `SNAT`.
/// A packet without a connection (before conntrack, invalid, untracked)
/// reads as translated neither way; tests that fail without a connection
/// (`--ctstatus`, nft `ct status`) also restrict [`Match::ct_state`] to the
/// tracked states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct CtNat(pub u8);

impl CtNat {
    /// Every combination: no test.
    pub const ALL: CtNat = CtNat(0b1111);

    /// The bit of one combination.
    pub fn bit(snat: bool, dnat: bool) -> u8 {
        1 << (u8::from(snat) | u8::from(dnat) << 1)
    }

    /// The connections whose source was translated (`--ctstate SNAT`).
    pub fn snat() -> CtNat {
        CtNat(Self::bit(true, false) | Self::bit(true, true))
    }

    /// The connections whose destination was translated (`--ctstate DNAT`).
    pub fn dnat() -> CtNat {
        CtNat(Self::bit(false, true) | Self::bit(true, true))
    }

    /// Whether a connection with these translations is in the set.
    pub fn contains(self, snat: bool, dnat: bool) -> bool {
        self.0 & Self::bit(snat, dnat) != 0
    }

    /// Whether the set restricts anything (it is not every combination).
    pub fn is_test(self) -> bool {
        self.0 & Self::ALL.0 != Self::ALL.0
    }

    /// The combinations not in `self`.
    pub fn complement(self) -> CtNat {
        CtNat(!self.0 & Self::ALL.0)
    }

    /// Intersection.
    pub fn intersect(self, other: CtNat) -> CtNat {
        CtNat(self.0 & other.0)
    }

    /// Union.
    pub fn union(self, other: CtNat) -> CtNat {
        CtNat(self.0 | other.0)
    }
}

/// A test on the connection's original tuple (iptables `--ctorigsrc`,
/// `--ctorigdst`, `--ctorigsrcport`, `--ctorigdstport`; nft `ct original
/// saddr/daddr/proto-src/proto-dst`): the addresses and ports of the
/// connection's first packet as it entered, before any translation. Each
/// field must hold (a full set: no test on it). Such a test fails for a
/// packet without a connection: parsers also restrict [`Match::ct_state`]
/// to the tracked states (new, established, related).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct OrigTuple {
    /// Original source addresses.
    pub src: AddrSet,
    /// Original destination addresses.
    pub dst: AddrSet,
    /// Original source ports (0 for protocols without ports).
    pub sport: IntervalSet<u16>,
    /// Original destination ports.
    pub dport: IntervalSet<u16>,
}

impl OrigTuple {
    /// The test every tracked connection passes.
    pub fn any() -> Self {
        Self {
            src: AddrSet::any(),
            dst: AddrSet::any(),
            sport: IntervalSet::full(),
            dport: IntervalSet::full(),
        }
    }

    /// Whether a connection whose first packet was `src:sport -> dst:dport`
    /// passes the test.
    pub fn holds(
        &self,
        src: std::net::IpAddr,
        dst: std::net::IpAddr,
        sport: u16,
        dport: u16,
    ) -> bool {
        self.src.contains(src)
            && self.dst.contains(dst)
            && self.sport.contains(sport)
            && self.dport.contains(dport)
    }

    /// Whether no connection passes the test.
    pub fn is_empty(&self) -> bool {
        self.src.is_empty() || self.dst.is_empty() || self.sport.is_empty() || self.dport.is_empty()
    }
}

/// Routing types of an address (iptables `-m addrtype --src-type/--dst-type`,
/// nft `fib saddr/daddr type`) as a bit set: what the host's routing tables
/// say the address is. `LOCAL` is an address of the host itself
/// ([`LocalAddrs`]); `MULTICAST` 224.0.0.0/4 and ff00::/8; `BROADCAST`
/// 255.255.255.255 and the broadcast address of a directly connected
/// subnet; the rest is `UNICAST` unless a route says otherwise
/// (`BLACKHOLE`, `UNREACHABLE`, `PROHIBIT`, `THROW`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct AddrTypes(pub u16);

impl AddrTypes {
    /// `UNSPEC`.
    pub const UNSPEC: u16 = 1 << 0;
    /// `UNICAST`.
    pub const UNICAST: u16 = 1 << 1;
    /// `LOCAL`: an address of the host.
    pub const LOCAL: u16 = 1 << 2;
    /// `BROADCAST`.
    pub const BROADCAST: u16 = 1 << 3;
    /// `ANYCAST`.
    pub const ANYCAST: u16 = 1 << 4;
    /// `MULTICAST`.
    pub const MULTICAST: u16 = 1 << 5;
    /// `BLACKHOLE`.
    pub const BLACKHOLE: u16 = 1 << 6;
    /// `UNREACHABLE`.
    pub const UNREACHABLE: u16 = 1 << 7;
    /// `PROHIBIT`.
    pub const PROHIBIT: u16 = 1 << 8;
    /// `THROW`.
    pub const THROW: u16 = 1 << 9;
    /// `NAT`.
    pub const NAT: u16 = 1 << 10;
    /// `XRESOLVE`.
    pub const XRESOLVE: u16 = 1 << 11;
    /// Every type: no test.
    pub const ALL: AddrTypes = AddrTypes((1 << 12) - 1);

    /// One type by its iptables or nft name (case-insensitive).
    pub fn parse_one(name: &str) -> Option<u16> {
        Some(match name.to_ascii_lowercase().as_str() {
            "unspec" => Self::UNSPEC,
            "unicast" => Self::UNICAST,
            "local" => Self::LOCAL,
            "broadcast" => Self::BROADCAST,
            "anycast" => Self::ANYCAST,
            "multicast" => Self::MULTICAST,
            "blackhole" => Self::BLACKHOLE,
            "unreachable" => Self::UNREACHABLE,
            "prohibit" => Self::PROHIBIT,
            "throw" => Self::THROW,
            "nat" => Self::NAT,
            "xresolve" => Self::XRESOLVE,
            _ => return None,
        })
    }

    /// Whether the set restricts anything.
    pub fn is_test(self) -> bool {
        self.0 & Self::ALL.0 != Self::ALL.0
    }

    /// The types not in `self`.
    pub fn complement(self) -> AddrTypes {
        AddrTypes(!self.0 & Self::ALL.0)
    }

    /// Whether any of `types` is in the set.
    pub fn meets(self, types: u16) -> bool {
        self.0 & types != 0
    }
}

/// Address-type tests that look at one interface of the packet only
/// (iptables `-m addrtype --limit-iface-in` / `--limit-iface-out`, nft
/// `fib saddr|daddr . iif|oif type`). The kernel then asks its local
/// routing table about the address as if that interface were the host's
/// only one (`inet_dev_addr_type`; for IPv6 whether the address is assigned
/// to that interface): an address of the host is `LOCAL` only on the
/// interface it is assigned to (loopback addresses on `lo`) and not `LOCAL`
/// on any other; multicast and broadcast addresses keep their types. A hook
/// where the packet has no such interface asks host-wide, as without the
/// limit ([`LocalAddrs::types_on`]). Each field is [`AddrTypes::ALL`] when
/// it tests nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct IfaceTypes {
    /// Types of the source address on the input interface.
    pub src_in: AddrTypes,
    /// Types of the destination address on the input interface.
    pub dst_in: AddrTypes,
    /// Types of the source address on the output interface.
    pub src_out: AddrTypes,
    /// Types of the destination address on the output interface.
    pub dst_out: AddrTypes,
}

/// Which address an interface-limited type test reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrSide {
    /// The source address.
    Src,
    /// The destination address.
    Dst,
}

/// Which interface of the packet an interface-limited type test looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IfaceSide {
    /// The input interface.
    In,
    /// The output interface.
    Out,
}

impl IfaceTypes {
    /// No test.
    pub fn any() -> Self {
        Self {
            src_in: AddrTypes::ALL,
            dst_in: AddrTypes::ALL,
            src_out: AddrTypes::ALL,
            dst_out: AddrTypes::ALL,
        }
    }

    /// The test on `side`'s address looked up on the `dev` interface.
    pub fn get_mut(&mut self, side: AddrSide, dev: IfaceSide) -> &mut AddrTypes {
        match (side, dev) {
            (AddrSide::Src, IfaceSide::In) => &mut self.src_in,
            (AddrSide::Dst, IfaceSide::In) => &mut self.dst_in,
            (AddrSide::Src, IfaceSide::Out) => &mut self.src_out,
            (AddrSide::Dst, IfaceSide::Out) => &mut self.dst_out,
        }
    }

    /// Every test: the types, the address it reads and the interface.
    pub fn tests(&self) -> impl Iterator<Item = (AddrTypes, AddrSide, IfaceSide)> + '_ {
        [
            (self.src_in, AddrSide::Src, IfaceSide::In),
            (self.dst_in, AddrSide::Dst, IfaceSide::In),
            (self.src_out, AddrSide::Src, IfaceSide::Out),
            (self.dst_out, AddrSide::Dst, IfaceSide::Out),
        ]
        .into_iter()
        .filter(|(t, _, _)| t.is_test())
    }

    /// Whether some field allows no type at all (the match is empty).
    pub fn is_empty(&self) -> bool {
        [self.src_in, self.dst_in, self.src_out, self.dst_out]
            .iter()
            .any(|t| t.0 & AddrTypes::ALL.0 == 0)
    }
}

/// The name of the loopback interface, where the kernel puts 127.0.0.0/8
/// and ::1.
pub const LOOPBACK_IFACE: &str = "lo";

/// The host's own addresses (`--local ADDR[%IFACE][,...]`): what `LOCAL`
/// in [`AddrTypes`] means, and what decides after prerouting whether a
/// packet goes to the host (input) or through it (forward). The loopback
/// ranges (127.0.0.0/8, ::1) are always local, on `lo`. Without `--local`
/// the analyses do not know the host's addresses: a `LOCAL` test may or may
/// not match (two branches) and the path is the one the command names.
/// The interface an address is on matters only to tests limited to one
/// interface ([`IfaceTypes`]); for an address given without one (or on
/// several), such a test stays two branches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct LocalAddrs {
    /// The host's addresses, loopback included.
    pub addrs: AddrSet,
    /// The addresses whose interface is known, by interface name
    /// (`ADDR%IFACE`; loopback on `lo`).
    pub ifaces: std::collections::BTreeMap<String, AddrSet>,
}

/// Every type an address that is not one of the host's may have on it
/// (a route or a subnet broadcast address decides, which the model does
/// not know).
const NOT_LOCAL_TYPES: u16 = AddrTypes::ALL.0 & !(AddrTypes::LOCAL | AddrTypes::MULTICAST);

impl LocalAddrs {
    /// The given addresses plus loopback.
    pub fn new(addrs: impl IntoIterator<Item = std::net::IpAddr>) -> Self {
        Self::on_ifaces(addrs.into_iter().map(|a| (a, None)))
    }

    /// The given addresses, each on the named interface when one is given,
    /// plus loopback (on `lo`).
    pub fn on_ifaces(addrs: impl IntoIterator<Item = (std::net::IpAddr, Option<String>)>) -> Self {
        let lo = AddrSet::v4_prefix(Ipv4Addr::new(127, 0, 0, 0), 8)
            .union(&AddrSet::v6_prefix(Ipv6Addr::LOCALHOST, 128));
        let mut me = Self {
            addrs: lo.clone(),
            ifaces: std::collections::BTreeMap::from([(LOOPBACK_IFACE.to_string(), lo)]),
        };
        for (a, iface) in addrs {
            let one = match a {
                std::net::IpAddr::V4(a) => AddrSet::v4_prefix(a, 32),
                std::net::IpAddr::V6(a) => AddrSet::v6_prefix(a, 128),
            };
            me.addrs = me.addrs.union(&one);
            if let Some(i) = iface {
                let e = me.ifaces.entry(i).or_insert_with(AddrSet::empty);
                *e = e.union(&one);
            }
        }
        me
    }

    /// The addresses of a set (on no known interface) plus loopback.
    pub fn from_set(set: &AddrSet) -> Self {
        let mut me = Self::new([]);
        me.addrs = me.addrs.union(set);
        me
    }

    /// Whether `ip` is one of the host's addresses.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        self.addrs.contains(ip)
    }

    /// The one interface `ip` is known to be on (`None`: not a host
    /// address, on no interface given, or on several).
    pub fn iface_of(&self, ip: std::net::IpAddr) -> Option<&str> {
        let mut on = self.ifaces.iter().filter(|(_, set)| set.contains(ip));
        match (on.next(), on.next()) {
            (Some((name, _)), None) => Some(name),
            _ => None,
        }
    }

    /// The host's addresses on exactly one known interface, by interface.
    pub fn placed(&self) -> Vec<(&str, AddrSet)> {
        self.ifaces
            .iter()
            .map(|(name, set)| {
                let others = self
                    .ifaces
                    .iter()
                    .filter(|(n, _)| *n != name)
                    .fold(AddrSet::empty(), |acc, (_, s)| acc.union(s));
                (name.as_str(), set.intersect(&others.complement()))
            })
            .collect()
    }

    /// The host's addresses whose interface is not known (given without
    /// one, or on several).
    pub fn unplaced(&self) -> AddrSet {
        let placed = self
            .placed()
            .into_iter()
            .fold(AddrSet::empty(), |acc, (_, s)| acc.union(&s));
        self.addrs.intersect(&placed.complement())
    }

    /// The routing types `ip` may have on this host: exactly `LOCAL` for
    /// a host address, `MULTICAST` for a multicast one, `BROADCAST` for
    /// 255.255.255.255; any other address is `UNICAST` unless a route or a
    /// subnet broadcast address (which the model does not know) says
    /// otherwise, so it may be any type but `LOCAL` and `MULTICAST`.
    pub fn types_of(&self, ip: std::net::IpAddr) -> u16 {
        if self.contains(ip) {
            return AddrTypes::LOCAL;
        }
        match ip {
            std::net::IpAddr::V4(a) if a.is_multicast() => AddrTypes::MULTICAST,
            std::net::IpAddr::V6(a) if a.is_multicast() => AddrTypes::MULTICAST,
            std::net::IpAddr::V4(a) if a == Ipv4Addr::BROADCAST => AddrTypes::BROADCAST,
            _ => NOT_LOCAL_TYPES,
        }
    }

    /// The routing types `ip` may have when the lookup is limited to the
    /// interface `dev` ([`IfaceTypes`]; `None`: the packet has no such
    /// interface, and the lookup is host-wide, [`LocalAddrs::types_of`]).
    /// A host address is `LOCAL` on its interface and not `LOCAL` on any
    /// other; one whose interface is not known may be either.
    pub fn types_on(&self, ip: std::net::IpAddr, dev: Option<&str>) -> u16 {
        let Some(dev) = dev else {
            return self.types_of(ip);
        };
        if !self.contains(ip) {
            return self.types_of(ip);
        }
        match self.iface_of(ip) {
            Some(i) if i == dev => AddrTypes::LOCAL,
            Some(_) => NOT_LOCAL_TYPES,
            None => AddrTypes::LOCAL | NOT_LOCAL_TYPES,
        }
    }
}

/// Which of the two marks a test reads or a rewrite writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkField {
    /// The packet mark (`skb->mark`, iptables `-m mark`, nft `meta mark`).
    /// Every packet enters the ruleset with mark 0.
    Packet,
    /// The connection's mark (iptables `-m connmark`, nft `ct mark`). A
    /// connection starts with mark 0; later packets see what earlier ones saved.
    Conn,
}

/// A test on a mark: `(mark & mask) == value`, or `!=` when `invert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct MarkTest {
    /// The mark read.
    pub field: MarkField,
    /// Bits compared.
    pub mask: u32,
    /// Expected value of those bits (already masked).
    pub value: u32,
    /// The test holds when the masked mark differs from `value`.
    pub invert: bool,
}

impl MarkTest {
    /// Whether a packet with packet mark `mark` and connection mark `ct`
    /// passes the test.
    pub fn holds(&self, mark: u32, ct: u32) -> bool {
        let m = match self.field {
            MarkField::Packet => mark,
            MarkField::Conn => ct,
        };
        ((m & self.mask) == self.value) != self.invert
    }
}

/// A mark rewrite: `field = (field & !clear) ^ xor ^ (other & copy)`, where
/// `other` is the other mark. Every iptables and nft form is one of these:
/// `--set-xmark V/M` is clear M, xor V; `--set-mark V/M` clear M|V, xor V;
/// `--and-mark A` clear !A; `--or-mark O` clear O, xor O; `--xor-mark X`
/// xor X; `CONNMARK --save-mark --nfmask N --ctmask C` writes the
/// connection mark with clear C, copy N; `--restore-mark` writes the packet
/// mark with clear N, copy C.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct MarkRewrite {
    /// The mark written.
    pub field: MarkField,
    /// Bits cleared first.
    pub clear: u32,
    /// Bits flipped then.
    pub xor: u32,
    /// Bits of the other mark XORed in last (0: no copy).
    pub copy: u32,
}

impl MarkRewrite {
    /// Set the bits of `mask` to `value` (bits of `value` outside `mask` are set too, as iptables `--set-mark` does).
    pub fn set(field: MarkField, value: u32, mask: u32) -> Self {
        Self {
            field,
            clear: mask | value,
            xor: value,
            copy: 0,
        }
    }

    /// Whether applying the rewrite twice is applying it once (a rule that
    /// a parser splits into overlapping alternatives may apply it twice).
    pub fn is_idempotent(&self) -> bool {
        self.xor & !self.clear == 0 && self.copy & !self.clear == 0
    }

    /// The marks after the rewrite, from `(mark, ct)` before it.
    pub fn apply(&self, mark: u32, ct: u32) -> (u32, u32) {
        match self.field {
            MarkField::Packet => ((mark & !self.clear) ^ self.xor ^ (ct & self.copy), ct),
            MarkField::Conn => (mark, (ct & !self.clear) ^ self.xor ^ (mark & self.copy)),
        }
    }
}

/// Conntrack states as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct CtStates(pub u8);

impl CtStates {
    /// A new connection's first packet.
    pub const NEW: u8 = 1;
    /// A packet of a known connection.
    pub const ESTABLISHED: u8 = 2;
    /// A packet related to a known connection (ICMP errors, FTP data).
    pub const RELATED: u8 = 4;
    /// A packet conntrack could not classify.
    pub const INVALID: u8 = 8;
    /// A packet exempted from tracking.
    pub const UNTRACKED: u8 = 16;
    /// The states of a packet that has a connection (tests on the
    /// connection, such as its original tuple, need one).
    pub const TRACKED: u8 = Self::NEW | Self::ESTABLISHED | Self::RELATED;
    /// Every state.
    pub const ALL: CtStates = CtStates(31);

    /// Whether `state` (one of the constants) is in the set.
    pub fn contains(self, state: u8) -> bool {
        self.0 & state != 0
    }

    /// The set of every state not in `self`.
    pub fn complement(self) -> CtStates {
        CtStates(!self.0 & Self::ALL.0)
    }

    /// Parse one state name as iptables and nft spell it (case-insensitive).
    pub fn parse_one(name: &str) -> Option<u8> {
        match name.to_ascii_lowercase().as_str() {
            "new" => Some(Self::NEW),
            "established" => Some(Self::ESTABLISHED),
            "related" => Some(Self::RELATED),
            "invalid" => Some(Self::INVALID),
            "untracked" => Some(Self::UNTRACKED),
            _ => None,
        }
    }
}

/// A set of addresses, kept per family. A packet is either IPv4 or IPv6, so a
/// match whose `v6` part is empty cannot match an IPv6 packet at all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AddrSet {
    /// IPv4 addresses as integers.
    pub v4: IntervalSet<u32>,
    /// IPv6 addresses as integers.
    pub v6: IntervalSet<u128>,
}

impl AddrSet {
    /// Every address of both families.
    pub fn any() -> Self {
        Self {
            v4: IntervalSet::full(),
            v6: IntervalSet::full(),
        }
    }

    /// No address at all.
    pub fn empty() -> Self {
        Self {
            v4: IntervalSet::empty(),
            v6: IntervalSet::empty(),
        }
    }

    /// Every IPv4 address and no IPv6 address.
    pub fn all_v4() -> Self {
        Self {
            v4: IntervalSet::full(),
            v6: IntervalSet::empty(),
        }
    }

    /// Every IPv6 address and no IPv4 address.
    pub fn all_v6() -> Self {
        Self {
            v4: IntervalSet::empty(),
            v6: IntervalSet::full(),
        }
    }

    /// An IPv4 prefix such as 10.0.0.0/8 (host bits are ignored, as the kernel does).
    pub fn v4_prefix(addr: Ipv4Addr, len: u8) -> Self {
        let a = u32::from(addr);
        let len = len.min(32);
        let mask: u32 = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        Self {
            v4: IntervalSet::range(a & mask, (a & mask) | !mask),
            v6: IntervalSet::empty(),
        }
    }

    /// An IPv6 prefix.
    pub fn v6_prefix(addr: Ipv6Addr, len: u8) -> Self {
        let a = u128::from(addr);
        let len = len.min(128);
        let mask: u128 = if len == 0 {
            0
        } else {
            u128::MAX << (128 - len)
        };
        Self {
            v4: IntervalSet::empty(),
            v6: IntervalSet::range(a & mask, (a & mask) | !mask),
        }
    }

    /// Union.
    pub fn union(&self, other: &Self) -> Self {
        Self {
            v4: self.v4.union(&other.v4),
            v6: self.v6.union(&other.v6),
        }
    }

    /// Intersection.
    pub fn intersect(&self, other: &Self) -> Self {
        Self {
            v4: self.v4.intersect(&other.v4),
            v6: self.v6.intersect(&other.v6),
        }
    }

    /// Complement within both families (`! -s X` in an inet context).
    pub fn complement(&self) -> Self {
        Self {
            v4: self.v4.complement(),
            v6: self.v6.complement(),
        }
    }

    /// Whether no address is in the set.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether the address is in the set.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        match ip {
            std::net::IpAddr::V4(a) => self.v4.contains(u32::from(a)),
            std::net::IpAddr::V6(a) => self.v6.contains(u128::from(a)),
        }
    }
}

/// A match the model cannot express exactly (a mark, a rate limit, an unknown
/// extension). The rule may or may not match: analyses follow both branches
/// (it matches and its action applies; it does not and the next rule is
/// tried), so a packet can have several possible outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Opaque {
    /// What the source said, for the report (e.g. `-m recent --rcheck`).
    pub text: String,
}

/// A rule's match: the conjunction of one set per header field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Match {
    /// Source addresses.
    pub src: AddrSet,
    /// Destination addresses.
    pub dst: AddrSet,
    /// IP protocol numbers (0..=255).
    pub protocol: IntervalSet<u8>,
    /// Source ports. Packets of protocols without ports carry port 0.
    pub sport: IntervalSet<u16>,
    /// Destination ports.
    pub dport: IntervalSet<u16>,
    /// Input interface.
    pub iif: IfaceSet,
    /// Output interface.
    pub oif: IfaceSet,
    /// Conntrack states.
    pub ct_state: CtStates,
    /// Tests on the packet and connection marks, all of which must hold
    /// (empty: any mark).
    pub marks: Vec<MarkTest>,
    /// The rarely tested fields (TCP flags, ICMP type/code, length, DS
    /// field, packet type, source MAC); `None`: any value of each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra: Extra,
    /// The connection's address translations (`--ctstate SNAT/DNAT`,
    /// `--ctstatus`, nft `ct status`); [`CtNat::ALL`]: no test.
    pub ct_nat: CtNat,
    /// A test on the connection's original tuple (`--ctorig*`, nft `ct
    /// original ...`); `None`: no test.
    pub ct_orig: Option<Box<OrigTuple>>,
    /// Routing types of the source address (`-m addrtype --src-type`,
    /// nft `fib saddr type`); [`AddrTypes::ALL`]: no test.
    pub src_type: AddrTypes,
    /// Routing types of the destination address (`--dst-type`, nft `fib
    /// daddr type`), after any destination translation so far.
    pub dst_type: AddrTypes,
    /// Address-type tests limited to the packet's input or output
    /// interface (`--limit-iface-in/out`, nft `fib daddr . iif type`);
    /// `None`: no such test.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iface_types: Option<Box<IfaceTypes>>,
    /// Matches that could not be modelled; non-empty means "may match".
    pub opaque: Vec<Opaque>,
}

impl Default for Match {
    fn default() -> Self {
        Self::any()
    }
}

impl Match {
    /// The match that every packet satisfies.
    pub fn any() -> Self {
        Self {
            src: AddrSet::any(),
            dst: AddrSet::any(),
            protocol: IntervalSet::full(),
            sport: IntervalSet::full(),
            dport: IntervalSet::full(),
            iif: IfaceSet::any(),
            oif: IfaceSet::any(),
            ct_state: CtStates::ALL,
            marks: Vec::new(),
            extra: None,
            ct_nat: CtNat::ALL,
            ct_orig: None,
            src_type: AddrTypes::ALL,
            dst_type: AddrTypes::ALL,
            iface_types: None,
            opaque: Vec::new(),
        }
    }

    /// The rare fields for narrowing: created as "every value" when the
    /// match had none. Call [`Match::normalize_extra`] when done.
    pub fn extra_mut(&mut self) -> &mut ExtraFields {
        self.extra
            .get_or_insert_with(|| Box::new(ExtraFields::full()))
    }

    /// Put the rare fields back in their one form of "every value" (`None`).
    pub fn normalize_extra(&mut self) {
        self.extra = fields::normalize(self.extra.take());
    }

    /// Whether the match tests a connection's translations, its original
    /// tuple or an address type ([`Match::ct_nat`], [`Match::ct_orig`],
    /// [`Match::src_type`], [`Match::dst_type`], [`Match::iface_types`]):
    /// fields a packet header alone does not decide
    /// ([`Match::matches_header`] ignores them).
    pub fn has_nat_fields(&self) -> bool {
        self.ct_nat.is_test()
            || self.ct_orig.is_some()
            || self.src_type.is_test()
            || self.dst_type.is_test()
            || self.iface_types.is_some()
    }

    /// The interface-limited type tests, created as "no test" when the
    /// match had none (see [`Match::iface_types`]).
    pub fn iface_types_mut(&mut self) -> &mut IfaceTypes {
        self.iface_types
            .get_or_insert_with(|| Box::new(IfaceTypes::any()))
    }

    /// Whether the modelled fields can match no packet at all (ignores opaque parts).
    pub fn is_empty(&self) -> bool {
        (self.src.v4.is_empty() || self.dst.v4.is_empty())
            && (self.src.v6.is_empty() || self.dst.v6.is_empty())
            || self.protocol.is_empty()
            || self.sport.is_empty()
            || self.dport.is_empty()
            || self.iif.is_empty()
            || self.oif.is_empty()
            || self.ct_state.0 == 0
            || fields::is_empty(&self.extra)
            || self.ct_nat.0 & CtNat::ALL.0 == 0
            || self.ct_orig.as_ref().is_some_and(|o| o.is_empty())
            || self.src_type.0 & AddrTypes::ALL.0 == 0
            || self.dst_type.0 & AddrTypes::ALL.0 == 0
            || self.iface_types.as_ref().is_some_and(|t| t.is_empty())
    }

    /// Whether marks `(mark, ct)` pass every mark test.
    pub fn matches_marks(&self, mark: u32, ct: u32) -> bool {
        self.marks.iter().all(|t| t.holds(mark, ct))
    }

    /// Whether the packet, as it enters the ruleset (packet and connection
    /// mark 0), satisfies every modelled field. Opaque parts are ignored
    /// here; callers check [`Match::opaque`] to know the answer is uncertain.
    pub fn matches_fields(&self, p: &Packet) -> bool {
        self.matches_marked(p, 0, 0)
    }

    /// [`Match::matches_fields`] for a packet whose marks are now `(mark, ct)`.
    pub fn matches_marked(&self, p: &Packet, mark: u32, ct: u32) -> bool {
        self.matches_header(p) && self.matches_marks(mark, ct)
    }

    /// Whether the packet satisfies every modelled field except the marks
    /// and the fields [`Match::has_nat_fields`] names (callers that can
    /// decide those check them separately; the others read a rule with them
    /// as one that may or may not match).
    pub fn matches_header(&self, p: &Packet) -> bool {
        self.src.contains(p.src)
            && self.dst.contains(p.dst)
            && self.protocol.contains(p.protocol)
            && self.sport.contains(p.sport)
            && self.dport.contains(p.dport)
            && self.iif.matches(p.iif.as_deref())
            && self.oif.matches(p.oif.as_deref())
            && self.ct_state.contains(p.ct_state)
            && self.extra.as_ref().is_none_or(|x| x.admits(p))
    }

    /// Whether [`Match::matches_header`] is certain for this packet: the
    /// packet gives every rare field the match restricts (a field it leaves
    /// unknown may hold a value that passes and one that fails).
    pub fn decided_for(&self, p: &Packet) -> bool {
        self.extra.as_ref().is_none_or(|x| x.decided_for(p))
    }
}

/// One rule: a match, an action, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// What the rule matches.
    #[serde(rename = "match")]
    pub matches: Match,
    /// What it does when it matches.
    pub action: Action,
    /// Where it came from (several model rules may share one source rule).
    pub origin: RuleRef,
    /// The rule's comment (`-m comment`, nft comment, NSX display name).
    pub comment: Option<String>,
}

/// Attachment of a base chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseChain {
    /// The hook.
    pub hook: Hook,
    /// Lower runs first (for a nat chain: among the hook's nat chains; see
    /// [`BaseChain::runs_at`]).
    pub priority: i32,
    /// Verdict for packets no rule decided.
    pub policy: Policy,
    /// A nat chain (nft `type nat`, the iptables `nat` table). The kernel
    /// runs a hook's nat chains together at [`Hook::nat_priority`], for a
    /// connection's first packet only, and only until one of them sets up
    /// the connection's translation for the hook: a rule whose action is
    /// [`Action::Nat`] (any translation, even one to the address and port
    /// the packet already has, which changes nothing and sets no
    /// [`CtNat`] bit). The hook's later nat chains are then skipped for
    /// that packet: they neither match nor decide nor rewrite marks.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub nat: bool,
}

impl BaseChain {
    /// The priority at which the chain runs among all base chains of its
    /// hook: its own, or for a nat chain the hook's
    /// [`Hook::nat_priority`].
    pub fn runs_at(&self) -> i32 {
        if self.nat {
            self.hook.nat_priority().unwrap_or(self.priority)
        } else {
            self.priority
        }
    }
}

/// A chain: ordered rules, and for base chains their attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chain {
    /// A name unique in the ruleset (for nft: `family table chain`).
    pub name: String,
    /// Set for base chains.
    pub base: Option<BaseChain>,
    /// Rules in evaluation order.
    pub rules: Vec<Rule>,
}

impl Chain {
    /// The prefix of the chains parsers synthesize for a target the model
    /// cannot follow (`?DNAT`, `?REDIRECT`, nft `?dnat`, ...).
    pub const UNKNOWN_TARGET_PREFIX: char = '?';

    /// Whether this chain stands for a target the model cannot follow: a
    /// non-base chain named `?TARGET`, whose one rule matches anything. Every
    /// packet that reaches it has an unknown fate (the target may rewrite it,
    /// queue it, or decide it): this is not a rule that may or may not match,
    /// so analyses never read it as two branches.
    pub fn is_unknown_target(&self) -> bool {
        self.base.is_none() && self.name.starts_with(Self::UNKNOWN_TARGET_PREFIX)
    }
}

/// A whole ruleset in the normalized model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ruleset {
    /// The source format.
    pub format: SourceFormat,
    /// The file it was read from, as the user named it.
    pub source: String,
    /// All chains; [`ChainId`] indexes this vector.
    pub chains: Vec<Chain>,
    /// Constructs that were skipped or approximated, with their location, so
    /// reports can say why a result is unknown.
    pub notes: Vec<ParseNote>,
    /// Where the ruleset itself says it is enforced, when that is narrower
    /// than everywhere: an NSX DFW whose every rule is applied to (`scope`)
    /// groups the export resolves runs only at those VMs' vNICs, so a packet
    /// with neither end in them meets none of its rules. `None` means every
    /// packet may meet the rules: iptables, nftables, an NSX export with a
    /// rule at scope ANY, and one with a scope it cannot resolve (a dynamic
    /// or missing group), which could be enforced anywhere.
    pub enforced_at: Option<EnforcedAt>,
}

/// The addresses a ruleset is enforced at (see [`Ruleset::enforced_at`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnforcedAt {
    /// Where it runs, for people: e.g. `vNICs in groups management, workload`.
    pub what: String,
    /// The addresses whose packets (as source or destination) meet the rules.
    pub addrs: AddrSet,
}

/// Something the parser could not model exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParseNote {
    /// Where (`file:line` or a JSON pointer).
    pub location: String,
    /// What and why.
    pub message: String,
}

impl Ruleset {
    /// The base chains on `hook`, in evaluation order: by the priority
    /// each runs at ([`BaseChain::runs_at`]), then order of appearance. The
    /// hook's nat chains run together (at the place of the first of them
    /// to appear when another chain has the same priority), ordered among
    /// themselves by their own priority, then order of appearance.
    pub fn base_chains(&self, hook: Hook) -> Vec<ChainId> {
        let on_hook = || {
            self.chains
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.base.as_ref().filter(|b| b.hook == hook).map(|b| (i, b)))
        };
        let first_nat = on_hook().find(|(_, b)| b.nat).map_or(0, |(i, _)| i);
        let mut ids: Vec<(i32, usize, i32, usize)> = on_hook()
            .map(|(i, b)| {
                let place = if b.nat { first_nat } else { i };
                (b.runs_at(), place, b.priority, i)
            })
            .collect();
        ids.sort();
        ids.into_iter().map(|(.., i)| ChainId(i)).collect()
    }

    /// The base chains a packet meets on the traversal `hook` names (see
    /// [`Hook::path`]): hook by hook in kernel order, each hook's chains by
    /// priority. Every base chain of `hook` itself is kept (as
    /// [`Ruleset::base_chains`] gives them); on the other hooks of the path,
    /// a base chain without rules whose policy accepts changes nothing and is
    /// left out, so a filter-only ruleset's path is exactly its hook's chains.
    pub fn path_chains(&self, hook: Hook) -> Vec<ChainId> {
        let mut out = Vec::new();
        for &h in hook.path() {
            for c in self.base_chains(h) {
                let chain = self.chain(c);
                let trivial = chain.rules.is_empty()
                    && chain
                        .base
                        .as_ref()
                        .is_none_or(|b| b.policy == Policy::Accept);
                if h == hook || !trivial {
                    out.push(c);
                }
            }
        }
        out
    }

    /// The ruleset for a host where something before it (tc, eBPF) may
    /// already have marked packets (`--initial-mark any`): a packet's marks
    /// are then unknown, so every mark test becomes an opaque match (the
    /// rule may or may not match) and every mark rewrite a rule without a
    /// verdict (its effect is read only by those opaque tests).
    pub fn with_initial_mark_any(mut self) -> Self {
        for c in &mut self.chains {
            for r in &mut c.rules {
                for t in std::mem::take(&mut r.matches.marks) {
                    r.matches.opaque.push(Opaque {
                        text: format!(
                            "{} {}{:#x}/{:#x} (--initial-mark any)",
                            match t.field {
                                MarkField::Packet => "mark",
                                MarkField::Conn => "ct mark",
                            },
                            if t.invert { "!= " } else { "" },
                            t.value,
                            t.mask
                        ),
                    });
                }
                if matches!(r.action, Action::Mark(_)) {
                    r.action = Action::Continue;
                }
            }
        }
        self
    }

    /// The chain with this id.
    pub fn chain(&self, id: ChainId) -> &Chain {
        &self.chains[id.0]
    }

    /// Find a chain by name.
    pub fn chain_by_name(&self, name: &str) -> Option<ChainId> {
        self.chains.iter().position(|c| c.name == name).map(ChainId)
    }
}
