//! One packet through a ruleset: a direct first-match walk.
//!
//! This is deliberately independent of the set engine (it never builds a
//! region), so property tests can compare the two. Long chains get a
//! destination index so a walk only looks at rules that can match the
//! packet's destination: that keeps batch tracing fast on 100k-rule rulesets.
//!
//! A rule whose match the model cannot evaluate (an opaque match) may or may
//! not match: the packet goes both ways, and its *outcomes* are those of
//! every branch. The first walk takes the branch in which no such rule
//! matches; only when it met one is the packet walked again, every branch
//! at once. Branches differ only in their marks (a `MARK` rule that may or
//! may not match), so that walk keeps per chain the set of outcomes reached
//! so far and the set of marks with which some branch goes on, and costs
//! about one first-match walk per distinct marking.
//!
//! Packets enter with packet mark 0 and, for a new connection, connection
//! mark 0; a later packet of a connection may carry any connection mark the
//! ruleset can save (each is a branch).

use crate::space::{MarkSpace, Stage};
use ringfence_model::{
    Action, AddrSide, AddrTypes, ChainId, CtStates, Hook, IfaceSide, LocalAddrs, NatKind,
    NatRewrite, Packet, Policy, RuleRef, Ruleset, Verdict,
};
use serde::Serialize;
use std::net::IpAddr;
use std::ops::ControlFlow;

pub mod batch;
mod classify;
mod effect;
pub mod reference;

/// Chains longer than this get rule tables ([`classify::ChainIndex`]).
const INDEX_THRESHOLD: usize = 8;
/// Deeper call stacks are treated as a loop (the kernel refuses loops).
const MAX_DEPTH: usize = 128;
/// At most this many shared chains' unchanged returns are remembered per
/// base chain walk (`Walk::noop`, searched in order).
const NOOP_CAP: usize = 16;
/// A translation to a range of more addresses × ports than this is an
/// `unknown` outcome (named by its rule) instead of one outcome per choice.
pub const MAX_NAT_CHOICES: u128 = 16;

/// What one branch of a packet's walk ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Accepted by every base chain of the path.
    Accept,
    /// Dropped.
    Drop,
    /// Rejected.
    Reject,
    /// Reached a target the model cannot follow (a queue, an unknown
    /// extension, a jump loop, a translation to too many choices, REDIRECT
    /// without the host's addresses, a source translation that a later base
    /// chain reads): anything may happen.
    Unknown,
}

impl Decision {
    /// The name used in JSON and text output.
    pub fn name(self) -> &'static str {
        match self {
            Decision::Accept => "accept",
            Decision::Drop => "drop",
            Decision::Reject => "reject",
            Decision::Unknown => "unknown",
        }
    }
}

impl From<Verdict> for Decision {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Accept => Decision::Accept,
            Verdict::Drop => Decision::Drop,
            Verdict::Reject => Decision::Reject,
        }
    }
}

/// A packet's verdict over all its outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Overall {
    /// Every outcome accepts.
    Accept,
    /// Every outcome drops.
    Drop,
    /// Every outcome rejects.
    Reject,
    /// Outcomes differ: a rule the model cannot evaluate decides.
    Depends,
    /// Every outcome is a target the model cannot follow.
    Unknown,
}

impl Overall {
    /// The name used in JSON and text output.
    pub fn name(self) -> &'static str {
        match self {
            Overall::Accept => "accept",
            Overall::Drop => "drop",
            Overall::Reject => "reject",
            Overall::Depends => "depends",
            Overall::Unknown => "unknown",
        }
    }

    /// The overall verdict of a packet's outcomes.
    pub fn of(outcomes: &[RawOutcome]) -> Self {
        let Some(first) = outcomes.first() else {
            return Overall::Unknown;
        };
        if outcomes.iter().any(|o| o.verdict != first.verdict) {
            return Overall::Depends;
        }
        match first.verdict {
            Decision::Accept => Overall::Accept,
            Decision::Drop => Overall::Drop,
            Decision::Reject => Overall::Reject,
            Decision::Unknown => Overall::Unknown,
        }
    }
}

/// One possible outcome of a packet: the end of one or more branches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceOutcome {
    /// What the branch ends in.
    pub verdict: Decision,
    /// The deciding rule or chain policy (for `unknown`: the rule that
    /// jumped to the target the model cannot follow); `None` when no base
    /// chain is on the path.
    pub rule: Option<RuleRef>,
    /// The path the branch took, named by its filter hook (input, forward
    /// or output; see [`Hook::path`]).
    pub path: Hook,
    /// The rewritten destination (`IP:PORT`, `[IP]:PORT` for IPv6) when a
    /// DNAT or REDIRECT changed it on this branch.
    pub dnat: Option<String>,
    /// The rewritten source (`IP[:PORT]` or `masquerade`) when a SNAT or
    /// MASQUERADE matched on this branch.
    pub snat: Option<String>,
}

/// The source translation a branch took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnatTo {
    /// MASQUERADE: the address of the interface the packet leaves by.
    Masquerade,
    /// SNAT to this address (and port, when the rule gives one and the
    /// protocol has ports).
    To(IpAddr, Option<u16>),
}

impl std::fmt::Display for SnatTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            SnatTo::Masquerade => f.write_str("masquerade"),
            SnatTo::To(a, None) => write!(f, "{a}"),
            SnatTo::To(a, Some(p)) => write!(f, "{}", std::net::SocketAddr::new(a, p)),
        }
    }
}

/// The translations one branch of a packet took: what its outcome reports
/// and what later stages see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Xlat {
    /// The rewritten destination and port (DNAT, REDIRECT), when it changed.
    pub dnat: Option<(IpAddr, u16)>,
    /// The source translation (SNAT, MASQUERADE).
    pub snat: Option<SnatTo>,
    /// The rule that translated the source (a later base chain that reads
    /// the source makes the branch unknown, named by it).
    snat_rule: Option<(u32, u32)>,
    /// The rule that translated the destination (named when the new
    /// destination routes the branch somewhere the packet line cannot say).
    dnat_rule: Option<(u32, u32)>,
    /// The destination and port the packet entered with, when `dnat` is set
    /// (conntrack's original tuple).
    odst: Option<(IpAddr, u16)>,
    /// The source (and source port, when the rule gave one) a source
    /// translation gave the packet, when the walk carries it: later chains
    /// of the hook see it (SNAT to one address, MASQUERADE with one host
    /// address of the family).
    src_now: Option<(IpAddr, Option<u16>)>,
    /// The hook whose translation a nat rule of this branch set up (any
    /// translation, even one that changed nothing): the hook's later nat
    /// chains are skipped ([`ringfence_model::BaseChain::nat`]).
    nat_done: Option<Hook>,
}

impl Xlat {
    /// The rewritten destination as outputs show it: `IP:PORT`, or
    /// `[IP]:PORT` for IPv6.
    pub fn dnat_text(&self) -> Option<String> {
        self.dnat
            .map(|(a, p)| std::net::SocketAddr::new(a, p).to_string())
    }

    /// The source translation as outputs show it: `IP[:PORT]` or `masquerade`.
    pub fn snat_text(&self) -> Option<String> {
        self.snat.map(|s| s.to_string())
    }
}

/// An outcome as keys: what [`Tracer::trace_with`] leaves in its scratch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOutcome {
    /// What the branch ends in.
    pub verdict: Decision,
    /// The deciding `(chain, rule)` key (rule `u32::MAX` for a chain
    /// policy), as [`Tracer::rule_ref`] reads it.
    pub rule: Option<(u32, u32)>,
    /// The path the branch took (after prerouting, routing by the rewritten
    /// destination when the host's addresses are known).
    pub path: Hook,
    /// The translations the branch took.
    pub xlat: Xlat,
}

/// The fate of one packet on one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceResult {
    /// Accept, drop or reject in the branch where no rule the model cannot
    /// evaluate matches and targets it cannot follow are passed over (the
    /// one verdict of a packet with one outcome).
    pub verdict: Verdict,
    /// The rules that branch matched, in order (jumps, non-terminal rules,
    /// and the rule or chain policy that decided).
    pub path: Vec<RuleRef>,
    /// True when the packet's outcomes do not all agree on one verdict, or
    /// one is `unknown`: `verdict` may not be what happens.
    pub uncertain: bool,
    /// Every possible outcome, once each (one unless a rule the model
    /// cannot evaluate matched on every modelled field, or the packet
    /// reached a target the model cannot follow).
    pub outcomes: Vec<TraceOutcome>,
    /// The verdict over all outcomes.
    pub overall: Overall,
    /// The rule every outcome names, or, when they name different rules,
    /// the first rule on the way that the model cannot evaluate (where the
    /// branches part).
    pub rule: Option<RuleRef>,
}

/// A branch of the walk still going: its marks and translations, its path,
/// the index of its next base chain on that path, the rule that let it get
/// there when the chains left may decide nothing (see `Tracer::branches`),
/// and whether it is a packet the host sent to itself, back from loopback on
/// the input path (prerouting and input, arriving on `lo`).
type Live = (St, Hook, usize, Option<(u32, u32)>, bool);

/// What one step of a looped branch gives: a branch going on, or an
/// outcome (verdict, deciding rule, state).
type LoopStep = Result<Live, (Decision, Option<(u32, u32)>, St)>;

/// What base chain `base` (policy `policy`) ending with `flow` means for
/// the first walk: go on to the next chain, or stop there, with the verdict
/// it decided (`None`: an accept after a translation, which the branch walk
/// judges). A chain that falls through to its policy adds the policy to the
/// walk's path.
fn after_chain(
    w: &mut Walk,
    flow: Flow,
    base: ChainId,
    policy: Option<Policy>,
) -> ControlFlow<Option<Verdict>> {
    match flow {
        Flow::Decided(Verdict::Accept) if w.nat_stop => ControlFlow::Break(None),
        Flow::Decided(Verdict::Accept) => ControlFlow::Continue(()),
        Flow::Decided(v) => ControlFlow::Break(Some(v)),
        Flow::Return => {
            w.path.push((base.0 as u32, u32::MAX));
            if policy == Some(Policy::Drop) {
                ControlFlow::Break(Some(Verdict::Drop))
            } else {
                ControlFlow::Continue(())
            }
        }
    }
}

/// A ruleset prepared for fast repeated tracing.
pub struct Tracer<'a> {
    rs: &'a Ruleset,
    /// Per chain: the tables that find the rules a packet can match
    /// (`None`: short chains, and every chain of the reference walker).
    index: Vec<Option<classify::ChainIndex>>,
    /// Whether chains get tables (false: [`reference::tracer`]).
    indexed: bool,
    /// Per chain: its tables index some jumps cut to their target's effect
    /// ([`effect`]), so they leave out jumps that change nothing; walks
    /// that record the path (which names every jump taken) read every rule
    /// of such a chain instead.
    cut: Vec<bool>,
    /// How many jumps the tables index cut (see [`Tracer::cut_jumps`]).
    cut_jumps: usize,
    /// Per chain (but targets the model cannot follow), the pieces of
    /// the packets it may act on ([`effect`]); empty without jump cuts.
    acts_on: Vec<effect::ChainPieces>,
    /// No call loop and no call stack deeper than the walk follows: a
    /// chain's walk depends only on the packet, the marks and the stage
    /// (not on how deep it is entered), so a shared chain that returned
    /// unchanged need not be walked again for the same packet and marks.
    bounded: bool,
    /// Per chain: more than one rule jumps or goes to it, and it is long
    /// enough to have tables (the chains whose unchanged returns are
    /// remembered per packet, see `Walk::noop`).
    shared: Vec<bool>,
    /// Per chain, per rule: a compact copy of the match (see [`Quick`]).
    quick: Vec<Vec<Quick>>,
    bases: Vec<(Hook, Vec<ChainId>)>,
    /// Per traversal (in the order of `bases`): the stage of each base
    /// chain, which decides what its rules see of the packet.
    stages: Vec<Vec<Stage>>,
    /// What each stage of `stages` hides of a packet.
    hides: Vec<(Stage, Hides)>,
    /// Per chain: it stands for a target the model cannot follow.
    unknown: Vec<bool>,
    /// The values marks can take, and whether they are exact fields.
    marks: MarkSpace,
    /// The host's own addresses (`--local`), when known.
    local: Option<LocalAddrs>,
    /// Some rule tests the output interface: a branch a rewrite sends on
    /// (input turned forward) needs the packet line's `oif` to be decided.
    tests_oif: bool,
    /// Per chain: some rule it reaches (through jumps and gotos) reads the
    /// source address or port. A branch whose source was translated is
    /// unknown at a base chain that does, as in the engine.
    reads_src: Vec<bool>,
    /// Per chain: some rule it reaches tests the original source or source
    /// port (which a carried source translation does not show).
    reads_orig_src: Vec<bool>,
}

/// Whether some rule of chain `c` or a chain it reaches reads the source
/// address or port: restricts the source of a family it admits (neither
/// none nor every address of it), the source port, the source's address
/// type, or the original source.
fn reads_source(rs: &Ruleset, c: usize, seen: &mut Vec<bool>) -> bool {
    if seen[c] {
        return false;
    }
    seen[c] = true;
    rs.chains[c].rules.iter().any(|r| {
        let m = &r.matches;
        if m.is_empty() {
            return false;
        }
        let v4 = !m.src.v4.is_empty() && !m.src.v4.is_full();
        let v6 = !m.src.v6.is_empty() && !m.src.v6.is_full();
        v4 || v6
            || !m.sport.is_full()
            || m.src_type.is_test()
            || m.iface_types
                .as_deref()
                .is_some_and(|l| l.src_in.is_test() || l.src_out.is_test())
            || m.ct_orig
                .as_ref()
                .is_some_and(|o| o.src != ringfence_model::AddrSet::any() || !o.sport.is_full())
            || match r.action {
                Action::Jump { target } | Action::Goto { target } => {
                    reads_source(rs, target.0, seen)
                }
                _ => false,
            }
    })
}

/// What a stage hides of a packet ([`Stage::packet`]), read once per stage
/// from its effect on a probe, so the walk can build the packet a stage
/// sees in a reused buffer instead of cloning it (and its interface names).
#[derive(Debug, Clone, Copy)]
struct Hides {
    iif: bool,
    oif: bool,
    /// Before conntrack: the state reads as INVALID.
    ct: bool,
}

impl Hides {
    /// Nothing hidden.
    const NONE: Self = Self {
        iif: false,
        oif: false,
        ct: false,
    };

    fn of(stage: Stage) -> Self {
        let mut probe = Packet::new_connection(
            IpAddr::from([0, 0, 0, 0]),
            IpAddr::from([0, 0, 0, 0]),
            6,
            1,
            1,
        );
        probe.iif = Some("i".into());
        probe.oif = Some("o".into());
        let seen = stage.packet(&probe);
        Self {
            iif: seen.iif.is_none(),
            oif: seen.oif.is_none(),
            ct: seen.ct_state != probe.ct_state,
        }
    }
}

/// The packet `p` with destination translation `dnat` as a stage that hides
/// `h` shows it: `p` itself when that changes nothing, else a copy in `buf`
/// (whose interface name buffers are reused).
fn view<'b>(
    p: &'b Packet,
    dnat: Option<(IpAddr, u16)>,
    h: Hides,
    buf: &'b mut Packet,
) -> &'b Packet {
    let hide_iif = h.iif && p.iif.is_some();
    let hide_oif = h.oif && p.oif.is_some();
    let hide_ct = h.ct && p.ct_state != CtStates::INVALID;
    if dnat.is_none() && !hide_iif && !hide_oif && !hide_ct {
        return p;
    }
    // Every field by name: a field added to `Packet` must be copied here.
    let Packet {
        src,
        dst,
        protocol,
        sport,
        dport,
        iif,
        oif,
        ct_state,
        tcp_flags,
        icmp_type,
        icmp_code,
        length,
        tos,
        pkttype,
        mac_src,
    } = p;
    let copy_name = |to: &mut Option<String>, from: &Option<String>, hide: bool| match from {
        Some(n) if !hide => match to {
            Some(t) => {
                t.clear();
                t.push_str(n);
            }
            None => *to = Some(n.clone()),
        },
        _ => *to = None,
    };
    copy_name(&mut buf.iif, iif, hide_iif);
    copy_name(&mut buf.oif, oif, hide_oif);
    buf.src = *src;
    (buf.dst, buf.dport) = dnat.unwrap_or((*dst, *dport));
    buf.protocol = *protocol;
    buf.sport = *sport;
    buf.ct_state = if hide_ct {
        CtStates::INVALID
    } else {
        *ct_state
    };
    buf.tcp_flags = *tcp_flags;
    buf.icmp_type = *icmp_type;
    buf.icmp_code = *icmp_code;
    buf.length = *length;
    buf.tos = *tos;
    buf.pkttype = *pkttype;
    buf.mac_src = *mac_src;
    buf
}

/// Packet mark, connection mark and translations of one branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct St(u32, u32, Xlat);

/// A rule's IPv4 match in 32 bytes, so the walk over candidate rules reads a
/// dense array instead of the model's rules. Each field holds the hull of
/// the rule's set (`(1, 0)` when the set is empty), or, for the addresses
/// and ports, the one gap of a set that is everything but one range (a
/// negated `! -d`, `! --dport`: its `NEG_*` flag set), so "packet outside a
/// hull" (inside the gap) proves the rule does not match. When `EXACT` is
/// set every hull or gap describes the set exactly and the interfaces are
/// unrestricted, so "inside every hull" proves it matches; otherwise the
/// walk asks the model rule.
#[derive(Debug, Clone, Copy)]
struct Quick {
    src: (u32, u32),
    dst: (u32, u32),
    sport: (u16, u16),
    dport: (u16, u16),
    proto: (u8, u8),
    ct: u8,
    flags: u8,
    /// The first rule of the chain with the same origin: two rules come from
    /// one source rule exactly when their groups are equal.
    group: u32,
}

/// Whether an address type test is decided for every address once the
/// host's addresses are known ([`LocalAddrs::types_of`]): a host address is
/// exactly `LOCAL`, a multicast one `MULTICAST`, 255.255.255.255
/// `BROADCAST`, and any other address may be any type but those two, so the
/// test must take all of those or none of them.
fn types_decided(t: AddrTypes) -> bool {
    let other = AddrTypes::ALL.0 & !(AddrTypes::LOCAL | AddrTypes::MULTICAST);
    !t.is_test() || t.0 & other == other || t.0 & other == 0 && t.0 & AddrTypes::BROADCAST == 0
}

/// Whether the rule's interface-limited address-type tests are decided
/// for every packet: the host's addresses are known, and each test takes
/// or leaves whole every class of addresses the types tell apart (`LOCAL`
/// on its interface, not `LOCAL` on another, multicast, broadcast, any
/// other address, and, when some host address has no known interface,
/// `LOCAL` or not).
fn iface_types_decided(m: &ringfence_model::Match, local: Option<&LocalAddrs>) -> bool {
    let Some(lim) = m.iface_types.as_deref() else {
        return true;
    };
    let Some(local) = local else {
        return false;
    };
    let not_local = AddrTypes::ALL.0 & !(AddrTypes::LOCAL | AddrTypes::MULTICAST);
    let unknown = local.unplaced();
    let unknown = !(unknown.v4.is_empty() && unknown.v6.is_empty());
    let mut classes = vec![
        AddrTypes::LOCAL,
        not_local,
        AddrTypes::MULTICAST,
        AddrTypes::BROADCAST,
    ];
    if unknown {
        classes.push(AddrTypes::LOCAL | not_local);
    }
    lim.tests()
        .all(|(t, _, _)| classes.iter().all(|&c| c & !t.0 == 0 || c & t.0 == 0))
}

/// Whether a connection's first packet passes the rule's tests on the
/// connection: its original tuple is the packet as it entered (`entry`:
/// its destination and port before a DNAT of this branch; the source is
/// never rewritten before a rule reads it, see `Tracer::branches`), and its
/// destination translation status is whether this branch took one (see
/// `nat_decided`). For other packets the tests are the rule's may-match
/// part and pass here.
fn conn_holds(m: &ringfence_model::Match, p: &Packet, entry: Option<(IpAddr, u16)>) -> bool {
    if p.ct_state != CtStates::NEW {
        return true;
    }
    let (odst, odport) = entry.unwrap_or((p.dst, p.dport));
    m.ct_orig
        .as_ref()
        .is_none_or(|o| o.holds(p.src, odst, p.sport, odport))
        && (!m.ct_nat.is_test()
            || !nat_decided(m.ct_nat)
            || m.ct_nat.contains(false, entry.is_some()))
}

/// Whether a translation test is decided for a connection's first packet
/// on every branch this walk follows: a branch knows whether it took a
/// destination translation, and a rule that reads the status may or may not
/// see a source translation (a later chain after one makes the branch
/// unknown), so for either destination status the test must hold with and
/// without a source translation or with neither.
fn nat_decided(t: ringfence_model::CtNat) -> bool {
    [false, true]
        .iter()
        .all(|&d| t.contains(false, d) == t.contains(true, d))
}

impl Quick {
    /// Hulls equal the sets and interfaces are unrestricted.
    const EXACT: u8 = 1;
    /// The rule has parts the model cannot evaluate.
    const OPAQUE: u8 = 2;
    /// The rule tests a rare field (TCP flags, ICMP type, length, ...),
    /// which a packet may leave unknown: then the rule may or may not match.
    const FIELDS: u8 = 4;
    /// The rule tests the connection's translations or original tuple:
    /// decided for a connection's first packet only (see `conn_holds`),
    /// two branches for the others.
    const CONN: u8 = 8;
    /// `src` is the gap of a negated set (the rule takes every other address).
    const NEG_SRC: u8 = 16;
    /// `dst` is the gap of a negated set.
    const NEG_DST: u8 = 32;
    /// `sport` is the gap of a negated set.
    const NEG_SPORT: u8 = 64;
    /// `dport` is the gap of a negated set.
    const NEG_DPORT: u8 = 128;

    fn of(
        m: &ringfence_model::Match,
        group: u32,
        marks_exact: bool,
        local: Option<&LocalAddrs>,
    ) -> Self {
        /// The hull of `s`, whether it is exact, and, for a set of every
        /// value but one range, that gap instead (exact, `negated`).
        fn hull<T: ringfence_model::interval::Bound>(
            s: &ringfence_model::IntervalSet<T>,
            none: (T, T),
        ) -> ((T, T), bool, bool) {
            match s.ranges() {
                [] => (none, true, false),
                [r] => (*r, true, false),
                &[(lo, a), (b, hi)] if lo == T::MIN && hi == T::MAX => match (a.succ(), b.pred()) {
                    (Some(g0), Some(g1)) => ((g0, g1), true, true),
                    _ => ((lo, hi), false, false),
                },
                [first, .., last] => ((first.0, last.1), false, false),
            }
        }
        let (src, e1, n1) = hull(&m.src.v4, (1, 0));
        let (dst, e2, n2) = hull(&m.dst.v4, (1, 0));
        let (sport, e3, n3) = hull(&m.sport, (1, 0));
        let (dport, e4, n4) = hull(&m.dport, (1, 0));
        // A negated protocol keeps its plain hull (rare; the model rule
        // decides).
        let (proto, e5) = match hull(&m.protocol, (1, 0)) {
            (_, _, true) => ((0, u8::MAX), false),
            (h, e, false) => (h, e),
        };
        let exact = e1
            && e2
            && e3
            && e4
            && e5
            && m.iif.is_any()
            && m.oif.is_any()
            && m.marks.is_empty()
            && m.extra.is_none()
            && !m.has_nat_fields();
        // Address type tests are decided when the host's addresses are
        // known and every test is decided for every address (see
        // `types_decided`); translation and original-tuple tests are not
        // decided by this walk yet.
        let types_ok = (!(m.src_type.is_test() || m.dst_type.is_test())
            || local.is_some() && types_decided(m.src_type) && types_decided(m.dst_type))
            && iface_types_decided(m, local);
        let conn = m.ct_orig.is_some() || m.ct_nat.is_test();
        let nat_open = m.has_nat_fields() && !(types_ok && (!conn || nat_decided(m.ct_nat)));
        Self {
            src,
            dst,
            sport,
            dport,
            proto,
            ct: m.ct_state.0,
            flags: if exact { Self::EXACT } else { 0 }
                | if m.opaque.is_empty() && !nat_open && (marks_exact || m.marks.is_empty()) {
                    0
                } else {
                    Self::OPAQUE
                }
                | if m.extra.is_some() { Self::FIELDS } else { 0 }
                | if conn { Self::CONN } else { 0 }
                | if n1 { Self::NEG_SRC } else { 0 }
                | if n2 { Self::NEG_DST } else { 0 }
                | if n3 { Self::NEG_SPORT } else { 0 }
                | if n4 { Self::NEG_DPORT } else { 0 },
            group,
        }
    }

    /// Whether an IPv4 packet (addresses as integers) is inside every hull
    /// and outside every gap.
    #[inline]
    fn admits(&self, src: u32, dst: u32, p: &Packet) -> bool {
        let f = self.flags;
        let within = |(lo, hi): (u32, u32), v: u32, neg: u8| (lo <= v && v <= hi) != (f & neg != 0);
        let within16 =
            |(lo, hi): (u16, u16), v: u16, neg: u8| (lo <= v && v <= hi) != (f & neg != 0);
        within(self.dst, dst, Self::NEG_DST)
            && within(self.src, src, Self::NEG_SRC)
            && self.proto.0 <= p.protocol
            && p.protocol <= self.proto.1
            && within16(self.dport, p.dport, Self::NEG_DPORT)
            && within16(self.sport, p.sport, Self::NEG_SPORT)
            && self.ct & p.ct_state != 0
    }
}

enum Flow {
    Decided(Verdict),
    Return,
}

/// What a chain does with a packet, over all branches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res {
    /// A decision, its rule, and for an accept the marks it goes on with.
    Out(Decision, Option<(u32, u32)>, St),
    /// Falls back to the caller with these marks.
    Return(St),
}

type ResSet = smallvec::SmallVec<[Res; 4]>;

impl Res {
    /// The outcome as base chain `base` (policy `policy`) ends it: a
    /// decision stays, a fall-through takes the chain's policy (named by
    /// the chain's policy key).
    fn in_base_chain(
        self,
        base: ChainId,
        policy: Option<Policy>,
    ) -> (Decision, Option<(u32, u32)>, St) {
        match self {
            Res::Out(d, k, st) => (d, k, st),
            Res::Return(st) => (
                if policy == Some(Policy::Drop) {
                    Decision::Drop
                } else {
                    Decision::Accept
                },
                Some((base.0 as u32, u32::MAX)),
                st,
            ),
        }
    }
}

/// Add `r` to a set of chain outcomes (kept in first-seen order) unless it
/// is there.
fn add(set: &mut (impl std::ops::Deref<Target = [Res]> + Extend<Res>), r: Res) {
    if !set.contains(&r) {
        set.extend(std::iter::once(r));
    }
}

#[derive(Default)]
struct Walk {
    path: Vec<(u32, u32)>,
    /// The first walk met a rule that may or may not match, a target the
    /// model cannot follow, or a call stack too deep.
    forked: bool,
    /// The first such rule.
    split: Option<(u32, u32)>,
    /// The first rule that may or may not match that the first walk
    /// passed over without forking: a jump whose target acts on nothing
    /// the packet carries (both branches are that walk). When the walk
    /// forks later, it is still where the branches part.
    passed: Option<(u32, u32)>,
    outcomes: Vec<RawOutcome>,
    /// The first walk's marks.
    st: St,
    /// The first walk's marks after each rewrite: (rule key, packet mark, connection mark).
    marks: Vec<((u32, u32), u32, u32)>,
    /// The stage of the base chain being walked (before conntrack, no
    /// connection mark test holds and no rewrite reading or writing the
    /// connection mark does anything).
    stage: Stage,
    /// The first walk met an address translation: it stops there (the
    /// branch walk follows the rewritten packet).
    nat_stop: bool,
    /// The path of the branch being walked (where a REDIRECT sends it).
    route: Option<Hook>,
    /// Spare outcome sets for the branch walk (one per chain call level),
    /// reused from packet to packet instead of returned by value.
    sets: Vec<Vec<Res>>,
    /// Spare lists of the states a called chain returns with.
    returns: Vec<Vec<St>>,
    /// The branch walk's list of branches, reused from packet to packet.
    live: Vec<Live>,
    /// Only the outcomes are wanted ([`Tracer::trace_outcomes`]): the first
    /// walk stops at the first rule that splits it, since the branch walk
    /// recomputes every outcome from the start anyway.
    outcomes_only: bool,
    /// The hook of the base chain being walked (whose translation a nat
    /// rule sets up).
    hook: Option<Hook>,
    /// Shared chains (several rules jump to them) that returned unchanged
    /// in the base chain being walked, with the marks and translations
    /// they were entered with: entered again with the same, they return
    /// unchanged again (the packet and stage are those of the base chain),
    /// so the walk passes over them. Emptied at every base chain; only
    /// for tracers whose calls are bounded (`Tracer::bounded`), and in the
    /// first walk only when it records no path.
    noop: Vec<(u32, St)>,
}

impl Walk {
    /// The first walk is done with: only outcomes are wanted and it met the
    /// rule where branches part (the branch walk starts over from there).
    #[inline]
    fn stopped(&self) -> bool {
        self.outcomes_only && self.split.is_some()
    }
}

/// Reusable buffers for [`Tracer::trace_with`], and the outcomes of the
/// last packet traced with them.
#[derive(Default)]
pub struct TraceScratch(Walk, Packet, Packet);

impl TraceScratch {
    /// Every possible outcome of the last packet, once each.
    pub fn outcomes(&self) -> &[RawOutcome] {
        &self.0.outcomes
    }

    /// The verdict over the last packet's outcomes.
    pub fn overall(&self) -> Overall {
        Overall::of(&self.0.outcomes)
    }

    /// The rule every outcome of the last packet names, or, when they
    /// differ, the first rule on its way that the model cannot evaluate.
    pub fn rule(&self) -> Option<(u32, u32)> {
        let o = &self.0.outcomes;
        match o.first() {
            Some(first) if o.iter().all(|x| x.rule == first.rule) => first.rule,
            _ => self.0.split,
        }
    }

    /// Whether the outcomes differ in verdict or one is unknown.
    pub fn uncertain(&self) -> bool {
        !matches!(
            self.overall(),
            Overall::Accept | Overall::Drop | Overall::Reject
        )
    }
}

impl<'a> Tracer<'a> {
    /// Build the per-chain indexes.
    pub fn new(rs: &'a Ruleset) -> Self {
        Self::for_host(rs, None)
    }

    /// [`Tracer::new`] with the host's own addresses when they are known,
    /// built once: `Tracer::new(rs).with_local(l)` builds the indexes and
    /// the jump cuts twice, which on a large ruleset is most of the start-up.
    pub fn for_host(rs: &'a Ruleset, local: Option<LocalAddrs>) -> Self {
        Self::build_with(rs, Self::marks_of(rs), local, true, true)
    }

    /// [`Tracer::for_host`] for tracing one packet with its path: the
    /// path names every jump, so that walk reads every chain whole and
    /// jump cuts ([`effect`]) would only cost their computation, about a
    /// tenth of loading a large ruleset. Without them the branch walk
    /// reads every jump too, and gives the same outcomes.
    pub fn for_one_packet(rs: &'a Ruleset, local: Option<LocalAddrs>) -> Self {
        Self::build_with(rs, Self::marks_of(rs), local, true, false)
    }

    /// The mark space of `rs`'s own rewrites (packets enter with mark 0).
    fn marks_of(rs: &Ruleset) -> MarkSpace {
        MarkSpace::new(
            rs.chains
                .iter()
                .flat_map(|c| c.rules.iter())
                .filter_map(|r| match &r.action {
                    Action::Mark(rw) => Some(*rw),
                    _ => None,
                })
                .collect(),
        )
    }

    /// For hosts where tc or eBPF may mark packets before the ruleset:
    /// every mark test may or may not match, and rewrites are not followed.
    pub fn with_initial_mark_any(rs: &'a Ruleset) -> Self {
        Self::with_marks(rs, MarkSpace::unknown("--initial-mark any"))
    }

    /// The host's own addresses (`--local`): `-m addrtype` and nft `fib
    /// ... type` tests on `LOCAL` (and `MULTICAST`) are then decided for
    /// each packet instead of being two branches, and [`Tracer::path_for`]
    /// picks the input or forward path by the destination.
    pub fn with_local(self, local: LocalAddrs) -> Self {
        let marks = self.marks;
        Self::build(self.rs, marks, Some(local), self.indexed)
    }

    fn with_marks(rs: &'a Ruleset, marks: MarkSpace) -> Self {
        Self::build(rs, marks, None, true)
    }

    /// The path a packet takes: from the host (`from_host`, or `--hook
    /// output`) the output path; otherwise, when the host's addresses are
    /// known, input for a packet to one of them and forward for any other;
    /// without them, `hook` as given.
    pub fn path_for(&self, hook: Hook, from_host: bool, p: &Packet) -> Hook {
        if from_host || hook == Hook::Output {
            return Hook::Output;
        }
        match &self.local {
            Some(l) if l.contains(p.dst) => Hook::Input,
            Some(_) => Hook::Forward,
            None => hook,
        }
    }

    /// Whether `dst` is the host itself: a `--local` address when they are
    /// known (loopback included), loopback otherwise.
    fn to_the_host(&self, dst: std::net::IpAddr) -> bool {
        match &self.local {
            Some(l) => l.contains(dst),
            None => dst.is_loopback(),
        }
    }

    /// Whether routing drops `p`, come from the network on `path` (input
    /// or forward, host addresses known), for its destination `dst` (after
    /// any rewrite): a loopback address arriving on another interface than
    /// `lo` is a martian (route_localnet 0; tests/kernel_martian.rs).
    fn martian(&self, path: Hook, p: &Packet, dst: IpAddr) -> bool {
        self.local.is_some()
            && matches!(path, Hook::Input | Hook::Forward)
            && dst.is_loopback()
            && p.iif.as_deref() != Some("lo")
    }

    fn build(rs: &'a Ruleset, marks: MarkSpace, local: Option<LocalAddrs>, indexed: bool) -> Self {
        Self::build_with(rs, marks, local, indexed, indexed)
    }

    /// `indexed`: rule tables; `cuts`: with them, jumps cut to what their
    /// targets act on.
    fn build_with(
        rs: &'a Ruleset,
        marks: MarkSpace,
        local: Option<LocalAddrs>,
        indexed: bool,
        cuts: bool,
    ) -> Self {
        let exact = marks.exact();
        let quick: Vec<Vec<Quick>> = rs
            .chains
            .iter()
            .map(|c| {
                let mut first: std::collections::HashMap<&RuleRef, u32> =
                    std::collections::HashMap::with_capacity(c.rules.len());
                c.rules
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let group = *first.entry(&r.origin).or_insert(i as u32);
                        Quick::of(&r.matches, group, exact, local.as_ref())
                    })
                    .collect()
            })
            .collect();
        let unknown: Vec<bool> = rs.chains.iter().map(|c| c.is_unknown_target()).collect();
        // Jumps cut to what their targets can act on (only where tables
        // are built: the reference walker reads every rule).
        let (cuts, acts_on) = match (indexed && cuts)
            .then(|| effect::narrowed(rs, &quick, &unknown, exact))
            .flatten()
        {
            Some((c, a)) => (Some(c), a),
            None => (None, Vec::new()),
        };
        let bounded = cuts.is_some();
        let mut callers = vec![0u32; rs.chains.len()];
        for r in rs.chains.iter().flat_map(|c| c.rules.iter()) {
            if let Action::Jump { target } | Action::Goto { target } = r.action {
                callers[target.0] = callers[target.0].saturating_add(1);
            }
        }
        let mut cut = vec![false; rs.chains.len()];
        let mut cut_jumps = 0;
        let index = rs
            .chains
            .iter()
            .enumerate()
            .map(|(ci, c)| {
                if !indexed {
                    return None;
                }
                let cuts = cuts.as_ref().map_or(&[][..], |v| &v[ci][..]);
                let any_cut = !cuts.is_empty();
                // A chain with a cut jump gets tables however short it is:
                // they are what leaves the jump out.
                if c.rules.len() <= INDEX_THRESHOLD && !any_cut {
                    return None;
                }
                cut[ci] = any_cut;
                cut_jumps += cuts.len();
                // (`cuts` is ascending by rule: one binary search a rule.)
                // A cut jump is an entry per piece of its target's effect.
                Some(classify::ChainIndex::build_entries(
                    c.rules.iter().enumerate().flat_map(|(i, r)| {
                        let ms = match cuts.binary_search_by_key(&i, |(j, _)| *j) {
                            Ok(k) => &cuts[k].1[..],
                            Err(_) => std::slice::from_ref(&r.matches),
                        };
                        ms.iter().map(move |m| (i, m))
                    }),
                ))
            })
            .collect();
        let bases = crate::engine::bases_by_hook(rs);
        let stages: Vec<Vec<Stage>> = bases
            .iter()
            .map(|(h, cs)| cs.iter().map(|c| Stage::of_chain(rs, *h, c.0)).collect())
            .collect();
        Self {
            rs,
            index,
            indexed,
            cut,
            cut_jumps,
            bounded,
            acts_on,
            // A chain of a few rules is cheaper to walk again than to look
            // up (kube-proxy's one-rule KUBE-MARK-MASQ, jumped to from every
            // service, never returns unchanged anyway).
            shared: callers
                .iter()
                .zip(&rs.chains)
                .map(|(&n, c)| n > 1 && c.rules.len() > INDEX_THRESHOLD)
                .collect(),
            quick,
            bases,
            hides: stages
                .iter()
                .flatten()
                .map(|&st| (st, Hides::of(st)))
                .collect(),
            stages,
            unknown,
            marks,
            local,
            tests_oif: rs
                .chains
                .iter()
                .any(|c| c.rules.iter().any(|r| !r.matches.oif.is_any())),
            reads_src: (0..rs.chains.len())
                .map(|c| reads_source(rs, c, &mut vec![false; rs.chains.len()]))
                .collect(),
            reads_orig_src: (0..rs.chains.len())
                .map(|c| crate::engine::reads_orig_source(rs, c, &mut vec![false; rs.chains.len()]))
                .collect(),
        }
    }

    /// The marks of the first walk of the last packet traced with
    /// `scratch`, after each rewrite: the rewriting rule, packet mark and
    /// connection mark.
    pub fn mark_changes(&self, scratch: &TraceScratch) -> Vec<(RuleRef, u32, u32)> {
        scratch
            .0
            .marks
            .iter()
            .map(|&(k, m, c)| (self.rule_ref(k), m, c))
            .collect()
    }

    /// How many jump rules the rule tables index cut to the packets their
    /// target can act on (walks that show no path pass over the jump for
    /// every other packet; 0 for the reference walker).
    pub fn cut_jumps(&self) -> usize {
        self.cut_jumps
    }

    /// The ruleset being traced.
    pub fn ruleset(&self) -> &Ruleset {
        self.rs
    }

    /// Trace one packet on the path `hook` names.
    pub fn trace(&self, hook: Hook, p: &Packet) -> TraceResult {
        let mut scratch = TraceScratch::default();
        let (verdict, _, uncertain) = self.trace_with(hook, p, &mut scratch);
        let w = &scratch.0;
        TraceResult {
            verdict,
            path: w.path.iter().map(|&k| self.rule_ref(k)).collect(),
            uncertain,
            outcomes: w
                .outcomes
                .iter()
                .map(|o| TraceOutcome {
                    verdict: o.verdict,
                    rule: o.rule.map(|k| self.rule_ref(k)),
                    path: o.path,
                    dnat: o.xlat.dnat_text(),
                    snat: o.xlat.snat_text(),
                })
                .collect(),
            overall: scratch.overall(),
            rule: scratch.rule().map(|k| self.rule_ref(k)),
        }
    }

    /// Why an `unknown` outcome named by rule key `k` is unknown, when the
    /// rule is an address translation trace does not follow (`None` for
    /// other rules: their target is one the model cannot follow).
    pub fn unknown_reason(&self, (c, r): (u32, u32)) -> Option<String> {
        let rule = self.rs.chains.get(c as usize)?.rules.get(r as usize)?;
        let Action::Nat(n) = &rule.action else {
            return None;
        };
        let span = |lo: u128, hi: u128| hi.saturating_sub(lo).saturating_add(1);
        Some(match (n.kind, n.addrs) {
            (NatKind::Redirect, _) => {
                "REDIRECT goes to the host's own address: give the host's addresses with --local"
                    .to_string()
            }
            (NatKind::Snat, None) => {
                "a source translation without an address (the kernel's choice)".to_string()
            }
            (_, Some((a, b))) if a.is_ipv6() != b.is_ipv6() => {
                "a translation across address families".to_string()
            }
            (NatKind::Masquerade, _) => format!(
                "MASQUERADE takes the address of the interface the packet leaves by, one of the \
                 host's: give them with --local (1 to {MAX_NAT_CHOICES} of the family; a later \
                 chain reads the source)"
            ),
            (NatKind::Snat, Some((a, b))) => {
                let n_addrs = span(to_u128(a), to_u128(b));
                if n_addrs > MAX_NAT_CHOICES {
                    format!(
                        "a source translation to {n_addrs} addresses, more than {MAX_NAT_CHOICES} (one outcome each)"
                    )
                } else {
                    "the new source port is the kernel's choice from a range, and a later \
                     chain reads the source"
                        .to_string()
                }
            }
            (_, addrs) => {
                let n_addrs = addrs.map_or(1, |(a, b)| span(to_u128(a), to_u128(b)));
                let n_ports = n
                    .ports
                    .map_or(1, |(x, y)| span(u128::from(x), u128::from(y)));
                format!(
                    "a translation to {} address x port choices, more than {MAX_NAT_CHOICES} (one outcome each)",
                    n_addrs.saturating_mul(n_ports)
                )
            }
        })
    }

    /// The source reference of a `(chain, rule)` key; rule `u32::MAX` is the chain policy.
    pub fn rule_ref(&self, (c, r): (u32, u32)) -> RuleRef {
        let chain = &self.rs.chains[c as usize];
        if r == u32::MAX {
            RuleRef::Policy {
                chain: chain.name.clone(),
            }
        } else {
            chain.rules[r as usize].origin.clone()
        }
    }

    /// Trace one packet; the path is `(chain, rule)` keys (rule `u32::MAX`
    /// for a chain policy), without consecutive duplicates of one source rule.
    pub fn trace_raw(&self, hook: Hook, p: &Packet) -> (Verdict, Vec<(u32, u32)>, bool) {
        let mut scratch = TraceScratch::default();
        let (v, _, uncertain) = self.trace_with(hook, p, &mut scratch);
        (v, std::mem::take(&mut scratch.0.path), uncertain)
    }

    /// Trace one packet reusing `scratch` (no allocation per packet once
    /// warm): the verdict and deciding rule key of the branch in which no
    /// rule the model cannot evaluate matches, and whether the packet's
    /// outcomes are uncertain ([`TraceResult::uncertain`]). Every outcome is
    /// left in `scratch` ([`TraceScratch::outcomes`]).
    pub fn trace_with(
        &self,
        hook: Hook,
        p: &Packet,
        scratch: &mut TraceScratch,
    ) -> (Verdict, Option<(u32, u32)>, bool) {
        scratch.0.outcomes_only = false;
        self.walk_packet(hook, p, scratch)
    }

    /// Trace one packet for its outcomes only (batch output): afterwards
    /// `scratch` holds the same [`TraceScratch::outcomes`],
    /// [`TraceScratch::overall`], [`TraceScratch::rule`] and
    /// [`TraceScratch::uncertain`] as after [`Tracer::trace_with`], but a
    /// packet whose walk splits (a rule the model cannot evaluate, a target
    /// it cannot follow, a translation) is not walked past the split before
    /// every branch is walked, so the first walk's path and mark changes may
    /// stop short. Returns whether the packet's outcomes are uncertain.
    pub fn trace_outcomes(&self, hook: Hook, p: &Packet, scratch: &mut TraceScratch) -> bool {
        scratch.0.outcomes_only = true;
        self.walk_packet(hook, p, scratch).2
    }

    /// [`Tracer::trace_with`] and [`Tracer::trace_outcomes`].
    fn walk_packet(
        &self,
        hook: Hook,
        p: &Packet,
        scratch: &mut TraceScratch,
    ) -> (Verdict, Option<(u32, u32)>, bool) {
        let (w, buf, rebuf) = (&mut scratch.0, &mut scratch.1, &mut scratch.2);
        w.path.clear();
        w.forked = false;
        w.nat_stop = false;
        w.split = None;
        w.passed = None;
        w.outcomes.clear();
        w.marks.clear();
        w.st = St::default();
        // A later packet of a connection carries whatever connection mark
        // its earlier packets saved: each possible value is a branch.
        if p.ct_state & ringfence_model::CtStates::NEW == 0 && self.marks.conn.len() > 1 {
            w.forked = true;
        }
        // A packet the host sends to itself loops back into prerouting and
        // input; the branch walk gives its outcomes (a rule after loopback
        // may fork it where the walk below cannot see).
        if hook == Hook::Output && self.to_the_host(p.dst) {
            w.forked = true;
        }
        // To loopback from the network: IPv6 drops it on arrival, before
        // prerouting; IPv4 routes it after prerouting, whose DNAT may send
        // it elsewhere (the branch walk decides). No rule decides the drop.
        let martian = self.martian(hook, p, p.dst);
        if martian && p.dst.is_ipv6() {
            w.outcomes.push(RawOutcome {
                verdict: Decision::Drop,
                rule: None,
                path: hook,
                xlat: Xlat::default(),
            });
            return (Verdict::Drop, None, false);
        }
        w.forked |= martian;
        let (bases, stages) = self.chains_of(hook);
        let mut verdict = Verdict::Accept;
        for (&base, &stage) in bases.iter().zip(stages) {
            if martian
                && self.rs.chain(base).base.as_ref().map(|b| b.hook) != Some(Hook::Prerouting)
            {
                verdict = Verdict::Drop;
                break;
            }
            let policy = self.rs.chain(base).base.as_ref().map(|b| b.policy);
            // The packet as the rules at this chain's stage see it.
            let seen = self.seen(stage, p, None, buf);
            w.stage = stage;
            let flow = self.eval(base, seen, w, 0);
            if w.stopped() {
                break;
            }
            if let ControlFlow::Break(v) = after_chain(w, flow, base, policy) {
                verdict = v.unwrap_or(verdict);
                break;
            }
        }
        // Sent by the host to itself and accepted on the way out: back from
        // loopback through prerouting and input (the branch walk judges
        // every outcome; this walk gives the path and verdict of one).
        if hook == Hook::Output
            && verdict == Verdict::Accept
            && !w.nat_stop
            && !w.stopped()
            && self.to_the_host(p.dst)
        {
            let mut lp = p.clone();
            lp.iif = Some("lo".to_string());
            lp.oif = None;
            let (chains, stages) = self.chains_of(Hook::Input);
            for (&base, &stage) in chains.iter().zip(stages) {
                let attach = self.rs.chain(base).base.as_ref();
                if attach.is_some_and(|b| b.nat) {
                    continue;
                }
                let mut hides = self.hides_of(stage);
                hides.ct = false;
                let seen = view(&lp, None, hides, buf);
                w.stage = stage;
                let flow = self.eval(base, seen, w, 0);
                if w.stopped() {
                    break;
                }
                if let ControlFlow::Break(v) = after_chain(w, flow, base, attach.map(|b| b.policy))
                {
                    verdict = v.unwrap_or(verdict);
                    break;
                }
            }
        }
        let mut last = w.path.last().copied();
        if w.forked {
            // A rule passed over comes before any fork (the walk stops at
            // a fork): it is where the branches part.
            if w.passed.is_some() {
                w.split = w.passed;
            }
            self.branches(hook, p, w, buf, rebuf);
            // After a translation the first walk stopped: the verdict is
            // the one every outcome agrees on, if they do.
            if w.nat_stop {
                if let Some(first) = w.outcomes.first().copied() {
                    if w.outcomes.iter().all(|o| o.verdict == first.verdict) {
                        match first.verdict {
                            Decision::Accept => verdict = Verdict::Accept,
                            Decision::Drop => verdict = Verdict::Drop,
                            Decision::Reject => verdict = Verdict::Reject,
                            Decision::Unknown => {}
                        }
                        if w.outcomes.iter().all(|o| o.rule == first.rule) {
                            last = first.rule;
                        }
                    }
                }
            }
        } else {
            let rule = last.map(|k| self.group_key(k));
            w.outcomes.push(RawOutcome {
                verdict: verdict.into(),
                rule,
                path: hook,
                xlat: Xlat::default(),
            });
        }
        (verdict, last, scratch.uncertain())
    }

    /// The packet `p`, its destination translated by `dnat`, as rules at
    /// `stage` see it (in `buf` when that differs from `p`).
    #[inline]
    fn seen<'b>(
        &self,
        stage: Stage,
        p: &'b Packet,
        dnat: Option<(IpAddr, u16)>,
        buf: &'b mut Packet,
    ) -> &'b Packet {
        view(p, dnat, self.hides_of(stage), buf)
    }

    /// What `stage` hides of a packet.
    fn hides_of(&self, stage: Stage) -> Hides {
        self.hides
            .iter()
            .find(|(s, _)| *s == stage)
            .map_or_else(|| Hides::of(stage), |&(_, h)| h)
    }

    /// Base chain `n` of the input path for a packet the host sent to
    /// itself (`p`, arriving on `lo`), entered in state `st` (`before`: the
    /// rule that let it get here, which decides when nothing later does).
    /// The packet carries its connection through loopback, so even a chain
    /// before conntrack reads its state, and nat chains are passed over:
    /// the kernel set up both translations of the connection on the way
    /// out (registering any nat chain of a family hooks nat into every hook
    /// of it, so output and postrouting gave the connection its
    /// translations, none if no rule there made one). Checked in the
    /// kernel by `tests/kernel_loopback.rs`.
    fn looped_step(
        &self,
        p: &Packet,
        st: St,
        n: usize,
        before: Option<(u32, u32)>,
        w: &mut Walk,
        buf: &mut Packet,
    ) -> Vec<LoopStep> {
        let (chains, stages) = self.chains_of(Hook::Input);
        let Some(&base) = chains.get(n) else {
            return vec![Err((Decision::Accept, before, st))];
        };
        let last = n + 1 == chains.len();
        let attach = self.rs.chain(base).base.as_ref();
        if attach.is_some_and(|b| b.nat) {
            return vec![if last {
                Err((Decision::Accept, before, st))
            } else {
                Ok((st, Hook::Input, n + 1, before, true))
            }];
        }
        let policy = attach.map(|b| b.policy);
        let stage = stages[n];
        let mut hides = self.hides_of(stage);
        hides.ct = false;
        let seen = view(p, st.2.dnat, hides, buf);
        w.stage = stage;
        w.route = Some(Hook::Input);
        w.hook = attach.map(|b| b.hook);
        let mut out = Vec::new();
        let mut set = w.sets.pop().unwrap_or_default();
        set.clear();
        self.eval_from(base, seen, w, 0, None, st, 0, &mut set);
        for &r in &set {
            let (d, k, s2) = r.in_base_chain(base, policy);
            if d == Decision::Accept && !last {
                out.push(Ok((s2, Hook::Input, n + 1, k, true)));
            } else {
                out.push(Err((d, k, s2)));
            }
        }
        w.sets.push(set);
        out
    }

    /// The base chains (and their stages) of the path `hook` names.
    fn chains_of(&self, hook: Hook) -> (&[ChainId], &[Stage]) {
        self.bases
            .iter()
            .zip(&self.stages)
            .find(|((h, _), _)| *h == hook)
            .map(|((_, v), st)| (v.as_slice(), st.as_slice()))
            .unwrap_or((&[], &[]))
    }

    /// A rule key as outcomes name it: the first model rule of its source
    /// rule (several model rules can share one source rule).
    fn group_key(&self, (c, r): (u32, u32)) -> (u32, u32) {
        match self.quick[c as usize].get(r as usize) {
            Some(q) => (c, q.group),
            None => (c, r),
        }
    }

    /// The host's addresses of `v6`'s family besides loopback (`--local`),
    /// when there are 1 to [`MAX_NAT_CHOICES`]: the addresses a MASQUERADE
    /// may give a packet (the outgoing interface's is one of them).
    fn masquerade_addresses(&self, v6: bool) -> Option<Vec<IpAddr>> {
        let local = self.local.as_ref()?;
        // The ranges of host addresses, loopback (::/127, 127.0.0.0/8) aside.
        let ranges: Vec<(u128, u128)> = if v6 {
            local
                .addrs
                .v6
                .ranges()
                .iter()
                .filter(|&&(_, hi)| hi >= 2)
                .map(|&(lo, hi)| (lo.max(2), hi))
                .collect()
        } else {
            local
                .addrs
                .v4
                .ranges()
                .iter()
                .flat_map(|&(lo, hi)| [(lo, hi.min(0x7eff_ffff)), (lo.max(0x8000_0000), hi)])
                .filter(|&(lo, hi)| lo <= hi)
                .map(|(lo, hi)| (u128::from(lo), u128::from(hi)))
                .collect()
        };
        let count = ranges
            .iter()
            .fold(0u128, |n, &(lo, hi)| n.saturating_add(hi - lo + 1));
        (1..=MAX_NAT_CHOICES).contains(&count).then(|| {
            ranges
                .iter()
                .flat_map(|&(lo, hi)| (lo..=hi).map(|a| from_u128(a, v6)))
                .collect()
        })
    }

    /// The lowest host address (`--local`, loopback aside) of `v6`'s
    /// family: where a REDIRECT in prerouting sends a packet.
    fn host_address(&self, v6: bool) -> Option<IpAddr> {
        let local = self.local.as_ref()?;
        if v6 {
            // Skip :: and ::1 (loopback).
            local.addrs.v6.ranges().iter().find_map(|&(lo, hi)| {
                let a = lo.max(2);
                (a <= hi).then(|| IpAddr::from(std::net::Ipv6Addr::from(a)))
            })
        } else {
            // Skip 127.0.0.0/8 (loopback).
            local.addrs.v4.ranges().iter().find_map(|&(lo, hi)| {
                let a = if lo >> 24 == 127 { 0x8000_0000 } else { lo };
                (a <= hi).then(|| IpAddr::from(std::net::Ipv4Addr::from(a)))
            })
        }
    }

    /// The outcomes of translation `n` (rule `key`) for a branch in state
    /// `st` on packet `p` (as the nat chain sees it): the rule ends its base
    /// chain, so each is an accept of that chain carrying the rewritten
    /// state, one per address × port the kernel may choose; or one
    /// `unknown` when the model cannot follow it.
    fn translate(
        &self,
        n: &NatRewrite,
        p: &Packet,
        st: St,
        key: (u32, u32),
        w_route: Option<Hook>,
    ) -> ResSet {
        let mut out = ResSet::new();
        let unknown = |out: &mut ResSet| out.push(Res::Out(Decision::Unknown, Some(key), st));
        let has_ports = crate::space::PORT_PROTOCOLS.contains(&p.protocol);
        if !n.is_destination() {
            // A connection's source is translated once.
            if st.2.snat.is_some() {
                out.push(Res::Out(Decision::Accept, Some(key), st));
                return out;
            }
            let port = match n.ports {
                Some((x, y)) if x == y && has_ports => Some(x),
                _ => None,
            };
            let v6 = p.src.is_ipv6();
            // Each choice with the new source address, when the chains
            // after the translation can be told it.
            let choices: Option<Vec<(SnatTo, Option<IpAddr>)>> = match (n.kind, n.addrs) {
                // The outgoing interface's address: one of the host's (a
                // branch each), or unknown to later chains without them.
                (NatKind::Masquerade, _) => Some(match self.masquerade_addresses(v6) {
                    Some(addrs) => addrs
                        .into_iter()
                        .map(|a| (SnatTo::Masquerade, Some(a)))
                        .collect(),
                    None => vec![(SnatTo::Masquerade, None)],
                }),
                (_, Some((a, b))) if a == b => Some(vec![(
                    SnatTo::To(a, port),
                    (a.is_ipv6() == v6).then_some(a),
                )]),
                // A range of the packet's family: the kernel keeps a source
                // already in it, or picks one by a hash of the addresses,
                // so every address is a possible outcome (one each, up to
                // the limit on choices).
                (_, Some((a, b))) if a.is_ipv6() == v6 && b.is_ipv6() == v6 => {
                    let (lo, hi) = (to_u128(a), to_u128(b));
                    (lo <= hi && hi - lo < MAX_NAT_CHOICES).then(|| {
                        (lo..=hi)
                            .map(|v| {
                                let a = from_u128(v, v6);
                                (SnatTo::To(a, port), Some(a))
                            })
                            .collect()
                    })
                }
                // No address, or a range too wide or of the other family:
                // the model does not follow the kernel's choice.
                _ => None,
            };
            match choices {
                Some(choices) => {
                    // The new source port later chains see: the packet's
                    // own, or the rule's one port (a range is the kernel's
                    // choice: not carried).
                    let one_port = match n.ports {
                        None => Some(None),
                        Some((a, b)) if a == b => Some(Some(a)),
                        Some(_) => None,
                    };
                    for (s, addr) in choices {
                        let mut x = st.2;
                        x.snat = Some(s);
                        x.snat_rule = Some(key);
                        // The new source later chains of the hook see, as the
                        // engine carries it.
                        x.src_now = addr.zip(one_port);
                        out.push(Res::Out(Decision::Accept, Some(key), St(st.0, st.1, x)));
                    }
                }
                None => unknown(&mut out),
            }
            return out;
        }
        // A connection's destination is translated once.
        if st.2.dnat.is_some() {
            out.push(Res::Out(Decision::Accept, Some(key), st));
            return out;
        }
        let v6 = p.dst.is_ipv6();
        let (alo, ahi): (u128, u128) = match (n.kind, n.addrs) {
            (NatKind::Redirect, _) => {
                // Locally sent packets go to loopback; others to the
                // host's address (the lowest of `--local` of the family).
                let a = if w_route == Some(Hook::Output) {
                    Some(if v6 {
                        IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
                    } else {
                        IpAddr::from(std::net::Ipv4Addr::LOCALHOST)
                    })
                } else {
                    self.host_address(v6)
                };
                match a {
                    Some(a) => (to_u128(a), to_u128(a)),
                    None => {
                        unknown(&mut out);
                        return out;
                    }
                }
            }
            (_, Some((a, b))) if a.is_ipv6() == v6 && b.is_ipv6() == v6 => (to_u128(a), to_u128(b)),
            (_, Some(_)) => {
                unknown(&mut out);
                return out;
            }
            (_, None) => (to_u128(p.dst), to_u128(p.dst)),
        };
        let (plo, phi) = match n.ports {
            Some((x, y)) if has_ports => (x, y),
            _ => (p.dport, p.dport),
        };
        let choices = (ahi - alo + 1).saturating_mul(u128::from(phi - plo) + 1);
        if ahi < alo || phi < plo || choices > MAX_NAT_CHOICES {
            unknown(&mut out);
            return out;
        }
        for a in alo..=ahi {
            let addr = from_u128(a, v6);
            for port in plo..=phi {
                let mut x = st.2;
                // A packet that already carries the address and port is
                // left untranslated (no DNAT status), as the kernel does.
                if (addr, port) != (p.dst, p.dport) {
                    x.dnat = Some((addr, port));
                    x.odst = Some((p.dst, p.dport));
                    x.dnat_rule = Some(key);
                }
                add(
                    &mut out,
                    Res::Out(Decision::Accept, Some(key), St(st.0, st.1, x)),
                );
            }
        }
        out
    }

    /// Every outcome of the packet on the path `hook` names, every branch
    /// at once. Each branch carries its marks and translations: later base
    /// chains see its rewritten destination, and after prerouting, when the
    /// host's addresses are known, the branch goes on by input or forward
    /// as its (rewritten) destination says. A branch whose source was
    /// translated and that meets another base chain (which might read the
    /// source) is unknown, named by the translating rule.
    fn branches(&self, hook: Hook, p: &Packet, w: &mut Walk, buf: &mut Packet, rebuf: &mut Packet) {
        w.outcomes.clear();
        let push =
            |w: &mut Walk, verdict: Decision, rule: Option<(u32, u32)>, path: Hook, st: St| {
                let mut xlat = st.2;
                xlat.snat_rule = None;
                xlat.dnat_rule = None;
                xlat.odst = None;
                xlat.nat_done = None;
                xlat.src_now = None;
                let o = RawOutcome {
                    verdict,
                    rule,
                    path,
                    xlat,
                };
                if !w.outcomes.contains(&o) {
                    w.outcomes.push(o);
                }
            };
        let (bases, _) = self.chains_of(hook);
        if bases.is_empty() {
            // No chain on the path (a packet the host sends to itself
            // still meets prerouting and input after loopback: below).
            if !(hook == Hook::Output && self.to_the_host(p.dst)) {
                // (Routing still drops a martian: no rule decides either.)
                let d = match self.martian(hook, p, p.dst) {
                    true => Decision::Drop,
                    false => Decision::Accept,
                };
                push(w, d, None, hook, St::default());
                return;
            }
        }
        let reroute = self.local.is_some() && matches!(hook, Hook::Input | Hook::Forward);
        // The branches still walking: marks and translations, path, the
        // index of the next base chain on it, and, for a branch whose
        // hook's translation is set up, the rule that decided the chain
        // before (it decides the outcome when every chain left is a nat
        // chain of that hook, which the branch skips).
        // (The list is the walk's, reused; it goes back at the end.)
        let mut live = std::mem::take(&mut w.live);
        live.clear();
        if p.ct_state & ringfence_model::CtStates::NEW != 0 {
            live.push((St::default(), hook, 0, None, false));
        } else {
            live.extend(
                self.marks
                    .conn
                    .iter()
                    .map(|&c| (St(0, c, Xlat::default()), hook, 0, None, false)),
            );
        }
        // The packet as it comes back from loopback: in on `lo`, out on
        // nothing yet (made when a branch first loops).
        let mut looped_packet: Option<Packet> = None;
        if bases.is_empty() {
            // Nothing on the output path: straight to loopback.
            for b in &mut live {
                *b = (b.0, Hook::Input, 0, None, true);
            }
        }
        // A branch accepted by chain `n - 1` (rule `k`) going on to chain
        // `n` of `path`: its translation is forgotten when that chain is
        // on another hook.
        let onward = |mut s2: St, path: Hook, n: usize, k: Option<(u32, u32)>| -> Live {
            let next_hook = self
                .chains_of(path)
                .0
                .get(n)
                .and_then(|&c| self.rs.chain(c).base.as_ref())
                .map(|b| b.hook);
            if s2.2.nat_done.is_some() && s2.2.nat_done != next_hook {
                s2.2.nat_done = None;
            }
            (s2, path, n, s2.2.nat_done.and(k), false)
        };
        // Breadth first, so outcomes come in the order the walk meets them;
        // `live` keeps every state once.
        let mut next_up = 0;
        while let Some(&(st, mut path, n, before, looped)) = live.get(next_up) {
            next_up += 1;
            if looped {
                let lp = looped_packet.get_or_insert_with(|| {
                    let mut q = p.clone();
                    q.iif = Some("lo".to_string());
                    q.oif = None;
                    q
                });
                let next = self.looped_step(lp, st, n, before, w, buf);
                for r in next {
                    match r {
                        Ok(next) => {
                            if !live.contains(&next) {
                                live.push(next);
                            }
                        }
                        Err((d, k, s3)) => push(w, d, k, Hook::Output, s3),
                    }
                }
                continue;
            }
            let (mut chains, mut stages) = self.chains_of(path);
            let Some(&base) = chains.get(n) else {
                continue;
            };
            let dst_rw = st.2.dnat.map_or(p.dst, |(a, _)| a);
            // Routing after prerouting, by the destination the branch has.
            let after_pre = |c: ChainId| {
                self.rs.chain(c).base.as_ref().map(|b| b.hook) != Some(Hook::Prerouting)
            };
            let mut base = base;
            if reroute && after_pre(base) && self.martian(path, p, dst_rw) {
                push(w, Decision::Drop, None, path, st);
                continue;
            }
            if reroute && after_pre(base) {
                let l = self.local.as_ref().expect("reroute needs --local");
                let routed = if l.contains(dst_rw) {
                    Hook::Input
                } else {
                    Hook::Forward
                };
                if routed != path {
                    // Sent on instead of delivered: out of an interface the
                    // packet line does not name, which a rule tests.
                    if routed == Hook::Forward && p.oif.is_none() && self.tests_oif {
                        push(w, Decision::Unknown, st.2.dnat_rule, routed, st);
                        continue;
                    }
                    path = routed;
                    (chains, stages) = self.chains_of(path);
                    match chains.get(n) {
                        Some(&c) => base = c,
                        // The new path has no chain left: what got this
                        // far is accepted (no rule of it decides).
                        None => {
                            push(w, Decision::Accept, None, path, st);
                            continue;
                        }
                    }
                }
            }
            let stage = stages[n];
            let last = n + 1 == chains.len();
            let attach = self.rs.chain(base).base.as_ref();
            // A nat chain of a hook whose translation this branch has set
            // up is skipped: it decides nothing, the chain before did.
            let skipped = attach.is_some_and(|b| b.nat && st.2.nat_done == Some(b.hook));
            // After a source translation, a chain that reads the source is
            // unknown unless the branch carries the new source; one that
            // reads the original source is unknown either way.
            let blind = if st.2.src_now.is_some() {
                self.reads_orig_src[base.0]
            } else {
                self.reads_src[base.0]
            };
            if !skipped && blind {
                if let (Some(_), Some(k)) = (st.2.snat, st.2.snat_rule) {
                    push(w, Decision::Unknown, Some(k), path, st);
                    continue;
                }
            }
            let policy = attach.map(|b| b.policy);
            let mut set = w.sets.pop().unwrap_or_default();
            set.clear();
            if skipped {
                set.push(Res::Out(Decision::Accept, before, st));
            } else {
                // The packet as the rules at this chain's stage see it,
                // with the source a carried translation gave it.
                // (A copy in `rebuf`, whose interface name buffers are reused.)
                let p = match st.2.src_now {
                    Some((a, port)) => {
                        let has_ports = crate::space::PORT_PROTOCOLS.contains(&p.protocol);
                        // Its own destination as the "translation": always a copy.
                        view(p, Some((p.dst, p.dport)), Hides::NONE, rebuf);
                        rebuf.src = a;
                        rebuf.sport = port.filter(|_| has_ports).unwrap_or(p.sport);
                        &*rebuf
                    }
                    None => p,
                };
                let seen = self.seen(stage, p, st.2.dnat, buf);
                w.stage = stage;
                w.route = Some(path);
                w.hook = attach.map(|b| b.hook);
                self.eval_from(base, seen, w, 0, None, st, 0, &mut set);
            }
            for &r in &set {
                let (d, k, s2) = r.in_base_chain(base, policy);
                // The last chain of the path before routing accepted a
                // branch whose rewritten destination routes it elsewhere:
                // it goes on by that path (or ends there if that path has
                // no later chain).
                let rerouted = (d == Decision::Accept && last && reroute && !after_pre(base))
                    .then(|| {
                        let l = self.local.as_ref().expect("reroute needs --local");
                        if l.contains(s2.2.dnat.map_or(p.dst, |(a, _)| a)) {
                            Hook::Input
                        } else {
                            Hook::Forward
                        }
                    })
                    .filter(|&routed| routed != path);
                let to = s2.2.dnat.map_or(p.dst, |(a, _)| a);
                if d == Decision::Accept
                    && last
                    && reroute
                    && !after_pre(base)
                    && self.martian(path, p, to)
                {
                    push(w, Decision::Drop, None, path, s2);
                } else if let Some(routed) = rerouted {
                    if routed == Hook::Forward && p.oif.is_none() && self.tests_oif {
                        push(w, Decision::Unknown, s2.2.dnat_rule, routed, s2);
                    } else if self.chains_of(routed).0.len() > n + 1 {
                        let next = onward(s2, routed, n + 1, k);
                        if !live.contains(&next) {
                            live.push(next);
                        }
                    } else {
                        let mut s3 = s2;
                        s3.2.snat_rule = None;
                        push(w, d, k, routed, s3);
                    }
                } else if d == Decision::Accept && !last {
                    let next = onward(s2, path, n + 1, k);
                    if !live.contains(&next) {
                        live.push(next);
                    }
                } else {
                    // The source translation's rule is done with: the
                    // branch ended in this chain.
                    let mut s3 = s2;
                    s3.2.snat_rule = None;
                    // A packet the host sends to itself (loopback, or one of
                    // the --local addresses, after any rewrite) goes on
                    // through loopback into prerouting and input: its
                    // acceptance here is not its fate.
                    if d == Decision::Accept
                        && path == Hook::Output
                        && self.to_the_host(s3.2.dnat.map_or(p.dst, |(a, _)| a))
                    {
                        if s3.2.snat.is_some() {
                            // Its rewritten source is not followed into
                            // the chains after loopback.
                            push(w, Decision::Unknown, s2.2.snat_rule.or(k), path, s3);
                            continue;
                        }
                        let mut s4 = s3;
                        s4.2.nat_done = None;
                        let next = (s4, Hook::Input, 0, k, true);
                        if !live.contains(&next) {
                            live.push(next);
                        }
                        continue;
                    }
                    push(w, d, k, path, s3);
                }
            }
            w.sets.push(set);
        }
        w.live = live;
    }

    /// Chain `c`'s outcomes for the packet over every branch, entering with
    /// marks `st` at rule `from`: decisions with their deciding rule (and
    /// the marks an accept goes on with), and `Return` with the marks of
    /// each branch that falls back to the caller, added to `out` (a set in
    /// first-seen order). `jumper` is the rule that called `c` (it names an
    /// unknown outcome of a call stack that is too deep).
    #[allow(clippy::too_many_arguments)]
    fn eval_from(
        &self,
        c: ChainId,
        p: &Packet,
        w: &mut Walk,
        depth: usize,
        jumper: Option<(u32, u32)>,
        mut st: St,
        from: usize,
        out: &mut Vec<Res>,
    ) {
        if depth > MAX_DEPTH {
            add(out, Res::Out(Decision::Unknown, jumper, st));
            return;
        }
        if depth == 0 {
            // A new base chain: another packet or stage.
            w.noop.clear();
        }
        let chain = &self.rs.chains[c.0];
        let quick = &self.quick[c.0];
        let v4 = match (p.src, p.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some((u32::from(s), u32::from(d))),
            _ => None,
        };
        // Whether some branch is still walking this chain.
        let mut live = true;
        for i in self.rules_for(c, p, from, true) {
            let q = &quick[i];
            if !self.matches(c, i, v4, p, st, w.stage) {
                continue;
            }
            let may_match = q.flags & Quick::OPAQUE != 0
                || (q.flags & Quick::FIELDS != 0 && !chain.rules[i].matches.decided_for(p))
                || (q.flags & Quick::CONN != 0 && p.ct_state != CtStates::NEW);
            let key = (c.0 as u32, q.group);
            // Whether every branch that matched the rule is decided by it
            // (or goes on in a recursive walk of the rest of the chain).
            let decided = match &chain.rules[i].action {
                Action::Continue => false,
                Action::Nat(n) => {
                    for r in self.translate(n, p, st, key, w.route) {
                        // The branch goes on with this hook's translation
                        // set up, whatever it rewrote.
                        let r = match r {
                            Res::Out(Decision::Accept, k, mut s2) => {
                                s2.2.nat_done = w.hook;
                                Res::Out(Decision::Accept, k, s2)
                            }
                            r => r,
                        };
                        add(out, r);
                    }
                    true
                }
                Action::Mark(_) if !self.marks.exact() => false,
                Action::Mark(rw) if w.stage.voids(rw) => false,
                Action::Mark(rw) => {
                    let (m0, m1) = rw.apply(st.0, st.1);
                    let next = St(m0, m1, st.2);
                    if may_match {
                        self.eval_from(c, p, w, depth, jumper, next, i + 1, out);
                        true
                    } else {
                        st = next;
                        false
                    }
                }
                Action::Accept => {
                    add(out, Res::Out(Decision::Accept, Some(key), st));
                    true
                }
                Action::Drop => {
                    add(out, Res::Out(Decision::Drop, Some(key), st));
                    true
                }
                Action::Reject { .. } => {
                    add(out, Res::Out(Decision::Reject, Some(key), st));
                    true
                }
                Action::Return => {
                    add(out, Res::Return(st));
                    true
                }
                Action::Jump { target } | Action::Goto { target } => {
                    let goto = matches!(chain.rules[i].action, Action::Goto { .. });
                    if self.unknown[target.0] {
                        add(out, Res::Out(Decision::Unknown, Some(key), st));
                        true
                    } else {
                        let mut called = w.sets.pop().unwrap_or_default();
                        called.clear();
                        let t = target.0 as u32;
                        let remember = self.bounded && self.shared[target.0];
                        if remember && w.noop.contains(&(t, st)) {
                            called.push(Res::Return(st));
                        } else {
                            self.eval_from(*target, p, w, depth + 1, Some(key), st, 0, &mut called);
                            if remember
                                && called.as_slice() == [Res::Return(st)]
                                && w.noop.len() < NOOP_CAP
                            {
                                w.noop.push((t, st));
                            }
                        }
                        let mut returns = w.returns.pop().unwrap_or_default();
                        returns.clear();
                        for &r in &called {
                            match r {
                                Res::Return(s2) if !goto => {
                                    if !returns.contains(&s2) {
                                        returns.push(s2);
                                    }
                                }
                                r => add(out, r),
                            }
                        }
                        w.sets.push(called);
                        let decided = match returns.as_slice() {
                            [] => true,
                            [one] if !may_match => {
                                st = *one;
                                false
                            }
                            more => {
                                for &s2 in more {
                                    self.eval_from(c, p, w, depth, jumper, s2, i + 1, out);
                                }
                                true
                            }
                        };
                        w.returns.push(returns);
                        decided
                    }
                }
            };
            // A rule that may not match lets the branch that skips it go on.
            if decided && !may_match {
                live = false;
                break;
            }
        }
        if live {
            add(out, Res::Return(st));
        }
    }

    /// Whether chain `c`, jumped to with packet `p`, may act on it (see
    /// [`effect`]); true where its effect is not known.
    fn may_act(&self, c: ChainId, p: &Packet) -> bool {
        match self.acts_on.get(c.0) {
            Some(Some(pieces)) => pieces.iter().any(|x| x.admits(p)),
            _ => true,
        }
    }

    /// The rules of chain `c` from `from` on that can match the packet,
    /// ascending: those its tables admit, or every rule of a chain without
    /// tables. A rule left out cannot match (see [`classify`]).
    /// With `skip`, a jump whose target can do nothing to the packet
    /// ([`effect`]) is left out too; without it (walks that record their
    /// path), a chain whose tables leave such jumps out is read whole.
    #[inline]
    fn rules_for(&self, c: ChainId, p: &Packet, from: usize, skip: bool) -> classify::Cands<'_> {
        match &self.index[c.0] {
            Some(ix) if skip || !self.cut[c.0] => ix.candidates(p, from),
            _ => classify::Cands::all(from..self.rs.chains[c.0].rules.len()),
        }
    }

    /// Whether rule `i` of chain `c` matches the packet on every modelled
    /// field (`v4`: its addresses when IPv4).
    #[inline]
    fn matches(
        &self,
        c: ChainId,
        i: usize,
        v4: Option<(u32, u32)>,
        p: &Packet,
        st: St,
        stage: Stage,
    ) -> bool {
        let q = &self.quick[c.0][i];
        let m = &self.rs.chains[c.0].rules[i].matches;
        match v4 {
            Some((s, d)) => {
                q.admits(s, d, p)
                    && (q.flags & Quick::EXACT != 0 || self.matches_slow(m, p, st, stage))
            }
            None => self.matches_slow(m, p, st, stage),
        }
    }

    /// Every modelled field, marks included where they are exact fields
    /// (elsewhere a mark test is opaque: the rule may or may not match).
    /// Before conntrack a connection mark test never holds.
    fn matches_slow(&self, m: &ringfence_model::Match, p: &Packet, st: St, stage: Stage) -> bool {
        if stage.never_matches(m) || !self.types_hold(m, p) || !conn_holds(m, p, st.2.odst) {
            false
        } else if self.marks.exact() {
            m.matches_marked(p, st.0, st.1)
        } else {
            m.matches_header(p)
        }
    }

    /// Whether the packet's addresses pass the rule's address type tests,
    /// where those are decided (the host's addresses known; see
    /// `types_decided`). Undecided tests are the rule's may-match part and
    /// pass here.
    fn types_hold(&self, m: &ringfence_model::Match, p: &Packet) -> bool {
        let Some(local) = &self.local else {
            return true;
        };
        let ok = |t: AddrTypes, a| !t.is_test() || !types_decided(t) || t.meets(local.types_of(a));
        // Interface-limited tests: the address's types as the lookup on
        // the packet's interface gives them.
        let on = |(t, side, dev): (AddrTypes, AddrSide, IfaceSide)| {
            let a = if side == AddrSide::Src { p.src } else { p.dst };
            let d = if dev == IfaceSide::In { &p.iif } else { &p.oif };
            t.meets(local.types_on(a, d.as_deref()))
        };
        ok(m.src_type, p.src)
            && ok(m.dst_type, p.dst)
            && m.iface_types.as_deref().is_none_or(|l| l.tests().all(on))
    }

    fn eval(&self, c: ChainId, p: &Packet, w: &mut Walk, depth: usize) -> Flow {
        if depth > MAX_DEPTH {
            w.forked = true;
            return Flow::Return;
        }
        if depth == 0 {
            // A new base chain: another packet or stage.
            w.noop.clear();
        }
        let chain = &self.rs.chains[c.0];
        let quick = &self.quick[c.0];
        // IPv4 packets take the compact prefilter; IPv6 ones ask the model.
        let v4 = match (p.src, p.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some((u32::from(s), u32::from(d))),
            _ => None,
        };
        let mut result = Flow::Return;
        for i in self.rules_for(c, p, 0, w.outcomes_only) {
            if w.stopped() {
                break;
            }
            let q = &quick[i];
            let matched = match v4 {
                Some((s, d)) => {
                    q.admits(s, d, p)
                        && (q.flags & Quick::EXACT != 0
                            || self.matches_slow(&chain.rules[i].matches, p, w.st, w.stage))
                }
                None => self.matches_slow(&chain.rules[i].matches, p, w.st, w.stage),
            };
            if !matched {
                continue;
            }
            let rule = &chain.rules[i];
            let key = (c.0 as u32, i as u32);
            if q.flags & Quick::OPAQUE != 0
                || (q.flags & Quick::FIELDS != 0 && !rule.matches.decided_for(p))
                || (q.flags & Quick::CONN != 0 && p.ct_state != CtStates::NEW)
            {
                // This walk takes the branch where it does not match; a rule
                // without a verdict changes nothing either way.
                let no_effect = match &rule.action {
                    Action::Continue => true,
                    Action::Mark(rw) => !self.marks.exact() || w.stage.voids(rw),
                    _ => false,
                };
                if !no_effect {
                    // A jump whose target acts on nothing this packet
                    // carries (kube-proxy's `addrtype LOCAL` jump to its
                    // NodePort chain, undecided without the host's
                    // addresses) comes back unchanged either way: both
                    // branches are this walk, which goes on.
                    let passes = w.outcomes_only
                        && matches!(rule.action, Action::Jump { target }
                            if !self.may_act(target, p));
                    if passes {
                        w.passed.get_or_insert((c.0 as u32, q.group));
                    } else {
                        w.forked = true;
                        w.split.get_or_insert((c.0 as u32, q.group));
                    }
                }
                continue;
            }
            let dup = w.path.last().is_some_and(|&(pc, pr)| {
                pc == key.0
                    && quick
                        .get(pr as usize)
                        .is_some_and(|prev| prev.group == q.group)
            });
            if !dup {
                w.path.push(key);
            }
            match &rule.action {
                Action::Accept => {
                    result = Flow::Decided(Verdict::Accept);
                    break;
                }
                Action::Drop => {
                    result = Flow::Decided(Verdict::Drop);
                    break;
                }
                Action::Reject { .. } => {
                    result = Flow::Decided(Verdict::Reject);
                    break;
                }
                Action::Return => break,
                Action::Continue => {}
                Action::Nat(_) => {
                    // An address translation ends its nat base chain; the
                    // branch walk follows the rewritten packet from here,
                    // so this walk stops.
                    w.forked = true;
                    w.nat_stop = true;
                    result = Flow::Decided(Verdict::Accept);
                    break;
                }
                Action::Mark(rw) => {
                    if self.marks.exact() && !w.stage.voids(rw) {
                        let (m0, m1) = rw.apply(w.st.0, w.st.1);
                        w.st = St(m0, m1, w.st.2);
                        w.marks.push((key, w.st.0, w.st.1));
                    }
                }
                Action::Jump { target } | Action::Goto { target } if self.unknown[target.0] => {
                    // A target the model cannot follow: this walk passes
                    // over it (as if its chain's one rule did not match);
                    // its outcome is unknown.
                    w.forked = true;
                    w.split.get_or_insert((c.0 as u32, q.group));
                    if matches!(rule.action, Action::Goto { .. }) {
                        break;
                    }
                }
                Action::Jump { target } => {
                    // (Remembered only where the path is not recorded: a
                    // chain passed over would be missing from it.)
                    if w.outcomes_only && self.bounded && self.shared[target.0] {
                        let t = target.0 as u32;
                        if w.noop.contains(&(t, w.st)) {
                            continue;
                        }
                        let before = (w.st, w.forked, w.split, w.nat_stop);
                        if let Flow::Decided(v) = self.eval(*target, p, w, depth + 1) {
                            result = Flow::Decided(v);
                            break;
                        }
                        if before == (w.st, w.forked, w.split, w.nat_stop)
                            && w.noop.len() < NOOP_CAP
                        {
                            w.noop.push((t, w.st));
                        }
                    } else if let Flow::Decided(v) = self.eval(*target, p, w, depth + 1) {
                        result = Flow::Decided(v);
                        break;
                    }
                }
                Action::Goto { target } => {
                    result = self.eval(*target, p, w, depth + 1);
                    break;
                }
            }
        }
        result
    }
}

/// An address as one number (IPv4 in the low 32 bits).
fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of family `v6` whose number is `v` (the inverse of
/// [`to_u128`]; a v4 number keeps its low 32 bits).
fn from_u128(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::from(std::net::Ipv6Addr::from(v))
    } else {
        IpAddr::from(std::net::Ipv4Addr::from(v as u32))
    }
}

/// Trace one packet (builds a [`Tracer`]; for many packets build one and reuse it).
pub fn trace(rs: &Ruleset, hook: Hook, p: &Packet) -> TraceResult {
    Tracer::new(rs).trace(hook, p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringfence_model::{IntervalSet, Match};

    #[test]
    fn a_compact_match_admits_exactly_the_packets_of_negated_and_plain_sets() {
        let v4 = |a: [u8; 4]| u32::from(std::net::Ipv4Addr::from(a));
        let net = |lo: [u8; 4], hi: [u8; 4]| IntervalSet::range(v4(lo), v4(hi));
        let addr_sets = [
            IntervalSet::full(),
            IntervalSet::empty(),
            net([198, 18, 1, 0], [198, 18, 1, 255]),
            net([198, 18, 1, 0], [198, 18, 1, 255]).complement(),
            IntervalSet::single(v4([198, 18, 1, 7])).complement(),
            // Two ranges, neither at an end: a plain hull, not exact.
            net([198, 18, 1, 0], [198, 18, 1, 3]).union(&net([198, 18, 2, 0], [198, 18, 2, 3])),
            // Every address but the lowest, and but the highest: one range each.
            IntervalSet::single(0).complement(),
            IntervalSet::single(u32::MAX).complement(),
        ];
        let port_sets = [
            IntervalSet::full(),
            IntervalSet::single(443u16),
            IntervalSet::single(443u16).complement(),
            IntervalSet::range(1000u16, 2000).complement(),
            IntervalSet::single(22u16).union(&IntervalSet::single(80)),
        ];
        let addrs = [
            [198, 18, 1, 0],
            [198, 18, 1, 7],
            [198, 18, 1, 255],
            [198, 18, 2, 1],
            [198, 18, 0, 255],
            [0, 0, 0, 0],
            [255, 255, 255, 255],
        ];
        let ports = [0u16, 22, 80, 442, 443, 444, 999, 1000, 2000, 2001, 65535];
        let mut exact_seen = 0;
        for (i, a) in addr_sets.iter().enumerate() {
            for pset in &port_sets {
                let mut m = Match::any();
                m.dst.v4 = a.clone();
                m.src.v4 = addr_sets[(i + 3) % addr_sets.len()].clone();
                m.dport = pset.clone();
                m.sport = port_sets[(i + 2) % port_sets.len()].clone();
                m.protocol = IntervalSet::single(6);
                let q = Quick::of(&m, 0, true, None);
                for d in addrs {
                    for s in [addrs[1], addrs[3]] {
                        for &port in &ports {
                            let p = Packet::new_connection(
                                IpAddr::from(s),
                                IpAddr::from(d),
                                6,
                                port ^ 1,
                                port,
                            );
                            let admitted = q.admits(v4(s), v4(d), &p);
                            let holds = m.matches_header(&p);
                            if q.flags & Quick::EXACT != 0 {
                                exact_seen += 1;
                                assert_eq!(admitted, holds, "{m:?} {p:?}");
                            } else {
                                assert!(admitted || !holds, "{m:?} {p:?}");
                            }
                        }
                    }
                }
            }
        }
        assert!(exact_seen > 0);
        // A negated destination and port alone need no model match.
        let mut m = Match::any();
        m.dst.v4 = addr_sets[3].clone();
        m.dport = port_sets[3].clone();
        m.protocol = IntervalSet::single(6);
        let q = Quick::of(&m, 0, true, None);
        let want = Quick::EXACT | Quick::NEG_DST | Quick::NEG_DPORT;
        assert_eq!(q.flags & want, want);
    }

    #[test]
    fn a_stage_view_in_a_reused_buffer_equals_the_stages_own_copy_of_the_packet() {
        let mut buf = Packet::default();
        for traversal in [Hook::Input, Hook::Forward, Hook::Output] {
            for hook in [
                Hook::Prerouting,
                Hook::Input,
                Hook::Forward,
                Hook::Output,
                Hook::Postrouting,
            ] {
                for priority in [-300, -150, 0, 100] {
                    let stage = Stage::of(traversal, hook, priority);
                    let h = Hides::of(stage);
                    for (iif, oif) in [
                        (None, None),
                        (Some("eth0"), None),
                        (Some("eth0"), Some("veth1")),
                    ] {
                        for ct in [CtStates::NEW, CtStates::ESTABLISHED, CtStates::INVALID] {
                            for dnat in [None, Some((IpAddr::from([198, 18, 0, 9]), 8080))] {
                                let mut p = Packet::new_connection(
                                    IpAddr::from([198, 18, 0, 1]),
                                    IpAddr::from([198, 18, 0, 2]),
                                    6,
                                    1234,
                                    80,
                                );
                                p.iif = iif.map(String::from);
                                p.oif = oif.map(String::from);
                                p.ct_state = ct;
                                p.length = Some(60);
                                p.mac_src = Some(0x0011_2233_4455);
                                let mut rewritten = p.clone();
                                if let Some((a, port)) = dnat {
                                    rewritten.dst = a;
                                    rewritten.dport = port;
                                }
                                let want = stage.packet(&rewritten).into_owned();
                                assert_eq!(*view(&p, dnat, h, &mut buf), want, "{stage:?} {p:?}");
                            }
                        }
                    }
                }
            }
        }
    }
}
