//! Which packets a chain can act on, so the walk can pass over jumps that
//! would change nothing.
//!
//! For each chain a jump reaches, computed once when the tracer is built:
//! an over-approximation of the packets for which walking the chain and
//! the chains it calls could do anything but fall back to the caller with
//! the packet's marks and translations as they were. It is a union of a
//! few pieces, each one set per header field (addresses of each family,
//! protocol, ports): rules that test the same fields in the same way
//! (their protocol, which ports they test, whether their addresses are
//! narrow or cover most of the space) share a piece, so a zone chain's
//! host-and-port rules, its rules on every address but one network, and
//! its UDP port ranges stay apart instead of making every field whole.
//! A rule adds its match to its piece when it may act: a verdict, a
//! translation, a mark rewrite (when marks are exact fields), a jump to a
//! target the model cannot follow, a rule that may or may not match with
//! any of those actions (it forks the walk), and a jump or goto, cut to
//! its target's pieces. `RETURN` and rules that only log or count add
//! nothing. A `RETURN` that holds for every packet of one address range
//! (its only test; `! -d NET -j RETURN` and the like) takes that range out
//! of what later rules of the chain can see, per family.
//!
//! A packet outside every piece of the target takes the jump and comes
//! back as it went, so a jump cut to the pieces leaves out exactly jumps
//! that change nothing: [`narrowed`] gives those cut matches, one per
//! piece, which the chain's rule tables index (`Tracer::build`) for the
//! walks that show no path.

use super::classify::FIELD_BYTES;
use super::{Quick, MAX_DEPTH};
use ringfence_model::interval::Bound;
use ringfence_model::{Action, AddrSet, CtStates, IntervalSet, Match, Ruleset};
use std::rc::Rc;

/// Most pieces a chain's effect keeps; rules of further kinds join the
/// piece of their protocol (or the last one).
const MAX_PIECES: usize = 6;

/// One piece of an effect: per header field, a set of values (a box: a
/// packet is inside when each field's value is in its set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Piece {
    src: AddrSet,
    dst: AddrSet,
    proto: IntervalSet<u8>,
    sport: IntervalSet<u16>,
    dport: IntervalSet<u16>,
}

impl Piece {
    /// The indexed fields of `m`, each cut to this piece's.
    fn cut(&self, m: &Match) -> Self {
        Self {
            src: AddrSet {
                v4: m.src.v4.intersect(&self.src.v4),
                v6: m.src.v6.intersect(&self.src.v6),
            },
            dst: AddrSet {
                v4: m.dst.v4.intersect(&self.dst.v4),
                v6: m.dst.v6.intersect(&self.dst.v6),
            },
            proto: m.protocol.intersect(&self.proto),
            sport: m.sport.intersect(&self.sport),
            dport: m.dport.intersect(&self.dport),
        }
    }

    /// Whether every indexed field of `m` is inside this piece's (the cut
    /// would change nothing).
    fn holds(&self, m: &Match) -> bool {
        m.src.v4.is_subset(&self.src.v4)
            && m.src.v6.is_subset(&self.src.v6)
            && m.dst.v4.is_subset(&self.dst.v4)
            && m.dst.v6.is_subset(&self.dst.v6)
            && m.protocol.is_subset(&self.proto)
            && m.sport.is_subset(&self.sport)
            && m.dport.is_subset(&self.dport)
    }

    /// Whether packet `p` is inside (addresses, protocol and ports).
    pub(super) fn admits(&self, p: &ringfence_model::Packet) -> bool {
        self.src.contains(p.src)
            && self.dst.contains(p.dst)
            && self.proto.contains(p.protocol)
            && self.sport.contains(p.sport)
            && self.dport.contains(p.dport)
    }

    /// Whether no packet is inside.
    fn is_empty(&self) -> bool {
        (self.src.v4.is_empty() && self.src.v6.is_empty())
            || (self.dst.v4.is_empty() && self.dst.v6.is_empty())
            || self.proto.is_empty()
            || self.sport.is_empty()
            || self.dport.is_empty()
    }
}

/// The packets a chain may act on: the union of its pieces (none: the
/// chain acts on no packet).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Effect {
    pieces: Vec<Piece>,
}

impl Effect {
    /// The pieces of `m` inside this effect (empty ones left out).
    fn cut(&self, m: &Match) -> Vec<Piece> {
        self.pieces
            .iter()
            .map(|p| p.cut(m))
            .filter(|p| !p.is_empty())
            .collect()
    }

    /// Whether one piece holds every packet of `m`'s indexed fields.
    fn holds(&self, m: &Match) -> bool {
        self.pieces.iter().any(|p| p.holds(m))
    }
}

/// Which piece a rule's sets join: rules of one kind share a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kind {
    /// The protocol when one, 256 for every protocol, 257 for several.
    proto: u16,
    /// Bits: source port tested, destination port tested, source
    /// addresses narrow, destination addresses narrow (see [`narrow`]).
    tests: u8,
}

impl Kind {
    fn of(
        src: &AddrSet,
        dst: &AddrSet,
        proto: &IntervalSet<u8>,
        sport: &IntervalSet<u16>,
        dport: &IntervalSet<u16>,
    ) -> Self {
        let proto = match proto.ranges() {
            _ if proto.is_full() => 256,
            [(lo, hi)] if lo == hi => u16::from(*lo),
            _ => 257,
        };
        let tests = u8::from(!sport.is_full())
            | u8::from(!dport.is_full()) << 1
            | u8::from(narrow(src)) << 2
            | u8::from(narrow(dst)) << 3;
        Self { proto, tests }
    }
}

/// Whether an address set holds at most half of each family's space
/// (a host or a network, not every address but one network).
fn narrow(a: &AddrSet) -> bool {
    u32::size(&a.v4) <= f64::from(1u32 << 31) && u128::size(&a.v6) <= 2f64.powi(127)
}

/// Ranges of one field gathered from many rules, made canonical once.
struct Acc<T: Bound>(Vec<(T, T)>);

impl<T: Bound> Acc<T> {
    fn add(&mut self, s: &IntervalSet<T>) {
        self.0.extend_from_slice(s.ranges());
    }

    fn set(self) -> IntervalSet<T> {
        IntervalSet::from_ranges(self.0)
    }
}

/// The source and destination ranges of one family that packets still
/// walking a chain can have (after the plain `RETURN`s above).
struct Alive<T: Bound> {
    src: IntervalSet<T>,
    dst: IntervalSet<T>,
}

impl<T: Bound> Alive<T> {
    fn full() -> Self {
        Self {
            src: IntervalSet::full(),
            dst: IntervalSet::full(),
        }
    }

    /// A `RETURN` holding for every packet with a source in `src` and a
    /// destination in `dst` (of this family): when one of the two is every
    /// address, the other range returns, whatever else the packet carries.
    fn returned(&mut self, src: &IntervalSet<T>, dst: &IntervalSet<T>) {
        if src.is_full() {
            self.dst = self.dst.difference(dst);
        } else if dst.is_full() {
            self.src = self.src.difference(src);
        }
    }

    /// Add `src` × `dst`, cut to what is still walking, to the gathered
    /// ranges (nothing when the cut leaves no packet of the family).
    fn add(
        &self,
        src: &IntervalSet<T>,
        dst: &IntervalSet<T>,
        acc_src: &mut Acc<T>,
        acc_dst: &mut Acc<T>,
    ) {
        if src.is_empty() || dst.is_empty() {
            return;
        }
        if self.src.is_full() && self.dst.is_full() {
            // Nothing returned yet (the common case): no cut to make.
            acc_src.add(src);
            acc_dst.add(dst);
            return;
        }
        let s = src.intersect(&self.src);
        let d = dst.intersect(&self.dst);
        if !s.is_empty() && !d.is_empty() {
            acc_src.add(&s);
            acc_dst.add(&d);
        }
    }
}

/// Whether `m` holds for every packet of its address, protocol and port
/// sets, at every stage: it tests nothing else.
fn plain(m: &Match) -> bool {
    // Every field by name: a field added to `Match` must be judged here.
    let Match {
        src: _,
        dst: _,
        protocol: _,
        sport: _,
        dport: _,
        iif,
        oif,
        ct_state,
        marks,
        extra,
        ct_nat,
        ct_orig,
        src_type,
        dst_type,
        iface_types,
        opaque,
    } = m;
    iif.is_any()
        && oif.is_any()
        && *ct_state == CtStates::ALL
        && marks.is_empty()
        && extra.is_none()
        && !ct_nat.is_test()
        && ct_orig.is_none()
        && !src_type.is_test()
        && !dst_type.is_test()
        && iface_types.is_none()
        && opaque.is_empty()
}

/// Whether the walk may fork at a rule with these compact flags: it may or
/// may not match (an opaque part, a rarer field the packet may not give,
/// a test on the connection's translations).
fn may_fork(q: &Quick) -> bool {
    q.flags & (Quick::OPAQUE | Quick::FIELDS | Quick::CONN) != 0
}

/// The chains' effects, computed on demand (targets of jumps only).
struct Effects<'r> {
    rs: &'r Ruleset,
    quick: &'r [Vec<Quick>],
    unknown: &'r [bool],
    marks_exact: bool,
    /// Per chain: not yet asked (`None`), being computed (`Some(None)`,
    /// a call loop when met again), or done.
    memo: Vec<Option<Option<Rc<Effect>>>>,
    /// Per chain whose effect is done: the longest chain of calls below it.
    height: Vec<usize>,
}

impl Effects<'_> {
    /// Chain `c`'s effect, or `None` when a call loop or a call stack
    /// deeper than the walk follows passes through it (the walk then
    /// forks, and nothing may be left out).
    /// (`depth`: how many calls down from where the question started; a
    /// path that long is a stack at least that deep.)
    fn of(&mut self, c: usize, depth: usize) -> Option<Rc<Effect>> {
        match &self.memo[c] {
            Some(Some(e)) => return Some(Rc::clone(e)),
            Some(None) => return None,
            None => {}
        }
        if depth > MAX_DEPTH {
            return None;
        }
        self.memo[c] = Some(None);
        let mut height = 0;
        let rs = self.rs;
        let mut pieces: Vec<PieceAcc> = Vec::new();
        let (mut alive4, mut alive6) = (Alive::<u32>::full(), Alive::<u128>::full());
        for (i, r) in rs.chains[c].rules.iter().enumerate() {
            let m = &r.matches;
            let fork = may_fork(&self.quick[c][i]);
            // What the rule may act on: nothing, its own match, or its
            // match cut to the pieces of what the chain it calls acts on.
            let mut cut = None;
            let acts = match &r.action {
                Action::Continue => false,
                Action::Mark(_) => self.marks_exact,
                Action::Accept | Action::Drop | Action::Reject { .. } | Action::Nat(_) => true,
                Action::Return => {
                    if !fork
                        && plain(m)
                        && m.protocol.is_full()
                        && m.sport.is_full()
                        && m.dport.is_full()
                    {
                        alive4.returned(&m.src.v4, &m.dst.v4);
                        alive6.returned(&m.src.v6, &m.dst.v6);
                    }
                    fork
                }
                Action::Jump { target } | Action::Goto { target } => {
                    if !self.unknown[target.0] {
                        // Walked even when the jump may fork: its depth
                        // and loops count.
                        let callee = self.of(target.0, depth + 1)?;
                        height = height.max(1 + self.height[target.0]);
                        if height > MAX_DEPTH {
                            return None;
                        }
                        if !fork && !callee.holds(m) {
                            cut = Some(callee.cut(m));
                        }
                    }
                    true
                }
            };
            if !acts {
                continue;
            }
            let mut add = |s: &AddrSet, d: &AddrSet, pr: &IntervalSet<u8>, sp, dp| {
                let kind = Kind::of(s, d, pr, sp, dp);
                let at = match pieces.iter().position(|p| p.kind == kind) {
                    Some(at) => at,
                    None if pieces.len() < MAX_PIECES => {
                        pieces.push(PieceAcc::new(kind));
                        pieces.len() - 1
                    }
                    // Full: the piece of the same protocol, or the last.
                    None => pieces
                        .iter()
                        .position(|p| p.kind.proto == kind.proto)
                        .unwrap_or(MAX_PIECES - 1),
                };
                let p = &mut pieces[at];
                alive4.add(&s.v4, &d.v4, &mut p.src4, &mut p.dst4);
                alive6.add(&s.v6, &d.v6, &mut p.src6, &mut p.dst6);
                p.proto.add(pr);
                p.sport.add(sp);
                p.dport.add(dp);
            };
            match &cut {
                Some(cut) => {
                    for e in cut {
                        add(&e.src, &e.dst, &e.proto, &e.sport, &e.dport);
                    }
                }
                None => add(&m.src, &m.dst, &m.protocol, &m.sport, &m.dport),
            }
        }
        let e = Effect {
            pieces: pieces
                .into_iter()
                .map(PieceAcc::piece)
                .filter(|p| !p.is_empty())
                .collect(),
        };
        let e = Rc::new(e);
        self.memo[c] = Some(Some(Rc::clone(&e)));
        self.height[c] = height;
        Some(e)
    }
}

/// One piece's ranges as they are gathered.
struct PieceAcc {
    kind: Kind,
    src4: Acc<u32>,
    dst4: Acc<u32>,
    src6: Acc<u128>,
    dst6: Acc<u128>,
    proto: Acc<u8>,
    sport: Acc<u16>,
    dport: Acc<u16>,
}

impl PieceAcc {
    fn new(kind: Kind) -> Self {
        Self {
            kind,
            src4: Acc(Vec::new()),
            dst4: Acc(Vec::new()),
            src6: Acc(Vec::new()),
            dst6: Acc(Vec::new()),
            proto: Acc(Vec::new()),
            sport: Acc(Vec::new()),
            dport: Acc(Vec::new()),
        }
    }

    fn piece(self) -> Piece {
        Piece {
            src: AddrSet {
                v4: self.src4.set(),
                v6: self.src6.set(),
            },
            dst: AddrSet {
                v4: self.dst4.set(),
                v6: self.dst6.set(),
            },
            proto: self.proto.set(),
            sport: self.sport.set(),
            dport: self.dport.set(),
        }
    }
}

/// The number of values of a field (as a float: an IPv6 set may hold 2^128).
trait Size: Bound {
    fn size(s: &IntervalSet<Self>) -> f64;
    /// How many values lie from `lo` to `hi` (`lo <= hi`), less one.
    fn span(lo: Self, hi: Self) -> f64;
}

macro_rules! impl_size {
    ($($t:ty),*) => {$(
        impl Size for $t {
            fn size(s: &IntervalSet<Self>) -> f64 {
                s.ranges().iter().map(|&(lo, hi)| (hi - lo) as f64 + 1.0).sum()
            }
            fn span(lo: Self, hi: Self) -> f64 {
                (hi - lo) as f64
            }
        }
    )*};
}

/// The fewest address ranges [`fit`] leaves a jump's cut per family and
/// field.
const MIN_RANGES: usize = 4;

/// `s` in at most `n` ranges: the narrowest gaps between its ranges
/// filled (a superset of `s`).
fn coarse<T: Size>(s: IntervalSet<T>, n: usize) -> IntervalSet<T> {
    let r = s.ranges();
    if r.len() <= n {
        return s;
    }
    // Gap `i` lies between ranges `i` and `i + 1`; the widest `n - 1`
    // stay open (ties: the first).
    let mut gaps: Vec<(f64, usize)> = (0..r.len() - 1)
        .map(|i| (T::span(r[i].1, r[i + 1].0), i))
        .collect();
    gaps.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut open = vec![false; r.len() - 1];
    for &(_, i) in gaps.iter().take(n.saturating_sub(1)) {
        open[i] = true;
    }
    let mut out = Vec::with_capacity(n);
    let mut start = r[0].0;
    for i in 0..r.len() - 1 {
        if open[i] {
            out.push((start, r[i].1));
            start = r[i + 1].0;
        }
    }
    out.push((start, r[r.len() - 1].1));
    IntervalSet::from_ranges(out)
}
impl_size!(u8, u16, u32, u128);

/// Take `cut` for the field `own` of a jump when it leaves at most half of
/// its values (setting `any`): a cut that removes little would only add a
/// table to the caller's lookups (a zone chain with a rule on every
/// address but one network still acts on nearly every destination). The
/// jump's own set is kept otherwise, which leaves out fewer jumps, never
/// one that could act.
fn worth<T: Size>(own: &mut IntervalSet<T>, cut: IntervalSet<T>, any: &mut bool) {
    if !own.is_empty() && (cut.is_empty() || T::size(&cut) <= T::size(own) / 2.0) {
        *own = cut;
        *any = true;
    }
}

/// A jump cut to its target's effect: its rule number and the matches, one
/// per piece, the rule tables index in place of its own.
pub(super) type CutJump = (usize, Vec<Match>);

/// One chain's effect as its pieces (`None`: not known).
pub(super) type ChainPieces = Option<Box<[Piece]>>;

/// Per chain: the jumps whose match their target's effect cuts, as (rule
/// number, ascending; the matches the chain's rule tables should index in
/// place of the rule's own, one per piece, none when the target acts on
/// no packet the jump takes); the whole result `None` when the ruleset has
/// a call loop or a call stack deeper than the walk follows (the walk
/// forks there, and nothing may be left out). With them, per chain, the
/// pieces of its effect (`None` for a target the model cannot follow).
/// `quick` and `unknown` are the tracer's compact matches and unknown
/// targets; `marks_exact` whether mark rewrites are followed.
pub(super) fn narrowed(
    rs: &Ruleset,
    quick: &[Vec<Quick>],
    unknown: &[bool],
    marks_exact: bool,
) -> Option<(Vec<Vec<CutJump>>, Vec<ChainPieces>)> {
    let mut fx = Effects {
        rs,
        quick,
        unknown,
        marks_exact,
        memo: vec![None; rs.chains.len()],
        height: vec![0; rs.chains.len()],
    };
    // Any loop or over-deep stack anywhere: no cut at all (the depth a
    // chain is entered at depends on its callers).
    for c in 0..rs.chains.len() {
        fx.of(c, 0)?;
    }
    let out = rs
        .chains
        .iter()
        .enumerate()
        .map(|(c, chain)| {
            chain
                .rules
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    let Action::Jump { target } = r.action else {
                        return None;
                    };
                    if unknown[target.0] || may_fork(&quick[c][i]) {
                        return None;
                    }
                    let callee = fx.of(target.0, 0)?;
                    if callee.holds(&r.matches) {
                        return None;
                    }
                    let mut cuts: Vec<Match> = Vec::new();
                    for cut in callee.cut(&r.matches) {
                        let mut m = r.matches.clone();
                        let mut any = false;
                        worth(&mut m.src.v4, cut.src.v4, &mut any);
                        worth(&mut m.src.v6, cut.src.v6, &mut any);
                        worth(&mut m.dst.v4, cut.dst.v4, &mut any);
                        worth(&mut m.dst.v6, cut.dst.v6, &mut any);
                        worth(&mut m.protocol, cut.proto, &mut any);
                        worth(&mut m.sport, cut.sport, &mut any);
                        worth(&mut m.dport, cut.dport, &mut any);
                        if !any {
                            // This piece takes the whole jump: no cut.
                            return None;
                        }
                        if !cuts.contains(&m) {
                            cuts.push(m);
                        }
                    }
                    Some((i, cuts))
                })
                .collect::<Vec<_>>()
        })
        .map(|mut cuts| {
            fit(&mut cuts);
            cuts
        })
        .collect();
    // Every chain's effect is known here (a loop returned above).
    let pieces = (0..rs.chains.len())
        .map(|c| {
            (!unknown[c])
                .then(|| fx.of(c, 0).map(|e| e.pieces.clone().into_boxed_slice()))
                .flatten()
        })
        .collect();
    Some((out, pieces))
}

/// Coarsen the address sets of one chain's cut jumps so its rule tables
/// keep every field: a caller's tables hold one interval per range start
/// and end of every entry, with a row as wide as its entries, and a field
/// whose table would pass [`FIELD_BYTES`] is dropped (which would lose
/// every jump's address cut). A zone chain's piece of single hosts adds a
/// hundred intervals for each of a thousand jumps. Each cut keeps at most
/// as many ranges per family and field as half the budget allows spread
/// over the entries (at least [`MIN_RANGES`]), the narrowest gaps filled.
fn fit(cuts: &mut [CutJump]) {
    let entries: usize = cuts.iter().map(|(_, v)| v.len()).sum();
    if entries == 0 {
        return;
    }
    let ranges =
        |f: fn(&Match) -> usize| -> usize { cuts.iter().flat_map(|(_, v)| v).map(f).sum() };
    let wanted = [
        ranges(|m| m.src.v4.ranges().len()),
        ranges(|m| m.dst.v4.ranges().len()),
        ranges(|m| m.src.v6.ranges().len()),
        ranges(|m| m.dst.v6.ranges().len()),
    ];
    // Rows as wide as the chain's entries (its other rules count too, but
    // a chain with cut jumps is mostly jumps).
    let words = (entries + 64).div_ceil(64);
    let row_bytes = 8 * (words + words.div_ceil(64));
    let budget = FIELD_BYTES / 2 / row_bytes / 2;
    let most = (budget / entries).max(MIN_RANGES);
    for (f, &n) in wanted.iter().enumerate() {
        if n <= budget {
            continue;
        }
        for m in cuts.iter_mut().flat_map(|(_, v)| v.iter_mut()) {
            match f {
                0 => m.src.v4 = coarse(std::mem::take(&mut m.src.v4), most),
                1 => m.dst.v4 = coarse(std::mem::take(&mut m.dst.v4), most),
                2 => m.src.v6 = coarse(std::mem::take(&mut m.src.v6), most),
                _ => m.dst.v6 = coarse(std::mem::take(&mut m.dst.v6), most),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Tracer;
    use ringfence_model::{ChainId, IntervalSet, Match, Ruleset};

    fn ruleset(text: &str) -> Ruleset {
        ringfence_parse::parse_ruleset(text, "t.rules", ringfence_parse::RulesetFormat::Auto)
            .expect("parses")
    }

    fn v4(s: &str) -> u32 {
        u32::from(s.parse::<std::net::Ipv4Addr>().expect("IPv4"))
    }

    /// The cut matches of chain `name`'s rules, one per piece (`None`:
    /// the rule's own).
    fn cuts_of(rs: &Ruleset, name: &str) -> Option<Vec<Option<Vec<Match>>>> {
        let n = rs
            .chains
            .iter()
            .find(|c| c.name == name)
            .expect("chain")
            .rules
            .len();
        let t = Tracer::new(rs);
        let c = rs
            .chains
            .iter()
            .position(|c| c.name == name)
            .expect("chain");
        super::narrowed(rs, &t.quick, &t.unknown, t.marks.exact()).map(|(mut v, _)| {
            let mut all = vec![None; n];
            for (i, m) in v.swap_remove(c) {
                all[i] = Some(m);
            }
            all
        })
    }

    #[test]
    fn a_jump_is_cut_to_what_its_target_acts_on_after_one_field_returns() {
        let rs = ruleset(
            "*filter\n:FORWARD DROP [0:0]\n:ZONE - [0:0]\n:QUIET - [0:0]\n\
             -A FORWARD -s 10.0.0.0/16 -j ZONE\n\
             -A FORWARD -s 10.1.0.0/16 -j QUIET\n\
             -A ZONE ! -d 172.16.0.0/14 -j RETURN\n\
             -A ZONE -p udp -m udp --dport 53 -j RETURN\n\
             -A ZONE -j LOG\n\
             -A ZONE -d 172.16.1.0/24 -p tcp -m tcp --dport 443 -j ACCEPT\n\
             -A ZONE ! -d 172.17.0.0/24 -p tcp -m tcp --dport 22 -j DROP\n\
             -A QUIET -d 172.16.0.0/24 -j RETURN\n\
             -A QUIET -j LOG\n\
             COMMIT\n",
        );
        let cuts = cuts_of(&rs, "FORWARD").expect("no loop");
        let zone = cuts[0].as_ref().expect("the jump to ZONE is cut");
        // Two pieces: the accept on one network and the drop on every
        // address but one network stay apart. Source as the jump says;
        // destination inside 172.16.0.0/14 (the guard returns every other
        // address); each piece its own port.
        assert_eq!(zone.len(), 2, "{zone:?}");
        for m in zone {
            assert_eq!(
                m.src.v4,
                IntervalSet::range(v4("10.0.0.0"), v4("10.0.255.255"))
            );
            assert_eq!(m.protocol, IntervalSet::single(6));
        }
        assert_eq!(
            zone[0].dst.v4,
            IntervalSet::range(v4("172.16.1.0"), v4("172.16.1.255"))
        );
        assert_eq!(zone[0].dport, IntervalSet::single(443));
        let wide = IntervalSet::range(v4("172.16.0.0"), v4("172.16.255.255"))
            .union(&IntervalSet::range(v4("172.17.1.0"), v4("172.19.255.255")));
        assert_eq!(zone[1].dst.v4, wide);
        assert_eq!(zone[1].dport, IntervalSet::single(22));
        // A chain that only returns and logs acts on nothing: no entry.
        let quiet = cuts[1].as_ref().expect("the jump to QUIET is cut");
        assert!(quiet.is_empty(), "{quiet:?}");
        assert_eq!(Tracer::new(&rs).cut_jumps(), 2);
    }

    #[test]
    fn udp_and_other_ports_skip_a_zone_whose_rules_test_tcp_ports_and_single_hosts() {
        // A zone of host-and-port accepts, a drop on every address but one
        // network, and UDP port ranges: one field at a time, each field
        // is nearly whole; as pieces, DNS to a host outside them is not.
        let rs = ruleset(
            "*filter\n:FORWARD DROP [0:0]\n:ZONE - [0:0]\n\
             -A FORWARD -s 10.0.0.0/16 -j ZONE\n\
             -A ZONE -d 172.16.1.5/32 -p tcp -m tcp --dport 443 -j ACCEPT\n\
             -A ZONE -d 172.18.9.7/32 -p tcp -m tcp --dport 22 -j ACCEPT\n\
             -A ZONE ! -d 172.17.0.0/24 -p tcp -m tcp --dport 5432 -j REJECT\n\
             -A ZONE -d 172.19.4.4/32 -p udp -m udp --dport 30000:30100 -j ACCEPT\n\
             -A ZONE -d 172.16.2.0/24 -j DROP\n\
             COMMIT\n",
        );
        let zone = cuts_of(&rs, "FORWARD").expect("no loop")[0]
            .clone()
            .expect("cut");
        assert_eq!(zone.len(), 4, "{zone:?}");
        let inside = |dst: &str, proto: u8, dport: u16| {
            zone.iter().any(|m| {
                m.dst.v4.contains(v4(dst)) && m.protocol.contains(proto) && m.dport.contains(dport)
            })
        };
        // Each rule's packets are inside some piece...
        assert!(inside("172.16.1.5", 6, 443));
        assert!(inside("172.18.9.7", 6, 22));
        assert!(inside("8.8.8.8", 6, 5432));
        assert!(inside("172.19.4.4", 17, 30050));
        assert!(inside("172.16.2.9", 1, 0));
        // ...and DNS, or a TCP port no rule names, to another host is not.
        assert!(!inside("172.18.9.8", 17, 53));
        assert!(!inside("172.18.9.8", 6, 53));
        assert!(!inside("172.18.9.8", 17, 30050));
    }

    #[test]
    fn coarse_keeps_at_most_n_ranges_and_every_value() {
        let mut r = ringfence_testkit::Rng::from_state(0x853c_49e6_748f_ea9b);
        for _ in 0..300 {
            let k = 1 + r.below(40) as usize;
            let set = IntervalSet::from_ranges((0..k).map(|_| {
                let a = r.below(1 << 32) as u32;
                (a, a.saturating_add(r.below(1000) as u32))
            }));
            for n in [1usize, 2, 4, 7] {
                let c = super::coarse(set.clone(), n);
                assert!(c.ranges().len() <= n.max(1), "{n}: {c:?}");
                assert!(set.is_subset(&c), "{set:?} ⊄ {c:?}");
                if set.ranges().len() <= n {
                    assert_eq!(c, set);
                }
                // The hull is the same: nothing outside the set's span.
                assert_eq!(
                    c.ranges().first().map(|x| x.0),
                    set.ranges().first().map(|x| x.0)
                );
                assert_eq!(
                    c.ranges().last().map(|x| x.1),
                    set.ranges().last().map(|x| x.1)
                );
            }
        }
    }

    #[test]
    fn jumps_that_may_fork_or_reach_an_unknown_target_or_a_mark_are_not_cut() {
        let rs = ruleset(
            "*mangle\n:PREROUTING ACCEPT [0:0]\n:M - [0:0]\n\
             -A PREROUTING -j M\n\
             -A M -d 172.16.0.0/24 -j MARK --set-xmark 0x1/0xff\n\
             COMMIT\n\
             *filter\n:FORWARD DROP [0:0]\n:ZONE - [0:0]\n:ODD - [0:0]\n\
             -A FORWARD -m mark --mark 0x1/0xff -j ACCEPT\n\
             -A FORWARD -m statistic --mode random --probability 0.5 -j ZONE\n\
             -A FORWARD -j ODD\n\
             -A ZONE -d 172.16.0.0/24 -j ACCEPT\n\
             -A ODD -m limit --limit 5/min -j RETURN\n\
             COMMIT\n",
        );
        // The jump to M is cut to the marked destination; the jump that
        // may or may not match is left whole, and so is one to a chain
        // whose RETURN may or may not match (it forks the walk).
        let m = cuts_of(&rs, "mangle:PREROUTING").expect("no loop");
        let cut = m[0].as_ref().expect("cut to the marked range");
        assert_eq!(cut.len(), 1);
        assert_eq!(
            cut[0].dst.v4,
            IntervalSet::range(v4("172.16.0.0"), v4("172.16.0.255"))
        );
        let f = cuts_of(&rs, "FORWARD").expect("no loop");
        assert!(f[1].is_none() && f[2].is_none(), "{f:?}");
    }

    #[test]
    fn a_one_packet_tracer_cuts_no_jump_and_traces_the_same() {
        let rs = ruleset(
            "*filter\n:FORWARD DROP [0:0]\n:ZONE - [0:0]\n\
             -A FORWARD -s 10.0.0.0/16 -j ZONE\n\
             -A FORWARD -p udp -m statistic --mode random --probability 0.5 -j ACCEPT\n\
             -A ZONE -d 172.16.1.5/32 -p tcp -m tcp --dport 443 -j ACCEPT\n\
             -A ZONE -d 172.16.2.0/24 -j DROP\n\
             COMMIT\n",
        );
        let batch = Tracer::for_host(&rs, None);
        let one = Tracer::for_one_packet(&rs, None);
        assert_eq!(batch.cut_jumps(), 1);
        assert_eq!(one.cut_jumps(), 0);
        for (dst, proto, dport) in [
            ("172.16.1.5", 6, 443),
            ("172.16.2.9", 6, 22),
            ("172.16.2.9", 17, 53),
            ("172.18.0.1", 17, 53),
            ("172.18.0.1", 6, 443),
        ] {
            let p = ringfence_model::Packet::new_connection(
                "10.0.3.4".parse().expect("address"),
                dst.parse().expect("address"),
                proto,
                40000,
                dport,
            );
            let hook = ringfence_model::Hook::Forward;
            assert_eq!(
                batch.trace(hook, &p),
                one.trace(hook, &p),
                "{dst} {proto} {dport}"
            );
        }
    }

    #[test]
    fn a_call_loop_cuts_nothing() {
        let mut rs = ruleset(
            "*filter\n:FORWARD DROP [0:0]\n:A - [0:0]\n:B - [0:0]\n\
             -A FORWARD -j A\n-A A -j B\n-A B -d 172.16.0.0/24 -j ACCEPT\n\
             COMMIT\n",
        );
        assert!(cuts_of(&rs, "FORWARD").is_some());
        // B jumps back to A: the kernel refuses it, the walk forks there.
        let a = rs.chains.iter().position(|c| c.name == "A").expect("A");
        let b = rs.chains.iter().position(|c| c.name == "B").expect("B");
        let mut back = rs.chains[b].rules[0].clone();
        back.action = ringfence_model::Action::Jump { target: ChainId(a) };
        rs.chains[b].rules.insert(0, back);
        assert!(cuts_of(&rs, "FORWARD").is_none());
        assert_eq!(Tracer::new(&rs).cut_jumps(), 0);
    }
}
