//! The exact packet-space engine.
//!
//! Each chain is compiled once into a *plan*: an ordered list of boxes, each
//! with a fate (accept, drop, reject, unknown, return, "skip to position k",
//! or "fork": both continue at the rule's action and skip past it). A
//! packet's fate in the chain is the fate of the first box containing it; at
//! a fork box (a rule that may or may not match) it takes both ways, so a
//! packet can have several outcomes, one per branch. A jump inlines the target's plan cut down to the jump rule's box, with
//! the target's returns turned into skips past the inlined part; a goto inlines
//! it with returns kept (they return from the calling chain, iptables
//! semantics) and closes with a return box for whatever the target did not
//! decide. Each chain's plan is computed once however many rules jump to it.
//!
//! Region queries walk a plan with a list of fragments, each tagged with the
//! position it resumes at (and the first fork it went through); fragments
//! are disjoint until a fork copies one into its two branches. A destination
//! index limits the walk to the boxes that can meet the query. Nothing ever builds the complement of a
//! large union unless a query asks for it, and every walk has a fragment budget:
//! a query over budget says so instead of answering wrongly.

mod anomaly;
mod excess;
pub(crate) mod pool;
mod summary;

pub use anomaly::{Anomalies, Anomaly, DeadReason, RuleAnomaly};
pub(crate) use anomaly::{ContextOpts, Seen};
pub use excess::ExcessSearch;

use crate::index::{Blocked, DstIndex, Hull};
use crate::space::ISet;
use crate::space::{match_boxes, IfaceUniverse, Locals, PBox, Stage};
use ringfence_model::{Action, ChainId, CtStates, Hook, Policy, RuleRef, Ruleset};

/// Path of `(chain, rule)` keys; rule `u32::MAX` stands for the chain policy.
pub type Path = smallvec::SmallVec<[(u32, u32); 3]>;

/// What a plan box does with the packets in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Accepted by this chain.
    Accept,
    /// Dropped.
    Drop,
    /// Rejected.
    Reject,
    /// Reached a target the model cannot follow (DNAT, REDIRECT, a queue,
    /// an unknown extension) or a jump loop: anything may happen.
    Unknown,
    /// Falls back to the caller (or the base chain's policy).
    Return,
    /// Continues at this plan position (the rest of an inlined jump target is skipped).
    Skip(u32),
    /// A rule that may or may not match (an opaque match): the packets take
    /// both branches, one continuing at the first position (the rule's
    /// action, compiled as if it matched), one at the second (past the
    /// rule's action: it did not match).
    Fork(u32, u32),
    /// A mark rewrite (the `(chain, rule)` whose [`Action::Mark`] it is):
    /// its packets continue at the next position with their marks rewritten.
    Mark(u32, u32),
    /// An address translation (the `(chain, rule)` whose [`Action::Nat`]
    /// it is): it ends the base chain for its packets as an accept does,
    /// and they go on to the next base chain translated.
    Nat(u32, u32),
}

/// The traversal name of the loopback leg: a packet the host sent to
/// itself, back from `lo` on the input path's chains (no path a packet
/// takes starts at prerouting, so the name is free). Its stages hide the
/// output interface and nothing else: the packet carries its connection,
/// so a chain before conntrack reads its state too.
pub const LOOPED: Hook = Hook::Prerouting;

/// The stage of base chain `c` on the loopback leg (see [`LOOPED`]).
/// The chains a walk from chain `c` can enter: `c` and every chain its
/// jumps and gotos reach.
fn reachable(rs: &Ruleset, c: usize) -> Vec<usize> {
    let mut seen = vec![false; rs.chains.len()];
    let mut todo = vec![c];
    let mut out = Vec::new();
    while let Some(x) = todo.pop() {
        if std::mem::replace(&mut seen[x], true) {
            continue;
        }
        out.push(x);
        for r in &rs.chains[x].rules {
            if let Action::Jump { target } | Action::Goto { target } = r.action {
                todo.push(target.0);
            }
        }
    }
    out
}

fn looped_stage(rs: &Ruleset, c: usize) -> Stage {
    rs.chains[c]
        .base
        .as_ref()
        .map(|b| {
            Stage::of(
                Hook::Input,
                b.hook,
                b.runs_at().max(crate::space::CONNTRACK_PRIORITY),
            )
        })
        .unwrap_or_default()
}

/// The base chains of a path that routing splits after prerouting (see
/// [`Engine::split_route`]).
#[derive(Debug, Clone)]
pub struct SplitRoute {
    /// The prerouting chains, in order.
    pub pre: Vec<ChainId>,
    /// The input chains, for packets to one of the host's addresses.
    pub input: Vec<ChainId>,
    /// The forward and postrouting chains, for the others.
    pub fwd: Vec<ChainId>,
}

/// Whether a rule may or may not match: it has a match the model cannot
/// evaluate, it tests marks where marks are not exact fields, or it tests
/// something the model decides only for some packets (an address type,
/// the original tuple: [`crate::space::match_undecided`]).
pub fn may_match(m: &ringfence_model::Match, u: &IfaceUniverse) -> bool {
    !m.opaque.is_empty()
        || (!m.marks.is_empty() && !u.marks.exact())
        || crate::space::match_undecided(m, u)
}

/// A branch of a region query between base chains: the packets, the path
/// so far, and the first rule on their way that may or may not match.
type Branch = (PBox, Path, Option<(u32, u32)>);

/// No fork met yet (see [`Frag::fork`]).
pub const NO_FORK: u32 = u32::MAX;

/// A fragment of a region query: packets that resume at a plan position.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frag {
    /// The packets.
    pub b: PBox,
    /// The plan position they resume at (when decided: the deciding position).
    pub pos: u32,
    /// The plan position of the first fork box these packets went through
    /// in this walk, or [`NO_FORK`]. Packets that met no fork have exactly
    /// one branch; packets that did may have others.
    pub fork: u32,
}

impl Frag {
    /// Packets at `pos` that met no fork.
    pub fn new(b: PBox, pos: u32) -> Self {
        Self {
            b,
            pos,
            fork: NO_FORK,
        }
    }
}

/// How a walk treats fork boxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forks {
    /// Follow both branches (the real semantics).
    Branch,
    /// A fork box decides its packets like any other box: finds, for each
    /// packet, the first box where its branches may part.
    Decide,
}

/// One plan box.
#[derive(Debug, Clone)]
pub struct Piece {
    /// The packets.
    pub b: PBox,
    /// Their fate.
    pub fate: Fate,
    /// The rules that lead here: the rule in this chain first, then inside jump targets.
    pub path: Path,
}

/// A compiled chain.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Boxes in first-match order.
    pub pieces: Vec<Piece>,
    /// Per rule of the chain: the plan positions `[start, end)` it produced.
    pub spans: Vec<(u32, u32)>,
    /// Per rule: the boxes of its own match.
    pub rule_boxes: Vec<crate::space::Boxes>,
    /// Boxes with a narrow destination hull (a host, a subnet), by that hull.
    index: DstIndex,
    /// Boxes with a wide destination hull (a negated or missing
    /// destination) by every field's hull; built on first use.
    wide: std::sync::OnceLock<Blocked>,
    /// Every box by every field's hull, for wide queries (which the
    /// destination index would answer with nearly every box); built on
    /// first use.
    all: std::sync::OnceLock<Blocked>,
    /// Every box's narrowed hulls, by position, and what goes with them;
    /// built on first use.
    keys: std::sync::OnceLock<PlanKeys>,
}

/// What the quick tests of walks and searches read of a plan.
#[derive(Debug, Clone)]
struct PlanKeys {
    /// The port classes of the tags.
    classes: PortClasses,
    /// Every box's key, by position.
    boxes: Vec<BoxKey>,
    /// Every box's tag again, in a dense array of its own (the walk's
    /// first pass over its candidates reads only the tag: 8 bytes a box
    /// instead of a whole key).
    tags: Vec<u64>,
    /// The tag lanes a walk through the plan can change: the mark lanes
    /// when some box rewrites marks (a fragment it rewrites meets boxes
    /// of marks it did not enter with), else none.
    rewritten: u64,
    /// One bit per position: set where a skip or a fork's branch from an
    /// earlier position lands after it (a packet may pass it over).
    passed_over: Vec<u64>,
}

/// Destination hulls narrower than this are looked up by destination,
/// wider ones by every field at once.
const NARROW_DST: u128 = 1 << 16;

fn is_narrow(b: &PBox) -> bool {
    let (lo, hi) = hull(b);
    hi - lo < NARROW_DST
}

impl Plan {
    /// Every box's [`BoxKey`], by plan position: scans that test many
    /// fragments against the same boxes read these few bytes instead of
    /// each box's sets.
    pub(crate) fn keys(&self) -> &[BoxKey] {
        &self.keyed().boxes
    }

    /// The [`FragKey`] of a region walked through this plan (its tag in
    /// the plan's port classes).
    pub(crate) fn frag_key(&self, b: &PBox) -> FragKey {
        FragKey::of(b, &self.keyed().classes)
    }

    fn keyed(&self) -> &PlanKeys {
        self.keys.get_or_init(|| {
            let classes = PortClasses::of(self.pieces.iter().map(|p| &p.b));
            let boxes: Vec<BoxKey> = self
                .pieces
                .iter()
                .map(|p| BoxKey::of(&p.b, &classes))
                .collect();
            let tags = boxes.iter().map(|k| k.tag).collect();
            let marks = self.pieces.iter().any(|p| matches!(p.fate, Fate::Mark(..)));
            // Positions strictly between each skip or fork and where it
            // sends packets, by a running count of the spans open there.
            let n = self.pieces.len();
            let mut opens = vec![0i32; n + 1];
            for (r, p) in self.pieces.iter().enumerate() {
                let to = match p.fate {
                    Fate::Skip(k) => k,
                    Fate::Fork(m, k) => m.max(k),
                    _ => continue,
                };
                let to = (to as usize).min(n);
                if to > r + 1 {
                    opens[r + 1] += 1;
                    opens[to] -= 1;
                }
            }
            let mut passed_over = vec![0u64; n.div_ceil(64)];
            let mut open = 0;
            for (q, d) in opens[..n].iter().enumerate() {
                open += d;
                if open > 0 {
                    passed_over[q / 64] |= 1 << (q % 64);
                }
            }
            PlanKeys {
                classes,
                boxes,
                tags,
                rewritten: if marks { MARK_LANES } else { 0 },
                passed_over,
            }
        })
    }

    /// Whether some box of the plan rewrites marks.
    pub(crate) fn rewrites_marks(&self) -> bool {
        self.keyed().rewritten != 0
    }

    /// Whether a packet may pass position `q` over: a skip or a fork's
    /// branch at an earlier position sends packets past it. Where none
    /// does, a packet that gets beyond `q` got to `q` first.
    pub(crate) fn passed_over(&self, q: u32) -> bool {
        let q = q as usize;
        self.keyed().passed_over[q / 64] & (1 << (q % 64)) != 0
    }

    fn tree(&self, wide_only: bool) -> Blocked {
        Blocked::build(
            self.pieces
                .iter()
                .enumerate()
                .filter(|(_, p)| !wide_only || !is_narrow(&p.b))
                .map(|(i, p)| (p.b.fam, Hull::of(&p.b), i as u32)),
        )
    }

    /// Append to `out` the positions whose box may meet `b` (a superset of
    /// those that do, each once; unsorted).
    fn query_into(&self, b: &PBox, out: &mut Vec<u32>) {
        self.query_below(b, u32::MAX, out);
    }

    /// The tree that holds the boxes a query by a box of this hull must
    /// ask (besides the destination index, for a narrow one).
    fn tree_for(&self, narrow: bool) -> &Blocked {
        if narrow {
            self.wide.get_or_init(|| self.tree(true))
        } else {
            self.all.get_or_init(|| self.tree(false))
        }
    }

    /// [`Plan::query_into`] for the positions below `below` only: a walk
    /// that stops at a box passes over the rest of the plan in the index.
    fn query_below(&self, b: &PBox, below: u32, out: &mut Vec<u32>) {
        let (lo, hi) = hull(b);
        let narrow = hi - lo < NARROW_DST;
        if narrow {
            self.index.query_below(b.fam, lo, hi, below, out);
        }
        self.tree_for(narrow)
            .query_below(b.fam, &Hull::of(b), below, out);
    }
}

/// A pivot box with the excess outcomes found at it
/// ([`Engine::accepted_beyond_pieces`]).
pub type PieceOutcomes = (PBox, Vec<Outcome>);

/// The walk produced more fragments than its budget allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget;

/// The priority of nat on prerouting (and output), where conntrack
/// translates a connection's later packets.
pub const NAT_DST_PRIORITY: i32 = -100;

/// Default fragment budget of one walk.
pub const DEFAULT_BUDGET: usize = 200_000;

/// Most fragment-box comparisons one walk may make before it gives up.
pub const WORK_LIMIT: usize = 32_000_000;

/// A region with the fate one branch of the path gives it.
///
/// [`Engine::classify`] covers its region with outcomes; packets that meet
/// no rule the model may or may not match (no fork) are in exactly one
/// outcome (`fork: None`). Packets that do are in one outcome per branch, so
/// such outcomes overlap; [`settle`] turns them into disjoint regions with
/// every outcome their packets can have.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The packets.
    pub b: PBox,
    /// Accept, Drop, Reject or Unknown.
    pub fate: Fate,
    /// The rules that decided, through every base chain on the hook.
    pub path: Path,
    /// The first rule on the packets' way that may or may not match (the
    /// rule where their branches part), as a `(chain, rule)` key; `None`
    /// when there is none and this is the packets' only outcome.
    pub fork: Option<(u32, u32)>,
    /// The translations a rule applied to the packets on this branch (`b`
    /// names them as they entered); `None`: none.
    pub xlat: Option<Xlat>,
}

/// The address translations one branch applied to a connection's first
/// packets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Xlat {
    /// The destination and port the packets are delivered to after a rule
    /// translated their destination (DNAT, REDIRECT; one address unless the
    /// rule names a range); `None`: delivered as addressed.
    pub dnat: Option<(ISet<u128>, ISet<u16>)>,
    /// Whether a rule translated their source (SNAT, MASQUERADE).
    pub snat: bool,
}

impl Xlat {
    /// The translated destination of an ending, if any.
    pub fn dnat_of(x: &Option<Xlat>) -> Option<&(ISet<u128>, ISet<u16>)> {
        x.as_ref().and_then(|x| x.dnat.as_ref())
    }
}

/// One branch's ending: its fate, the rules that decided it, and the
/// translations on the way.
pub type Ending = (Fate, Path, Option<Xlat>);

/// A region whose packets all have the same possible outcomes.
#[derive(Debug, Clone)]
pub struct Settled {
    /// The packets.
    pub b: PBox,
    /// Every branch's fate and deciding path (one entry when the packets
    /// meet no fork).
    pub outcomes: smallvec::SmallVec<[Ending; 1]>,
    /// The first rule on the packets' way that may or may not match.
    pub fork: Option<(u32, u32)>,
}

impl Settled {
    /// Every branch accepts.
    pub fn all_accept(&self) -> bool {
        self.outcomes.iter().all(|(f, _, _)| *f == Fate::Accept)
    }

    /// Every branch drops or rejects.
    pub fn all_blocked(&self) -> bool {
        self.outcomes
            .iter()
            .all(|(f, _, _)| matches!(f, Fate::Drop | Fate::Reject))
    }

    /// Some branch accepts, or ends in a fate the model cannot follow.
    pub fn may_accept(&self) -> bool {
        self.outcomes
            .iter()
            .any(|(f, _, _)| matches!(f, Fate::Accept | Fate::Unknown))
    }
}

/// Disjoint regions with every outcome their packets can have, from the
/// (possibly overlapping, one per branch) outcomes of [`Engine::classify`].
/// Outcomes without a fork are their packets' only outcome and pass through
/// unchanged. The others are grouped by box (a fork's branches usually end
/// on the very same packets), groups whose boxes overlap no other pass
/// through too, and only groups that overlap are overlaid. Over budget when
/// the overlay needs more than `budget` regions or [`WORK_LIMIT`]
/// comparisons.
pub fn settle(outcomes: Vec<Outcome>, budget: usize) -> Result<Vec<Settled>, OverBudget> {
    let mut out = Vec::with_capacity(outcomes.len());
    // Forked outcomes grouped by their exact box.
    let mut groups: Vec<Settled> = Vec::new();
    let mut by_box: rustc_hash::FxHashMap<PBox, usize> = rustc_hash::FxHashMap::default();
    for o in outcomes {
        let Some(fork) = o.fork else {
            out.push(Settled {
                b: o.b,
                outcomes: smallvec::smallvec![(o.fate, o.path, o.xlat)],
                fork: None,
            });
            continue;
        };
        let branch = (o.fate, o.path, o.xlat);
        match by_box.get(&o.b) {
            Some(&g) => {
                if !groups[g].outcomes.contains(&branch) {
                    groups[g].outcomes.push(branch);
                }
            }
            None => {
                by_box.insert(o.b.clone(), groups.len());
                groups.push(Settled {
                    b: o.b,
                    outcomes: smallvec::smallvec![branch],
                    fork: Some(fork),
                });
            }
        }
    }
    drop(by_box);
    // Groups whose boxes overlap, as connected components (union-find over
    // the pairs a destination index proposes).
    let index = DstIndex::build(groups.iter().enumerate().map(|(i, g)| {
        let (lo, hi) = hull(&g.b);
        (g.b.fam, lo, hi, i as u32)
    }));
    let mut parent: Vec<usize> = (0..groups.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut work = 0usize;
    let mut cands = Vec::new();
    for i in 0..groups.len() {
        let (lo, hi) = hull(&groups[i].b);
        cands.clear();
        index.query_into(groups[i].b.fam, lo, hi, &mut cands);
        work += cands.len();
        if work > WORK_LIMIT {
            return Err(OverBudget);
        }
        for &j in &cands {
            let j = j as usize;
            if j > i && groups[i].b.overlaps(&groups[j].b) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
    }
    let mut members: Vec<Vec<Settled>> = (0..groups.len()).map(|_| Vec::new()).collect();
    for (i, g) in groups.into_iter().enumerate() {
        let r = root(&mut parent, i);
        members[r].push(g);
    }
    for comp in members {
        if comp.len() <= 1 {
            out.extend(comp);
            continue;
        }
        // Each component is bounded on its own: many small ones (one per
        // fragment of a big region) are cheap, one huge one is not.
        let mut comp_work = 0usize;
        out.extend(overlay(comp, budget, &mut comp_work)?);
    }
    Ok(out)
}

/// Overlay regions that overlap into disjoint regions, each with the union
/// of the outcomes of the regions that hold it.
fn overlay(
    regions: Vec<Settled>,
    budget: usize,
    work: &mut usize,
) -> Result<Vec<Settled>, OverBudget> {
    let mut done: Vec<Settled> = Vec::new();
    for o in regions {
        // The part of `o.b` not yet covered by any region.
        let mut rest: Vec<PBox> = vec![o.b.clone()];
        let mut next: Vec<Settled> = Vec::with_capacity(done.len() + 1);
        *work += done.len();
        if *work > WORK_LIMIT {
            return Err(OverBudget);
        }
        for s in done {
            if !s.b.overlaps(&o.b) {
                next.push(s);
                continue;
            }
            if !rest.is_empty() {
                rest = rest.iter().flat_map(|r| r.subtract(&s.b)).collect();
            }
            let with = |b: PBox, s: &Settled| {
                let mut outcomes = s.outcomes.clone();
                for x in &o.outcomes {
                    if !outcomes.contains(x) {
                        outcomes.push(x.clone());
                    }
                }
                Settled {
                    b,
                    outcomes,
                    fork: s.fork,
                }
            };
            let inside = s.b.intersect(&o.b).expect("overlaps");
            for piece in s.b.subtract(&o.b) {
                next.push(Settled {
                    b: piece,
                    outcomes: s.outcomes.clone(),
                    fork: s.fork,
                });
            }
            next.push(with(inside, &s));
        }
        for r in rest {
            next.push(Settled {
                b: r,
                outcomes: o.outcomes.clone(),
                fork: o.fork,
            });
        }
        if next.len() > budget {
            return Err(OverBudget);
        }
        done = next;
    }
    Ok(done)
}

/// A ruleset compiled for region queries.
pub struct Engine<'a> {
    /// The ruleset.
    pub rs: &'a Ruleset,
    /// Interface atoms shared by every box of this engine.
    pub u: IfaceUniverse,
    plans: Vec<Plan>,
    /// Plans of base chains at a stage that hides something their rules (or
    /// the rules of the chains they reach) read, by chain and stage; every
    /// other base chain walks its plain plan.
    staged: rustc_hash::FxHashMap<(usize, Stage), Plan>,
    /// Per traversal (in the order of `bases`): each base chain's stage.
    stages: Vec<Vec<Stage>>,
    /// Chains that are part of a jump loop (their plans are "unknown").
    pub loops: Vec<ChainId>,
    /// Base chains per hook, in evaluation order (computed once).
    bases: Vec<(Hook, Vec<ChainId>)>,
    /// With the host's addresses known: the path that routing splits.
    split: Option<SplitRoute>,
    /// Dead rules in context, computed on first use (see `anomaly`).
    anomaly_context: std::sync::OnceLock<anomaly::Context>,
    /// Whether [`Engine::anomalies`] judges rules in context too
    /// ([`Engine::with_dead_in_context`]); off: in their own chains only.
    dead_in_context: bool,
    /// Per-chain summaries that classification reuses (`summary`).
    summaries: summary::Summaries,
    /// Per chain, the plan its own-chain shadowed/redundant questions are
    /// asked in (see [`OwnPlan`]).
    own: Vec<OwnPlan>,
    /// How many fragments a walk's live set grows by before the walk joins
    /// those it no longer tells apart ([`JOIN_STEP`] unless a test says).
    join_step: usize,
    /// Most fragments the dead-in-context pass keeps of what reaches an
    /// inlining (`anomaly::context::AREA_BUDGET` unless a test says).
    area_budget: usize,
}

/// Where a chain's own-chain shadowed and redundant questions are asked:
/// its rules may see packets differently at the stages it runs at (before
/// conntrack a connection mark test never holds; an interface a hook does
/// not have reads as none), and a rule is only dead if it is dead at every
/// one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnPlan {
    /// No stage it runs at changes what it or a chain it calls reads: the
    /// plain plan.
    Plain,
    /// A base chain that runs at this one stage only: its plan there.
    Staged(Stage),
    /// A chain that runs at several stages, one of which changes what it
    /// reads: no own-chain finding (dead-in-context findings still judge
    /// each path).
    Unjudged,
}

const HOOKS: [Hook; 5] = [
    Hook::Prerouting,
    Hook::Input,
    Hook::Forward,
    Hook::Output,
    Hook::Postrouting,
];

/// Per traversal (named by its hook, see [`Hook::path`]): the base chains a
/// packet meets, in evaluation order, computed once (the model computes them
/// per call).
pub(crate) fn bases_by_hook(rs: &Ruleset) -> Vec<(Hook, Vec<ChainId>)> {
    HOOKS.iter().map(|&h| (h, rs.path_chains(h))).collect()
}

/// A source translation the walk carries for the rest of its hook (source
/// translations are set up on the last hook of every path): the box keeps
/// the source its packets entered with, and the chains after the
/// translation see this source, and this source port when the rule gave
/// one.
#[derive(Debug, Clone)]
struct SrcNow {
    src: ISet<u128>,
    sport: Option<ISet<u16>>,
}

/// Whether some rule of chain `c` or a chain it reaches tests the
/// connection's original source or source port (`--ctorigsrc`,
/// `--ctorigsrcport`, nft `ct original saddr`/`proto-src`).
pub(crate) fn reads_orig_source(rs: &Ruleset, c: usize, seen: &mut Vec<bool>) -> bool {
    if seen[c] {
        return false;
    }
    seen[c] = true;
    rs.chains[c].rules.iter().any(|r| {
        r.matches
            .ct_orig
            .as_ref()
            .is_some_and(|o| o.src != ringfence_model::AddrSet::any() || !o.sport.is_full())
            || match r.action {
                Action::Jump { target } | Action::Goto { target } => {
                    reads_orig_source(rs, target.0, seen)
                }
                _ => false,
            }
    })
}

fn hull(b: &PBox) -> (u128, u128) {
    let r = b.dst.ranges();
    (r[0].0, r[r.len() - 1].1)
}

impl<'a> Engine<'a> {
    /// Compile every chain. `u` must know every interface pattern of `rs`
    /// (build it from all rulesets that will be compared).
    pub fn new(rs: &'a Ruleset, u: IfaceUniverse) -> Self {
        let n = rs.chains.len();
        let mut plain = Builder::new(rs, &u, Stage::default(), None);
        for c in 0..n {
            plain.build(c);
        }
        let loops = std::mem::take(&mut plain.loops);
        let plans: Vec<Plan> = plain.plans.into_iter().map(|p| p.expect("built")).collect();
        let bases = bases_by_hook(rs);
        let stages: Vec<Vec<Stage>> = bases
            .iter()
            .map(|(h, cs)| cs.iter().map(|c| Stage::of_chain(rs, *h, c.0)).collect())
            .collect();
        // Base chains whose stage changes what some rule they reach sees,
        // compiled per stage; the chains they reach that the stage does not
        // change are inlined from their plain plans.
        let mut by_stage: std::collections::BTreeMap<Stage, Vec<usize>> = Default::default();
        for ((h, cs), st) in bases.iter().zip(&stages) {
            for (c, &stage) in cs.iter().zip(st) {
                if !stage.is_plain() {
                    by_stage.entry(stage).or_default().push(c.0);
                }
                // The loopback leg meets the input path's chains at a
                // stage of its own (see `LOOPED`).
                if *h == Hook::Input {
                    let looped = looped_stage(rs, c.0);
                    if looped != stage && !looped.is_plain() {
                        by_stage.entry(looped).or_default().push(c.0);
                    }
                }
            }
        }
        // Every stage each chain runs at (base chains and the chains they
        // reach), and those of them that change what it reads.
        let mut runs_at: Vec<Vec<Stage>> = vec![Vec::new(); n];
        let mut changed_at: Vec<Vec<Stage>> = vec![Vec::new(); n];
        for ((h, cs), st) in bases.iter().zip(&stages) {
            for (c, &stage) in cs.iter().zip(st) {
                let mut looped = vec![stage];
                if *h == Hook::Input {
                    looped.push(looped_stage(rs, c.0));
                }
                for s in looped {
                    for x in reachable(rs, c.0) {
                        if !runs_at[x].contains(&s) {
                            runs_at[x].push(s);
                        }
                    }
                }
            }
        }
        let mut staged = rustc_hash::FxHashMap::default();
        for (stage, mut cs) in by_stage {
            cs.sort_unstable();
            cs.dedup();
            let mut b = Builder::new(rs, &u, stage, Some(&plans));
            for x in 0..n {
                if runs_at[x].contains(&stage) && b.affected(x) {
                    changed_at[x].push(stage);
                }
            }
            cs.retain(|&c| b.affected(c));
            for &c in &cs {
                b.build(c);
            }
            for c in cs {
                if let Some(p) = b.plans[c].take() {
                    staged.insert((c, stage), p);
                }
            }
        }
        let split = u.locals.as_ref().map(|_| {
            let on = |traversal: Hook, hooks: &[Hook]| -> Vec<ChainId> {
                bases
                    .iter()
                    .find(|(h, _)| *h == traversal)
                    .map(|(_, cs)| {
                        cs.iter()
                            .copied()
                            .filter(|c| {
                                rs.chain(*c)
                                    .base
                                    .as_ref()
                                    .is_some_and(|b| hooks.contains(&b.hook))
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            };
            SplitRoute {
                pre: on(Hook::Forward, &[Hook::Prerouting]),
                input: on(Hook::Input, &[Hook::Input]),
                fwd: on(Hook::Forward, &[Hook::Forward, Hook::Postrouting]),
            }
        });
        Self {
            rs,
            u,
            plans,
            staged,
            stages,
            loops,
            bases,
            split,
            anomaly_context: std::sync::OnceLock::new(),
            dead_in_context: false,
            summaries: summary::Summaries::default(),
            own: (0..n)
                .map(|x| match (&changed_at[x][..], &runs_at[x][..]) {
                    ([], _) => OwnPlan::Plain,
                    ([s], [r]) if s == r && rs.chains[x].base.is_some() => OwnPlan::Staged(*s),
                    _ => OwnPlan::Unjudged,
                })
                .collect(),
            join_step: JOIN_STEP,
            area_budget: anomaly::AREA_BUDGET,
        }
    }

    /// The plan chain `c`'s own-chain questions are asked in, or `None`
    /// when they are not asked (see [`OwnPlan`]).
    pub(crate) fn own_plan(&self, c: usize) -> Option<&Plan> {
        match self.own[c] {
            OwnPlan::Plain => Some(&self.plans[c]),
            OwnPlan::Staged(s) => Some(self.staged.get(&(c, s)).unwrap_or(&self.plans[c])),
            OwnPlan::Unjudged => None,
        }
    }

    /// Whether chain `c`'s own-chain questions are asked in its plain plan.
    pub(crate) fn own_is_plain(&self, c: usize) -> bool {
        self.own[c] == OwnPlan::Plain
    }

    /// Judge shadowed rules in context as well ([`Engine::anomalies`]): a
    /// rule no packet that reaches it from the base chains matches, and a
    /// user chain no base chain reaches. Off by default: on adversarial
    /// shapes at 100k rules verify takes up to about 4x the CPU with it
    /// (BENCHMARKS.md).
    pub fn with_dead_in_context(mut self, on: bool) -> Self {
        self.dead_in_context = on;
        self
    }

    /// Classify without per-chain summaries: every branch walks each base
    /// chain itself. The answers are the same (summaries are exact; only a
    /// walk near the work bound may end on the other side of it, see the
    /// engine's `summary` module), so this is for tests that compare the
    /// two and for measurements.
    pub fn without_summaries(mut self) -> Self {
        self.summaries = summary::Summaries::off();
        self
    }

    /// Join a walk's fragments that differ in one address side each time
    /// its live set grows by `step`, and when fragments it had sent ahead
    /// have come behind it since the last join (the default step is
    /// [`JOIN_STEP`]; `usize::MAX` never joins). The regions found hold the same packets
    /// either way, cut apart differently: this is for tests that compare
    /// the two and for measurements.
    pub fn with_join_step(mut self, step: usize) -> Self {
        self.join_step = step.max(1);
        self
    }

    /// Keep at most `n` fragments of what reaches an inlining in the
    /// dead-in-context pass (the default is 256); beyond, each rule of the
    /// inlining is walked from the top of the plan on its own. The rules
    /// judged dead are the same either way, as long as no walk or search
    /// goes over its budget: this is for tests that compare the two and
    /// for measurements.
    pub fn with_area_budget(mut self, n: usize) -> Self {
        self.area_budget = n;
        self
    }

    /// The plan a walk on the path `traversal` names uses for base chain
    /// `base`: compiled for the stage the chain runs at (the plain plan when
    /// that stage changes nothing its rules read).
    pub fn stage_plan(&self, traversal: Hook, base: ChainId) -> &Plan {
        let stage = if traversal == LOOPED {
            looped_stage(self.rs, base.0)
        } else {
            self.bases
                .iter()
                .zip(&self.stages)
                .find(|((h, _), _)| *h == traversal)
                .and_then(|((_, cs), st)| cs.iter().position(|&c| c == base).map(|i| st[i]))
                .unwrap_or_default()
        };
        if stage.is_plain() {
            return &self.plans[base.0];
        }
        self.staged
            .get(&(base.0, stage))
            .unwrap_or(&self.plans[base.0])
    }

    /// The base chains a packet meets on the traversal `hook` names, in
    /// evaluation order ([`Ruleset::path_chains`]): prerouting, forward and
    /// postrouting for `Forward`, and so on.
    pub fn base_chains(&self, hook: Hook) -> &[ChainId] {
        self.bases
            .iter()
            .find(|(h, _)| *h == hook)
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
    }

    /// Compile with an interface universe from `rs` alone.
    pub fn for_ruleset(rs: &'a Ruleset) -> Self {
        Self::new(rs, IfaceUniverse::new([rs]))
    }

    /// The plain plan of a chain (as if its rules saw every field of the
    /// packet; see [`Engine::stage_plan`] for the plan a path walks).
    pub fn plan(&self, c: ChainId) -> &Plan {
        &self.plans[c.0]
    }

    /// The source reference of a path key.
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

    /// The key of the rule that decided a path: its last rule outside the
    /// chains standing for targets the model cannot follow
    /// ([`ringfence_model::Chain::is_unknown_target`], whose one rule stands
    /// for every use of the target), so an unknown fate names the rule that
    /// jumped there.
    pub fn deciding_key(&self, path: &[(u32, u32)]) -> Option<(u32, u32)> {
        path.iter()
            .rev()
            .find(|&&(c, _)| !self.rs.chains[c as usize].is_unknown_target())
            .or(path.last())
            .copied()
    }

    /// The whole header space a hook can see for new connections: every
    /// address of both families, every protocol and port, state NEW, and the
    /// interfaces the hook has (input: no output interface; output: no input
    /// interface; forward: both named).
    pub fn hook_space(&self, hook: Hook, ct: u8) -> Vec<PBox> {
        [crate::space::Fam::V4, crate::space::Fam::V6]
            .into_iter()
            .map(|f| self.restrict_to_hook(PBox::full(f, &self.u), hook, ct))
            .collect()
    }

    /// Restrict a box to the interfaces a hook has and to one conntrack state set.
    pub fn restrict_to_hook(&self, mut b: PBox, hook: Hook, ct: u8) -> PBox {
        let (iif, oif) = match hook {
            Hook::Input | Hook::Prerouting => (self.u.named(), self.u.none()),
            Hook::Output => (self.u.none(), self.u.named()),
            Hook::Forward | Hook::Postrouting => (self.u.named(), self.u.named()),
        };
        // Postrouting has no input interface for local traffic; keep both.
        let (iif, oif) = if hook == Hook::Postrouting {
            (self.u.full(), oif)
        } else {
            (iif, oif)
        };
        b.iif = b.iif.intersect(&iif);
        b.oif = b.oif.intersect(&oif);
        b.ct &= ct;
        b
    }

    /// Walk fragments through plan positions `[from, to)`. Returns the
    /// decided fragments (`pos` is the deciding plan position) and the
    /// survivors (`pos` is where they resume). With [`Forks::Branch`] a
    /// fragment that meets a fork box continues both ways, so the results
    /// may overlap (one fragment per branch); identical copies that meet
    /// again are kept once.
    pub fn walk(
        &self,
        plan: &Plan,
        frags: Vec<Frag>,
        from: u32,
        to: u32,
        budget: usize,
        forks: Forks,
    ) -> Result<(Vec<Frag>, Vec<Frag>), OverBudget> {
        let mut blocks = CandidateBlocks::new(plan, &frags, from, to);
        let PlanKeys {
            classes,
            boxes: keys,
            tags: box_tags,
            rewritten,
            ..
        } = plan.keyed();
        // The live fragments' boxes stay in place in an arena; the walk
        // reorders and splits small slots that point into it, so a box that
        // cuts a fragment moves a few bytes per later fragment, not a box.
        let mut arena = Arena {
            boxes: Vec::with_capacity(frags.len()),
            free: Vec::new(),
            compared: Vec::with_capacity(frags.len()),
            classes,
        };
        let mut live: Vec<Slot> = frags
            .into_iter()
            .map(|f| arena.slot(f.b, f.pos, f.fork))
            .collect();
        // The queries leave out the positions from `to` on (about half of
        // what a wide fragment meets when the walk stops at a pivot box);
        // those before `from` go before sorting, and so do the boxes whose
        // tag meets no fragment's: a piece's tag bits are among its
        // fragment's (but for the lanes a mark rewrite on the way can
        // change), and the index, which compares hulls, leaves in boxes of
        // other protocols, ports and marks.
        let tags = live.iter().fold(*rewritten, |t, f| t | f.key.tag);
        let wanted = |j: u32| j >= from && tags_meet(tags, box_tags[j as usize]);
        blocks.keep_narrow(wanted);
        let mut cands = Vec::new();
        let mut next: Vec<Slot> = Vec::new();
        let mut decided = Vec::new();
        // Work bound: fragment-box comparisons; a region that many boxes cut
        // apart could otherwise take quadratic time before the budget trips.
        let mut work: usize = 0;
        let mut forked = false;
        // A box meets only fragments resuming at or before it, so the
        // candidates before the lowest resume position are passed over at
        // once (RETURN guards and jumps not taken send fragments far ahead).
        // The work and budget bounds count them as the scan did.
        let mut low = live.iter().map(|f| f.pos).min().unwrap_or(u32::MAX);
        let mut ci = 0;
        // The walk joins fragments when their number has grown by
        // `join_step`, or when fragments that were ahead of the walk at the
        // last join (sent past it) are behind it too.
        let mut join_at = (live.len().saturating_add(self.join_step), u32::MAX);
        loop {
            if live.is_empty() {
                break;
            }
            if ci == cands.len() {
                // The next block the live fragments can meet, if any.
                if !blocks.next_into(low, wanted, &mut cands) {
                    break;
                }
                ci = 0;
                continue;
            }
            let j = cands[ci];
            ci += 1;
            if j < low {
                let skip = cands[ci..].partition_point(|&c| c < low);
                ci += skip;
                work += live.len() * (skip + 1);
                if work > WORK_LIMIT || live.len() + decided.len() > budget {
                    return Err(OverBudget);
                }
                continue;
            }
            let q = &plan.pieces[j as usize];
            work += live.len();
            if work > WORK_LIMIT {
                return Err(OverBudget);
            }
            // Fragments before the first one this box meets stay as they
            // are: only a box that cuts something rebuilds the order.
            let qk = &keys[j as usize];
            let meets = |f: &Slot, boxes: &[PBox]| {
                f.pos <= j && f.key.may_meet(qk) && boxes[f.at as usize].overlaps(&q.b)
            };
            let Some(first) = live.iter().position(|f| meets(f, &arena.boxes)) else {
                if live.len() + decided.len() > budget {
                    return Err(OverBudget);
                }
                continue;
            };
            next.clear();
            next.extend_from_slice(&live[..first]);
            let mut moved = false;
            for &f in &live[first..] {
                if !meets(&f, &arena.boxes) {
                    next.push(f);
                    continue;
                }
                if !matches!(q.fate, Fate::Mark(..))
                    && arena.boxes[f.at as usize].within_plain(&q.b)
                {
                    // The box takes the whole fragment: no cut, and a
                    // fragment that moves on keeps its place in the arena.
                    match q.fate {
                        Fate::Skip(k) => {
                            moved = true;
                            arena.compared[f.at as usize] = false;
                            next.push(Slot { pos: k, ..f });
                        }
                        Fate::Fork(matched, unmatched) if forks == Forks::Branch => {
                            moved = true;
                            forked = true;
                            let fork = if f.fork == NO_FORK { j } else { f.fork };
                            arena.compared[f.at as usize] = false;
                            let copy = arena.boxes[f.at as usize].clone();
                            next.push(Slot {
                                pos: matched,
                                fork,
                                ..f
                            });
                            next.push(arena.slot(copy, unmatched, fork));
                        }
                        _ => {
                            decided.push(Frag {
                                b: arena.boxes[f.at as usize].clone(),
                                pos: j,
                                fork: f.fork,
                            });
                            arena.free.push(f.at);
                        }
                    }
                    continue;
                }
                let cut = std::mem::replace(&mut arena.boxes[f.at as usize], PBox::vacant());
                // The fragment meets the box (`meets` above).
                let (outside, inside) = cut.split_owned(&q.b);
                arena.free.push(f.at);
                for o in outside {
                    next.push(arena.slot(o, f.pos, f.fork));
                }
                match q.fate {
                    Fate::Skip(k) => {
                        moved = true;
                        next.push(arena.slot(inside, k, f.fork));
                    }
                    Fate::Mark(c, r) => {
                        let Action::Mark(rw) = &self.rs.chains[c as usize].rules[r as usize].action
                        else {
                            unreachable!("mark boxes come from mark rules")
                        };
                        for b in self.u.marks.rewrite(rw, inside) {
                            next.push(arena.slot(b, j + 1, f.fork));
                        }
                    }
                    Fate::Fork(matched, unmatched) if forks == Forks::Branch => {
                        moved = true;
                        forked = true;
                        let fork = if f.fork == NO_FORK { j } else { f.fork };
                        next.push(arena.slot(inside.clone(), matched, fork));
                        next.push(arena.slot(inside, unmatched, fork));
                    }
                    _ => decided.push(Frag {
                        b: inside,
                        pos: j,
                        fork: f.fork,
                    }),
                }
            }
            // Branches that meet again (a fork's action falls through to
            // where its other branch resumed) go on as one: the same packets
            // at the same position have the same future. Only where this
            // box sent packets can copies have met.
            if forked && moved {
                match q.fate {
                    Fate::Skip(k) => dedup_at(&mut next, &mut arena, &[k]),
                    Fate::Fork(m, n) => dedup_at(&mut next, &mut arena, &[m, n]),
                    _ => {}
                }
            }
            if next.len() + decided.len() > budget {
                return Err(OverBudget);
            }
            std::mem::swap(&mut live, &mut next);
            if live.len() <= JOIN_MAX && (live.len() >= join_at.0 || j >= join_at.1) {
                let ahead = join_behind(&mut live, &mut arena, j);
                join_at = (live.len().saturating_add(self.join_step), ahead);
            }
            low = live.iter().map(|f| f.pos).min().unwrap_or(u32::MAX);
        }
        let mut boxes: Vec<Option<PBox>> = arena.boxes.into_iter().map(Some).collect();
        let survivors = live
            .into_iter()
            .map(|f| Frag {
                b: boxes[f.at as usize].take().expect("each slot is live once"),
                pos: f.pos,
                fork: f.fork,
            })
            .collect();
        Ok((decided, survivors))
    }

    /// Classify a region on the path `hook` names: every base chain in
    /// order must accept. Returns outcomes covering the region: disjoint for
    /// packets that meet no fork, one per branch for those that do (see
    /// [`Outcome`] and [`settle`]).
    pub fn classify(&self, hook: Hook, region: Vec<PBox>) -> Result<Vec<Outcome>, OverBudget> {
        self.classify_from(
            hook,
            0,
            region.into_iter().map(|b| (b, Path::new(), None)).collect(),
        )
    }

    /// [`Engine::classify`], settled: disjoint regions with every outcome
    /// their packets can have.
    pub fn classify_settled(
        &self,
        hook: Hook,
        region: Vec<PBox>,
    ) -> Result<Vec<Settled>, OverBudget> {
        settle(self.classify(hook, region)?, DEFAULT_BUDGET)
    }

    /// The `(chain, rule)` key of the rule behind the fork box at `pos` of
    /// `plan` (the last step of its path: the rule with the opaque match).
    fn fork_key(plan: &Plan, pos: u32) -> Option<(u32, u32)> {
        if pos == NO_FORK {
            None
        } else {
            plan.pieces[pos as usize].path.last().copied()
        }
    }

    #[allow(clippy::type_complexity)]
    fn classify_from(
        &self,
        hook: Hook,
        first_base: usize,
        mut current: Vec<Branch>,
    ) -> Result<Vec<Outcome>, OverBudget> {
        if first_base == 0 {
            // Packets enter the ruleset with their marks at 0 (the
            // connection's: what it entered with), and a new connection's
            // first packet untranslated.
            current = current
                .into_iter()
                .flat_map(|(b, p, f)| {
                    self.u
                        .marks
                        .enter(self.u.marks.erase(b))
                        .into_iter()
                        .map(move |b| (b, p.clone(), f))
                })
                .collect();
        }
        let mut out = Vec::new();
        match self.split_route(hook) {
            Some(r) if first_base == 0 => {
                // Prerouting, then by the (translated) destination: the
                // host's own addresses to input, the others through forward
                // and postrouting.
                let mut any_fork = false;
                // IPv6 drops a packet from the network to ::1 on arrival,
                // before prerouting (ipv6_rcv; tests/kernel_martian.rs).
                let mut kept = Vec::with_capacity(current.len());
                for (b, path, fork) in current {
                    let (lo, rest) = match b.fam {
                        crate::space::Fam::V6 => Locals::loopback().split_dst(&b),
                        crate::space::Fam::V4 => (None, Some(b)),
                    };
                    if let Some(lo) = lo {
                        let xlat = None;
                        out.push(Outcome {
                            b: lo,
                            fate: Fate::Drop,
                            path: path.clone(),
                            fork,
                            xlat,
                        });
                    }
                    kept.extend(rest.map(|b| (b, path, fork)));
                }
                let current =
                    self.run_chains(&r.pre, Hook::Forward, kept, &mut out, &mut any_fork)?;
                let locals = self
                    .u
                    .locals
                    .as_ref()
                    .expect("a split route has local addresses");
                let (mut here, mut through) = (Vec::new(), Vec::new());
                for (b, path, fork) in current {
                    let (l, o) = locals.split_dst(&b);
                    if let Some(l) = l {
                        // Routing drops a packet from the network to a
                        // loopback address (a martian) before input.
                        let (lo, l) = Locals::loopback().split_dst(&l);
                        if let Some(lo) = lo {
                            out.push(Outcome {
                                b: lo,
                                fate: Fate::Drop,
                                path: path.clone(),
                                fork,
                                xlat: None,
                            });
                        }
                        if let Some(l) = l {
                            here.push((l, path.clone(), fork));
                        }
                    }
                    if let Some(o) = o {
                        through.push((o, path, fork));
                    }
                }
                let mut f2 = any_fork;
                let here = self.run_chains(&r.input, Hook::Input, here, &mut out, &mut any_fork)?;
                let through = self.run_chains(&r.fwd, Hook::Forward, through, &mut out, &mut f2)?;
                out.extend(
                    here.into_iter()
                        .chain(through)
                        .map(|(b, path, fork)| Outcome {
                            b,
                            fate: Fate::Accept,
                            path,
                            fork,
                            xlat: None,
                        }),
                );
            }
            _ => {
                let bases: Vec<ChainId> = self
                    .base_chains(hook)
                    .iter()
                    .skip(first_base)
                    .copied()
                    .collect();
                let mut any_fork = false;
                let mut current =
                    self.run_chains(&bases, hook, current, &mut out, &mut any_fork)?;
                if hook == Hook::Output && first_base == 0 {
                    current = self.loop_back(current, &mut out, &mut any_fork)?;
                }
                out.extend(current.into_iter().map(|(b, path, fork)| Outcome {
                    b,
                    fate: Fate::Accept,
                    path,
                    fork,
                    xlat: None,
                }));
            }
        }
        // Outcomes name packets as they entered: their current marks are
        // forgotten, and a translated destination becomes where they go.
        Ok(out
            .into_iter()
            .map(|mut o| {
                let b = self.u.marks.erase(o.b);
                if b.ct == CtStates::NEW {
                    let dnat = b.translated().then(|| (b.dst.clone(), b.dport.clone()));
                    let snat = b.nat & !crate::space::nat::SNAT_ANY == 0;
                    if dnat.is_some() || snat {
                        o.xlat = Some(Xlat { dnat, snat });
                    }
                }
                let mut b = b.as_entered();
                if b.ct == CtStates::NEW {
                    // The translations are in `xlat`; the packets entered untranslated.
                    b.nat = crate::space::nat::NONE;
                }
                o.b = b;
                o
            })
            .collect())
    }

    /// Packets the host sends to itself, accepted on the way out (output
    /// and postrouting), come back through loopback into prerouting and
    /// input: the branches of `current` whose (translated) destination is
    /// the host's (`--local`, loopback always) go on through the input
    /// path's base chains, arriving on `lo`, with their marks and
    /// translated destination, past every nat chain (the connection's
    /// translations were set up on the way out); the other branches are
    /// returned as they are, with those the input chains accept. A branch
    /// whose source was translated on the way out is unknown (its new
    /// source is not followed). The packet keeps its connection through
    /// loopback, so even a chain before conntrack reads its state: the
    /// chains are walked at their [`LOOPED`] stages. Trace does the same (`tests/kernel_loopback.rs` checks it).
    fn loop_back(
        &self,
        current: Vec<Branch>,
        out: &mut Vec<Outcome>,
        any_fork: &mut bool,
    ) -> Result<Vec<Branch>, OverBudget> {
        if current.is_empty() {
            return Ok(current);
        }
        // Without --local only loopback is known to be the host's.
        let loopback;
        let here = match &self.u.locals {
            Some(l) => l,
            None => {
                loopback = Locals::loopback();
                &loopback
            }
        };
        let (mut back, mut gone) = (Vec::new(), Vec::new());
        for (b, path, fork) in current {
            let (l, o) = here.split_dst(&b);
            if let Some(o) = o {
                gone.push((o, path.clone(), fork));
            }
            if let Some(l) = l {
                back.push((l, path, fork));
            }
        }
        if back.is_empty() {
            return Ok(gone);
        }
        let chains: Vec<ChainId> = self
            .base_chains(Hook::Input)
            .iter()
            .copied()
            .filter(|&c| !self.rs.chain(c).base.as_ref().is_some_and(|b| b.nat))
            .collect();
        let lo = ISet::single(self.u.atom_of(Some("lo")));
        let mut walking = Vec::new();
        for (mut b, path, fork) in back {
            // (Later packets of a connection carry its translations too,
            // which the model follows nowhere: only a first packet's
            // source translation is judged here.)
            let unknown_by = (b.ct & CtStates::NEW != 0
                && b.nat & crate::space::nat::SNAT_ANY != 0)
                .then(|| path.last().copied())
                .flatten();
            if let Some(k) = unknown_by {
                let mut p = path.clone();
                if p.last() != Some(&k) {
                    p.push(k);
                }
                out.push(Outcome {
                    b,
                    fate: Fate::Unknown,
                    path: p,
                    fork,
                    xlat: None,
                });
                continue;
            }
            b.iif = lo.clone();
            b.oif = self.u.none();
            walking.push((b, path, fork));
        }
        let accepted = self.run_chains(&chains, LOOPED, walking, out, any_fork)?;
        gone.extend(accepted);
        Ok(gone)
    }

    /// The prerouting, input and forward parts of the path `hook` names
    /// when the host's addresses are known and the path starts before
    /// routing (forward or input): then routing, not `hook`, decides where
    /// each packet goes after prerouting.
    pub fn split_route(&self, hook: Hook) -> Option<&SplitRoute> {
        match hook {
            Hook::Forward | Hook::Input => self.split.as_ref(),
            _ => None,
        }
    }

    /// Walk branches through base chains `chains` in order (`traversal`
    /// names the path for their stages): outcomes decided on the way go to
    /// `out`, and the branches every chain accepted are returned.
    ///
    /// A branch that a nat chain translated (any [`Action::Nat`], even one
    /// that leaves the packet as it is) has its hook's translation set up:
    /// the later nat chains of that hook are skipped for it, as the kernel
    /// skips them ([`ringfence_model::BaseChain::nat`]). Those branches are
    /// kept apart (`done`) until the hook changes.
    fn run_chains(
        &self,
        chains: &[ChainId],
        traversal: Hook,
        mut current: Vec<Branch>,
        out: &mut Vec<Outcome>,
        any_fork: &mut bool,
    ) -> Result<Vec<Branch>, OverBudget> {
        let mut done: Vec<(Branch, Option<SrcNow>)> = Vec::new();
        let mut on_hook = None;
        for (ci, &base) in chains.iter().enumerate() {
            let plan = self.stage_plan(traversal, base);
            let attach = self.rs.chain(base).base.as_ref();
            let policy = attach.map(|b| b.policy);
            let nat_chain = attach.is_some_and(|b| b.nat);
            if attach.map(|b| b.hook) != on_hook {
                // A new hook: no translation of it is set up yet.
                on_hook = attach.map(|b| b.hook);
                current.extend(done.drain(..).map(|(b, _)| b));
            }
            // Branches that an earlier chain accepted with the same packets
            // have the same future from here (the deciding rule of every
            // outcome will be in this chain or a later one): walk them once.
            // Translated ones may skip every chain left (a skipped chain
            // decides nothing), so they stay apart.
            if *any_fork && current.len() > 1 {
                let keep: Vec<bool> = {
                    let mut seen: rustc_hash::FxHashSet<&PBox> = rustc_hash::FxHashSet::default();
                    seen.reserve(current.len());
                    current.iter().map(|(b, _, _)| seen.insert(b)).collect()
                };
                let mut keep = keep.into_iter();
                current.retain(|_| keep.next().unwrap_or(true));
            }
            let mut next = Vec::new();
            let mut next_done = Vec::new();
            let walking = std::mem::take(&mut current)
                .into_iter()
                .map(|x| (x, false, None))
                .chain(
                    std::mem::take(&mut done)
                        .into_iter()
                        .map(|(x, now)| (x, true, now)),
                );
            for ((b, path, fork), was_done, now) in walking {
                if was_done && nat_chain {
                    next_done.push(((b, path, fork), now));
                    continue;
                }
                let (mut accepted, mut translated) = (Vec::new(), Vec::new());
                // A carried source translation: the chain sees the new
                // source (and port); the packets are named by the ones they
                // entered with again (every packet of the box had the same
                // new source, so no rule told them apart by the old one).
                let entered = now.as_ref().map(|_| (b.src.clone(), b.sport.clone()));
                let mut b = b;
                if let Some(n) = &now {
                    b.src = n.src.clone();
                    if let Some(sp) = &n.sport {
                        b.sport = sp.clone();
                    }
                }
                // From the chain's summary for the branch's class of
                // regions: the same fragments as its own walk.
                let (mut decided, mut surv) = self.summaries.walk(self, plan, b)?;
                if let (Some((src, sport)), Some(n)) = (&entered, &now) {
                    for f in decided.iter_mut().chain(surv.iter_mut()) {
                        f.b.src = src.clone();
                        if n.sport.is_some() {
                            f.b.sport = sport.clone();
                        }
                    }
                }
                for d in decided {
                    let piece = &plan.pieces[d.pos as usize];
                    let mut p = path.clone();
                    p.extend_from_slice(&piece.path);
                    let fork = fork.or_else(|| Self::fork_key(plan, d.fork));
                    *any_fork |= fork.is_some();
                    match piece.fate {
                        Fate::Accept => accepted.push((d.b, p, fork)),
                        Fate::Nat(c, r) => {
                            let hook = self.rs.chain(base).base.as_ref().map(|b| b.hook);
                            self.translate(
                                (c, r),
                                d.b,
                                p,
                                fork,
                                hook.unwrap_or(traversal),
                                &chains[ci + 1..],
                                traversal,
                                &mut translated,
                                out,
                            );
                        }
                        Fate::Return => {
                            self.policy_outcome(base, policy, d.b, p, fork, &mut accepted, out)
                        }
                        f => out.push(Outcome {
                            b: d.b,
                            fate: f,
                            path: p,
                            fork,
                            xlat: None,
                        }),
                    }
                }
                for s in surv {
                    let fork = fork.or_else(|| Self::fork_key(plan, s.fork));
                    *any_fork |= fork.is_some();
                    self.policy_outcome(base, policy, s.b, path.clone(), fork, &mut accepted, out);
                }
                if was_done {
                    next_done.extend(accepted.drain(..).map(|x| (x, now.clone())));
                } else {
                    next.append(&mut accepted);
                }
                next_done.append(&mut translated);
            }
            current = next;
            done = next_done;
        }
        current.extend(done.into_iter().map(|(b, _)| b));
        Ok(current)
    }

    /// The source a translation gives every packet, when the walk can
    /// carry it exactly: SNAT to one address (and at most one port), or
    /// MASQUERADE on a host with one address of the family besides
    /// loopback (`--local`). A range is the kernel's choice per connection,
    /// and several host addresses leave which one the outgoing interface
    /// has open: `None`.
    fn src_now(&self, rw: &ringfence_model::NatRewrite, fam: crate::space::Fam) -> Option<SrcNow> {
        let v = |a: std::net::IpAddr| match a {
            std::net::IpAddr::V4(a) => (crate::space::Fam::V4, u32::from(a) as u128),
            std::net::IpAddr::V6(a) => (crate::space::Fam::V6, u128::from(a)),
        };
        let src = match (rw.kind, rw.addrs) {
            (ringfence_model::NatKind::Snat, Some((lo, hi))) => {
                // A range: the kernel keeps a source already in it or picks
                // one by a hash of the addresses, so each address is a
                // branch (the caller parts them at the rule).
                let ((fa, a), (fz, z)) = (v(lo), v(hi));
                if fa != fam || fz != fam || a > z {
                    return None;
                }
                ISet::range(a, z)
            }
            (ringfence_model::NatKind::Masquerade, _) => {
                // The outgoing interface's address, one of the host's: with
                // several, each is a branch (the caller parts them).
                let l = self.u.locals.as_ref()?;
                let host = l.of(fam).difference(Locals::loopback().of(fam));
                if host.is_empty() {
                    return None;
                }
                host
            }
            _ => return None,
        };
        let sport = match rw.ports {
            None => None,
            Some((x, y)) if x == y => Some(ISet::single(x)),
            Some(_) => return None,
        };
        Some(SrcNow { src, sport })
    }

    /// Apply the address translation of rule `key` to the packets `b` it
    /// took (it ends their base chain as an accept does): a destination
    /// translation rewrites the destination (and port) every later chain
    /// sees, keeping the entry destination; a source translation records
    /// the connection's SNAT status. What the model cannot follow is an
    /// unknown outcome naming the rule: a REDIRECT without the host's
    /// addresses, a later packet of a connection (its translation was
    /// chosen by its first packet), and a source translation before a
    /// base chain that reads the source.
    #[allow(clippy::too_many_arguments)]
    fn translate(
        &self,
        key: (u32, u32),
        b: PBox,
        path: Path,
        fork: Option<(u32, u32)>,
        hook: Hook,
        later: &[ChainId],
        traversal: Hook,
        next: &mut Vec<(Branch, Option<SrcNow>)>,
        out: &mut Vec<Outcome>,
    ) {
        let Action::Nat(rw) = &self.rs.chains[key.0 as usize].rules[key.1 as usize].action else {
            unreachable!("nat boxes come from nat rules")
        };
        let unknown = |b: PBox, out: &mut Vec<Outcome>| {
            out.push(Outcome {
                b,
                fate: Fate::Unknown,
                path: path.clone(),
                fork,
                xlat: None,
            })
        };
        // Only a connection's first packet meets a nat chain's rules; the
        // parsers restrict them so, and a related first packet (an
        // expected connection) is left unknown.
        let mut first = b.clone();
        first.ct &= CtStates::NEW;
        let mut other = b;
        other.ct &= !CtStates::NEW;
        if !other.is_empty() {
            unknown(other, out);
        }
        if first.is_empty() {
            return;
        }
        if rw.is_destination() {
            // A connection's destination is translated once: a later nat
            // chain of the hook is not consulted for it.
            if first.nat & !crate::space::nat::DNAT_ANY == 0 {
                next.push(((first, path, fork), None));
                return;
            }
            let to = match (rw.kind, rw.addrs) {
                // The host's address on the incoming interface (one of its
                // addresses other than loopback), or loopback for a packet
                // the host sends.
                (ringfence_model::NatKind::Redirect, _) => match &self.u.locals {
                    Some(_) if hook == Hook::Output => Some(ISet::single(match first.fam {
                        crate::space::Fam::V4 => 0x7f00_0001u128,
                        crate::space::Fam::V6 => 1u128,
                    })),
                    Some(l) => {
                        let all = l.of(first.fam);
                        let outside = all.difference(Locals::loopback().of(first.fam));
                        Some(if outside.is_empty() {
                            all.clone()
                        } else {
                            outside
                        })
                    }
                    None => return unknown(first, out),
                },
                (_, Some((lo, hi))) => {
                    let v = |a: std::net::IpAddr| match a {
                        std::net::IpAddr::V4(a) => (crate::space::Fam::V4, u32::from(a) as u128),
                        std::net::IpAddr::V6(a) => (crate::space::Fam::V6, u128::from(a)),
                    };
                    let ((fa, a), (fb, z)) = (v(lo), v(hi));
                    if fa != first.fam || fb != first.fam || a > z {
                        // A translation of the other family does not apply.
                        next.push(((first, path, fork), None));
                        return;
                    }
                    Some(ISet::range(a, z))
                }
                (_, None) => None,
            };
            let spec = crate::space::DstRewrite {
                to,
                ports: rw.ports,
            };
            // The kernel picks one address or port of a range: each choice
            // is a branch, parting at this rule.
            let moved_fork = if spec.chooses() {
                fork.or(Some(key))
            } else {
                fork
            };
            let (same, moved) = spec.apply(&first);
            next.extend(same.into_iter().map(|x| ((x, path.clone(), fork), None)));
            next.extend(
                moved
                    .into_iter()
                    .map(|x| ((x, path.clone(), moved_fork), None)),
            );
        } else {
            // The hook's later nat chains are skipped: they read nothing.
            let skipped = |c: ChainId| {
                self.rs
                    .chain(c)
                    .base
                    .as_ref()
                    .is_some_and(|b| b.nat && b.hook == hook)
            };
            // A test of the original source reads what the packet entered
            // with, which a carried translation does not show the chain.
            let reads_orig = later.iter().any(|&c| {
                !skipped(c)
                    && reads_orig_source(self.rs, c.0, &mut vec![false; self.rs.chains.len()])
            });
            if let (Some(now), false) = (self.src_now(rw, first.fam), reads_orig) {
                first.nat = crate::space::nat::add_snat(first.nat);
                // A choice of addresses parts the branches at this rule.
                let fork = match now.src.ranges() {
                    [(a, z)] if a == z => fork,
                    _ => fork.or(Some(key)),
                };
                if now.sport.is_some() {
                    // The port changes for port protocols only.
                    let pp = crate::space::port_protocols();
                    let mut other = first.clone();
                    other.proto = other.proto.difference(&pp);
                    first.proto = first.proto.intersect(&pp);
                    if !other.is_empty() {
                        let kept = SrcNow {
                            src: now.src.clone(),
                            sport: None,
                        };
                        next.push(((other, path.clone(), fork), Some(kept)));
                    }
                    if first.is_empty() {
                        return;
                    }
                }
                next.push(((first, path, fork), Some(now)));
                return;
            }
            // Otherwise the source as it is now is what every model field
            // reads afterwards (the box keeps the entry source): sound only
            // when no later chain reads the source.
            let reads_src =
                later.iter().any(|&c| {
                    !skipped(c)
                        && self.stage_plan(traversal, c).pieces.iter().any(|p| {
                            p.b.src != crate::space::fam_full(p.b.fam) || !p.b.sport.is_full()
                        })
                });
            if reads_src {
                return unknown(first, out);
            }
            first.nat = crate::space::nat::add_snat(first.nat);
            next.push(((first, path, fork), None));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn policy_outcome(
        &self,
        base: ChainId,
        policy: Option<Policy>,
        b: PBox,
        mut path: Path,
        fork: Option<(u32, u32)>,
        next: &mut Vec<Branch>,
        out: &mut Vec<Outcome>,
    ) {
        path.push((base.0 as u32, u32::MAX));
        match policy {
            Some(Policy::Drop) => out.push(Outcome {
                b,
                fate: Fate::Drop,
                path,
                fork,
                xlat: None,
            }),
            _ => next.push((b, path, fork)),
        }
    }

    /// What the path `hook` names certainly accepts inside `region` (every
    /// branch accepts), as disjoint regions.
    pub fn accepted_region(
        &self,
        hook: Hook,
        region: Vec<PBox>,
    ) -> Result<Vec<Outcome>, OverBudget> {
        Ok(self
            .classify_settled(hook, region)?
            .into_iter()
            .filter(Settled::all_accept)
            .map(|s| {
                let (fate, path, dnat) =
                    s.outcomes.into_iter().next().expect("one branch at least");
                Outcome {
                    b: s.b,
                    fate,
                    path,
                    fork: s.fork,
                    xlat: dnat,
                }
            })
            .collect())
    }

    /// Everything the path `hook` names may accept within `scope` (boxes)
    /// minus `allowed`, as disjoint regions with the rules that decide them.
    /// An outcome of fate [`Fate::Accept`] is certainly accepted (every
    /// branch accepts); one of fate [`Fate::Unknown`] is possibly accepted:
    /// some branch accepts and another does not (its path ends at the first
    /// rule that may or may not match, the one that makes it possible), or
    /// a target the model cannot follow decides it (its path ends at that
    /// rule). The second value is true when a part could not be enumerated
    /// within the budget (then the list is incomplete and says so).
    ///
    /// Over-approximate, then classify: a packet the whole path may accept
    /// must get through the *pivot*, the first base chain on the path whose
    /// policy drops (else the first base chain). Every branch of a packet
    /// walks the pivot the same way up to the first fork box it meets
    /// there, so its first deciding box, with fork boxes deciding, is an
    /// accept, unknown or fork box (or, when the pivot's policy accepts, a
    /// return box or the chain's end). Each such box, cut to the scope, is
    /// walked from the top of the pivot's plan to find the part that really
    /// reaches it (every box decides in that walk, so each packet is found
    /// at exactly one box and no region is reported twice), and that part
    /// is classified, every branch, through the whole path from its first
    /// base chain and settled into regions with all their outcomes. Those
    /// walks are independent of each other and run on every core
    /// ([`ExcessSearch`]), their outcomes put back in plan order.
    pub fn accepted_beyond(
        &self,
        hook: Hook,
        scope: &[PBox],
        allowed: &[PBox],
        budget: usize,
    ) -> (Vec<Outcome>, bool) {
        self.excess_search(hook, scope, allowed, budget)
            .run_on(pool::threads())
    }

    /// [`Engine::accepted_beyond`] piece by piece, for the accepting,
    /// unknown and fork boxes of the pivot that `select` picks: each such
    /// box with the outcomes found at it (the same outcomes, in the same
    /// order, as `accepted_beyond` finds there), and whether some part went
    /// over budget. `None` when that split does not give every outcome: a
    /// path that rewrites marks or destinations or that routing splits, or
    /// a first base chain whose policy does not drop (then the pivot is a later chain, or the fall-through is
    /// one walk over the whole scope).
    pub fn accepted_beyond_pieces(
        &self,
        hook: Hook,
        scope: &[PBox],
        allowed: &[PBox],
        budget: usize,
        select: &dyn Fn(&PBox) -> bool,
    ) -> Option<(Vec<PieceOutcomes>, bool)> {
        let bases = self.base_chains(hook);
        let first = *bases.first()?;
        if self.rs.chain(first).base.as_ref().map(|b| b.policy) != Some(Policy::Drop)
            || self.split_route(hook).is_some()
            || bases.iter().any(|c| {
                self.stage_plan(hook, *c)
                    .pieces
                    .iter()
                    .any(|p| match p.fate {
                        Fate::Mark(..) => true,
                        Fate::Nat(c, r) => self.is_dnat((c, r)),
                        _ => false,
                    })
            })
        {
            return None;
        }
        let scope: Vec<PBox> = scope
            .iter()
            .flat_map(|b| self.u.marks.enter(self.u.marks.erase(b.clone())))
            .collect();
        let mut ends = Vec::new();
        let (out, incomplete) = self.accepted_beyond_entered(
            hook,
            &scope,
            allowed,
            budget,
            Some(select),
            Some(&mut ends),
        );
        let plan = self.stage_plan(hook, first);
        let mut out = out.into_iter();
        let mut done = 0;
        let mut v = Vec::with_capacity(ends.len());
        for (j, end) in ends {
            let os: Vec<Outcome> = out
                .by_ref()
                .take(end - done)
                .map(|mut o| {
                    o.b = self.u.marks.erase(o.b);
                    o
                })
                .collect();
            done = end;
            v.push((plan.pieces[j as usize].b.clone(), os));
        }
        Some((v, incomplete))
    }

    /// The first rule, on the path `hook` names, that reads the
    /// destination before nat prerouting undoes a source translation for a
    /// reply (a prerouting base chain at a priority below
    /// [`NAT_DST_PRIORITY`], or one of the chains it reaches): such a rule
    /// sees the translated address, which the model does not know.
    pub fn reads_dst_before_nat(&self, hook: Hook) -> Option<(u32, u32)> {
        self.routes(hook).into_iter().flatten().find_map(|(c, t)| {
            let b = self.rs.chain(c).base.as_ref()?;
            if b.hook != Hook::Prerouting || b.runs_at() >= NAT_DST_PRIORITY {
                return None;
            }
            self.stage_plan(t, c)
                .pieces
                .iter()
                .find(|p| p.b.dst != crate::space::fam_full(p.b.fam))
                .and_then(|p| p.path.last().copied())
        })
    }

    /// The first rule on the path `hook` names (before routing) that
    /// translates destinations, if any.
    pub fn first_dnat(&self, hook: Hook) -> Option<(u32, u32)> {
        self.routes(hook).into_iter().flatten().find_map(|(c, t)| {
            self.stage_plan(t, c)
                .pieces
                .iter()
                .find_map(|p| match p.fate {
                    Fate::Nat(c, r) if self.is_dnat((c, r)) => Some((c, r)),
                    _ => None,
                })
        })
    }

    /// Whether some packets skip base chain `route[i]`: it is a nat chain
    /// and an earlier chain of its hook on the route may translate (a nat
    /// action there sets up the hook's translation, and the hook's later
    /// nat chains are skipped). Such a chain cannot be the pivot of the
    /// excess search: not every packet the path accepts goes through it.
    fn skippable(&self, route: &[(ChainId, Hook)], i: usize) -> bool {
        let Some(b) = self.rs.chain(route[i].0).base.as_ref() else {
            return false;
        };
        b.nat
            && route[..i].iter().any(|&(c, t)| {
                self.rs
                    .chain(c)
                    .base
                    .as_ref()
                    .is_some_and(|e| e.hook == b.hook)
                    && self
                        .stage_plan(t, c)
                        .pieces
                        .iter()
                        .any(|p| matches!(p.fate, Fate::Nat(..)))
            })
    }

    /// Whether the rule at `key` translates the destination.
    fn is_dnat(&self, (c, r): (u32, u32)) -> bool {
        matches!(&self.rs.chains[c as usize].rules[r as usize].action, Action::Nat(rw) if rw.is_destination())
    }

    /// The base chains (with the traversal naming their stage) of each
    /// way a packet can take on the path `hook` names: one, or two when
    /// routing splits it ([`Engine::split_route`]: prerouting then input,
    /// prerouting then forward and postrouting).
    pub fn routes(&self, hook: Hook) -> Vec<Vec<(ChainId, Hook)>> {
        match self.split_route(hook) {
            Some(r) => {
                let pre = r.pre.iter().map(|&c| (c, Hook::Forward));
                vec![
                    pre.clone()
                        .chain(r.input.iter().map(|&c| (c, Hook::Input)))
                        .collect(),
                    pre.chain(r.fwd.iter().map(|&c| (c, Hook::Forward)))
                        .collect(),
                ]
            }
            None => vec![self.base_chains(hook).iter().map(|&c| (c, hook)).collect()],
        }
    }

    /// [`Engine::accepted_beyond`] on a path without mark rewrites, for a
    /// scope whose marks are those packets enter with, on every core (see
    /// [`ExcessSearch`]): only the pivot boxes `select` picks when given,
    /// and `per_piece` gets, for each box walked, its plan position and
    /// the number of outcomes up to and including its own.
    fn accepted_beyond_entered(
        &self,
        hook: Hook,
        scope: &[PBox],
        allowed: &[PBox],
        budget: usize,
        select: Option<&dyn Fn(&PBox) -> bool>,
        per_piece: Option<&mut Vec<(u32, usize)>>,
    ) -> (Vec<Outcome>, bool) {
        excess::Entered::new(self, hook, scope.to_vec(), allowed, budget, select)
            .run_on(pool::threads(), per_piece)
    }

    /// The excess in a settled region judged on delivery: each branch that
    /// may accept delivers its packets where it translated them to (or as
    /// addressed), and only the packets whose delivery `allowed` does not
    /// cover count. Certain when every branch accepts and delivers all of
    /// them outside `allowed`; possible otherwise. `None` over budget.
    fn delivered_excess(
        &self,
        s: Settled,
        allowed: &[PBox],
        budget: usize,
    ) -> Option<Vec<Outcome>> {
        if !s.may_accept() {
            return Some(Vec::new());
        }
        // Per branch that may accept: the entry packets whose delivery is
        // not allowed.
        let mut parts: Vec<Vec<PBox>> = Vec::new();
        let mut whole = true;
        for (fate, _, xlat) in &s.outcomes {
            let dnat = Xlat::dnat_of(xlat);
            if !matches!(fate, Fate::Accept | Fate::Unknown) {
                continue;
            }
            let delivered = match dnat {
                Some((dst, dport)) if *fate == Fate::Accept => {
                    let mut x = s.b.clone();
                    x.dst = dst.clone();
                    x.dport = dport.clone();
                    x
                }
                _ => s.b.clone(),
            };
            let refs: Vec<&PBox> = allowed.iter().filter(|a| a.overlaps(&delivered)).collect();
            let rest = crate::space::subtract_all(&delivered, &refs, budget)?;
            if rest.len() != 1 || rest[0] != delivered {
                whole = false;
            }
            // Back to entry naming: the translated fields become the entry
            // ones again (a piece cut inside a translated range stands for
            // all of the entry destination: over, never under).
            parts.push(
                rest.into_iter()
                    .map(|mut r| {
                        if dnat.is_some() && *fate == Fate::Accept {
                            r.dst = s.b.dst.clone();
                            r.dport = s.b.dport.clone();
                        }
                        r
                    })
                    .collect(),
            );
        }
        if whole {
            return Some(self.excess_outcome(s).into_iter().collect());
        }
        // Part of it is delivered where it is allowed: the rest, once.
        let single = s.outcomes.len() == 1;
        let certain = single && s.all_accept();
        let mut seen: Vec<PBox> = Vec::new();
        let mut out = Vec::new();
        let (fate, path, xlat) = if certain {
            let (f, p, d) = s.outcomes[0].clone();
            (f, p, d)
        } else {
            let accepting = s.outcomes.iter().any(|(f, _, _)| *f == Fate::Accept);
            let path = match s.fork {
                Some(k) if accepting => smallvec::smallvec![k],
                _ => s
                    .outcomes
                    .iter()
                    .find(|(f, _, _)| *f == Fate::Unknown)
                    .map(|(_, p, _)| p.clone())
                    .unwrap_or_default(),
            };
            (Fate::Unknown, path, None)
        };
        for b in parts.into_iter().flatten() {
            let refs: Vec<&PBox> = seen.iter().filter(|t| t.overlaps(&b)).collect();
            let pieces = crate::space::subtract_all(&b, &refs, budget)?;
            seen.push(b);
            out.extend(pieces.into_iter().map(|b| Outcome {
                b,
                fate,
                path: path.clone(),
                fork: s.fork,
                xlat: xlat.clone(),
            }));
        }
        Some(out)
    }

    /// A settled region as excess: certainly accepted (every branch
    /// accepts: fate Accept, named by an accepting branch), possibly
    /// accepted (fate Unknown: some branch accepts or cannot be followed;
    /// named by the rule where the branches part when some branch accepts,
    /// else by the rule the model cannot follow), or nothing.
    fn excess_outcome(&self, s: Settled) -> Option<Outcome> {
        if !s.may_accept() {
            return None;
        }
        let certain = s.all_accept();
        let accepting = s.outcomes.iter().any(|(f, _, _)| *f == Fate::Accept);
        let (fate, path, xlat) = if certain {
            (
                Fate::Accept,
                s.outcomes[0].1.clone(),
                s.outcomes[0].2.clone(),
            )
        } else {
            let path = match s.fork {
                Some(k) if accepting => smallvec::smallvec![k],
                _ => s
                    .outcomes
                    .iter()
                    .find(|(f, _, _)| *f == Fate::Unknown)
                    .map(|(_, p, _)| p.clone())
                    .unwrap_or_default(),
            };
            let xlat = s
                .outcomes
                .iter()
                .find(|(f, _, _)| *f == Fate::Accept)
                .and_then(|(_, _, d)| d.clone());
            (Fate::Unknown, path, xlat)
        };
        Some(Outcome {
            b: s.b,
            fate,
            path,
            fork: s.fork,
            xlat,
        })
    }
}

/// Compiles chains into plans for one stage (see [`Stage`]).
struct Builder<'r> {
    rs: &'r Ruleset,
    u: &'r IfaceUniverse,
    stage: Stage,
    /// The plain plans, at a stage that hides something: chains the stage
    /// does not change are inlined from them.
    plain: Option<&'r [Plan]>,
    /// Per chain: 0 new, 1 in progress, 2 done.
    state: Vec<u8>,
    plans: Vec<Option<Plan>>,
    /// Per chain, whether the stage changes some rule it reaches: 0 not yet
    /// known, 1 being found out, 2 no, 3 yes.
    changed: Vec<u8>,
    loops: Vec<ChainId>,
}

impl<'r> Builder<'r> {
    fn new(rs: &'r Ruleset, u: &'r IfaceUniverse, stage: Stage, plain: Option<&'r [Plan]>) -> Self {
        let n = rs.chains.len();
        Self {
            rs,
            u,
            stage,
            plain,
            state: vec![0; n],
            plans: vec![None; n],
            changed: vec![0; n],
            loops: Vec::new(),
        }
    }

    /// Whether the stage changes a rule of chain `c` or of a chain it
    /// reaches (a chain met again on the way counts as changed, so a jump
    /// loop is compiled at this stage like everything around it).
    fn affected(&mut self, c: usize) -> bool {
        match self.changed[c] {
            1 | 3 => return true,
            2 => return false,
            _ => {}
        }
        self.changed[c] = 1;
        let rs = self.rs;
        let chain = &rs.chains[c];
        let mut yes = chain.rules.iter().any(|r| self.stage.changes(r, self.u));
        if !yes {
            for r in &chain.rules {
                if let Action::Jump { target } | Action::Goto { target } = &r.action {
                    if self.affected(target.0) {
                        yes = true;
                        break;
                    }
                }
            }
        }
        self.changed[c] = if yes { 3 } else { 2 };
        yes
    }

    /// Whether chain `c` is inlined from its plain plan.
    fn inherits(&mut self, c: usize) -> bool {
        self.plain.is_some() && !self.affected(c)
    }

    fn build(&mut self, c: usize) {
        if self.state[c] != 0 {
            return;
        }
        self.state[c] = 1;
        let rs = self.rs;
        let u = self.u;
        let chain = &rs.chains[c];
        let unknown_target = chain.is_unknown_target();
        // The jump targets first, in the order the rules name them (the
        // order the loop below would build them in), so that the plan's
        // length is known about in advance: a chain that inlines large
        // targets (a service table) then grows its plan once, instead of
        // copying it at every doubling.
        let mut expected = 0usize;
        for rule in &chain.rules {
            expected += 2;
            if unknown_target {
                continue;
            }
            if let Action::Jump { target } | Action::Goto { target } = &rule.action {
                let t = target.0;
                if self.inherits(t) {
                    expected += self.plain.map_or(0, |p| p[t].pieces.len());
                } else {
                    self.build(t);
                    expected += self.plans[t].as_ref().map_or(0, |p| p.pieces.len());
                }
            }
        }
        let mut pieces: Vec<Piece> = Vec::with_capacity(expected);
        let mut spans = Vec::with_capacity(chain.rules.len());
        let mut rule_boxes = Vec::with_capacity(chain.rules.len());
        for (ri, rule) in chain.rules.iter().enumerate() {
            let boxes: crate::space::Boxes = if self.stage.is_plain() {
                match_boxes(&rule.matches, u)
            } else if self.stage.never_matches(&rule.matches) {
                crate::space::Boxes::new()
            } else {
                match_boxes(&rule.matches, u)
                    .into_iter()
                    .filter_map(|b| self.stage.rewrite(b, u))
                    .collect()
            };
            let start = pieces.len() as u32;
            let key = (c as u32, ri as u32);
            let push_all =
                |pieces: &mut Vec<Piece>, fate: Fate| push_boxes(pieces, &boxes, fate, key);
            if unknown_target {
                // A target the model cannot follow: whatever reaches it has an
                // unknown fate (its one rule is not a may-match question).
                push_all(&mut pieces, Fate::Unknown);
            } else if matches!(rule.action, Action::Continue)
                || (matches!(rule.action, Action::Mark(_)) && !u.marks.exact())
                || matches!(&rule.action, Action::Mark(rw) if self.stage.voids(rw))
            {
                // No verdict, matched or not: nothing to compile, opaque or not.
                // (A mark rewrite where marks are not fields changes nothing
                // any match reads exactly, and one the stage voids, before
                // conntrack, changes nothing at all.)
            } else {
                // A rule that may or may not match forks: one fork box per match
                // box, each sending its packets both to the action (compiled
                // below as if the rule matched) and past it. The positions are
                // filled in once the action's length is known.
                let may_match = may_match(&rule.matches, u);
                if may_match {
                    push_all(&mut pieces, Fate::Fork(0, 0));
                }
                let action_start = pieces.len() as u32;
                match &rule.action {
                    Action::Accept => push_all(&mut pieces, Fate::Accept),
                    Action::Drop => push_all(&mut pieces, Fate::Drop),
                    Action::Reject { .. } => push_all(&mut pieces, Fate::Reject),
                    Action::Return => push_all(&mut pieces, Fate::Return),
                    Action::Continue => {}
                    Action::Mark(_) => push_all(&mut pieces, Fate::Mark(key.0, key.1)),
                    Action::Nat(_) => push_all(&mut pieces, Fate::Nat(key.0, key.1)),
                    Action::Jump { target } | Action::Goto { target } => {
                        let goto = matches!(rule.action, Action::Goto { .. });
                        let t = target.0;
                        let inherit = self.inherits(t);
                        if !inherit {
                            self.build(t);
                        }
                        let tp: Option<&Plan> = if inherit {
                            self.plain.map(|p| &p[t])
                        } else {
                            self.plans[t].as_ref()
                        };
                        // A target that rewrites marks: its boxes after a
                        // rewrite speak of the rewritten marks, so they are cut
                        // to the jump's box without its marks. Where the jump
                        // tests marks, packets outside the jump's box skip the
                        // inlined block (a guard). Where it does not, the
                        // cut boxes lie inside the jump's box and a rewrite
                        // changes nothing else, so a packet outside it meets
                        // none of them: no guard (kube-proxy's KUBE-SEP
                        // `-s ENDPOINT -j KUBE-MARK-MASQ` would otherwise
                        // add wide boxes that every query meets).
                        let rewrites = tp.is_some_and(|tp| {
                            tp.pieces.iter().any(|p| matches!(p.fate, Fate::Mark(..)))
                        });
                        let guarded = rewrites
                            && boxes.iter().any(|b| {
                                b.mark != u.marks.all_packet() || b.ctmark != u.marks.all_conn()
                            });
                        let guard_start = pieces.len();
                        if guarded {
                            let mut outside: Vec<PBox> =
                                [crate::space::Fam::V4, crate::space::Fam::V6]
                                    .into_iter()
                                    .map(|f| PBox::full(f, u))
                                    .collect();
                            for b in &boxes {
                                outside = outside.into_iter().flat_map(|o| o.subtract(b)).collect();
                            }
                            for o in outside {
                                pieces.push(Piece {
                                    b: o,
                                    fate: Fate::Skip(u32::MAX),
                                    path: smallvec::smallvec![key],
                                });
                            }
                        }
                        let cut_boxes: Vec<PBox> = if rewrites {
                            boxes.iter().map(|b| u.marks.erase(b.clone())).collect()
                        } else {
                            boxes.to_vec()
                        };
                        match tp {
                            None => {
                                // A loop: the kernel refuses these; the result is unknown.
                                if !self.loops.contains(target) {
                                    self.loops.push(*target);
                                }
                                push_all(&mut pieces, Fate::Unknown);
                            }
                            Some(tp) => {
                                let closed =
                                    inline(&mut pieces, tp, &cut_boxes, key, goto) && !rewrites;
                                // What falls through the inlined block: cut like
                                // it (after a rewrite its marks are not the jump's).
                                let close = |pieces: &mut Vec<Piece>, fate: Fate| {
                                    push_boxes(pieces, &cut_boxes, fate, key)
                                };
                                if goto {
                                    close(&mut pieces, Fate::Return);
                                } else if may_match && !closed {
                                    // What falls through the target lands
                                    // exactly where the other branch resumes,
                                    // so the walk sees the two meet.
                                    let end = (pieces.len() + cut_boxes.len()) as u32;
                                    close(&mut pieces, Fate::Skip(end));
                                }
                            }
                        }
                        let end = pieces.len() as u32;
                        for p in &mut pieces[guard_start..] {
                            if p.fate == Fate::Skip(u32::MAX) {
                                p.fate = Fate::Skip(end);
                            }
                        }
                    }
                }
                if may_match {
                    let end = pieces.len() as u32;
                    for p in &mut pieces[start as usize..action_start as usize] {
                        p.fate = Fate::Fork(action_start, end);
                    }
                }
            }
            spans.push((start, pieces.len() as u32));
            rule_boxes.push(boxes);
        }
        // The plans live as long as the engine: give back what growing the
        // vectors left spare (up to half of a large chain's pieces).
        pieces.shrink_to_fit();
        spans.shrink_to_fit();
        rule_boxes.shrink_to_fit();
        let index = DstIndex::build(
            pieces
                .iter()
                .enumerate()
                .filter(|(_, p)| is_narrow(&p.b))
                .map(|(i, p)| {
                    let (lo, hi) = hull(&p.b);
                    (p.b.fam, lo, hi, i as u32)
                }),
        );
        self.plans[c] = Some(Plan {
            pieces,
            spans,
            rule_boxes,
            index,
            wide: std::sync::OnceLock::new(),
            all: std::sync::OnceLock::new(),
            keys: std::sync::OnceLock::new(),
        });
        self.state[c] = 2;
    }
}

/// Inline target plan `tp` under the jump rule's boxes. Returns whether
/// nothing can fall through the inlined block: every rule box is covered by
/// one inlined box that decides it or returns (and that no earlier inlined
/// box skips past).
fn inline(pieces: &mut Vec<Piece>, tp: &Plan, boxes: &[PBox], key: (u32, u32), goto: bool) -> bool {
    // (original position, piece cut to the rule's box, the rule box it is
    // cut to). A large target (a service table jumped to from a base
    // chain) gives tens of thousands: the list and the plan grow once
    // each, not by doubling, so the boxes are not copied again and again.
    let mut js = Vec::new();
    let mut cut: Vec<(u32, PBox, usize)> = Vec::new();
    for (bi, b) in boxes.iter().enumerate() {
        js.clear();
        tp.query_into(b, &mut js);
        js.sort_unstable();
        js.dedup();
        cut.reserve_exact(js.len());
        for &j in &js {
            if let Some(x) = tp.pieces[j as usize].b.intersect(b) {
                cut.push((j, x, bi));
            }
        }
    }
    if boxes.len() > 1 {
        // Each box's part is in plan order already.
        cut.sort_by_key(|(j, _, _)| *j);
    }
    pieces.reserve(cut.len());
    let base = pieces.len() as u32;
    let end = base + cut.len() as u32;
    let origs: Vec<u32> = cut.iter().map(|(j, _, _)| *j).collect();
    let mut closed = vec![false; boxes.len()];
    // The furthest position an inlined box so far jumps to.
    let mut furthest = 0u32;
    for (at_here, (j, x, bi)) in cut.into_iter().enumerate() {
        let here = base + at_here as u32;
        let src = &tp.pieces[j as usize];
        let at = |k: u32| base + origs.partition_point(|&o| o < k) as u32;
        let fate = match src.fate {
            Fate::Return if !goto => Fate::Skip(end),
            Fate::Skip(k) => Fate::Skip(at(k)),
            Fate::Fork(m, n) => Fate::Fork(at(m), at(n)),
            f => f,
        };
        let ends_here = match fate {
            Fate::Skip(k) => k == end,
            Fate::Fork(..) => false,
            _ => true,
        };
        if ends_here && furthest <= here && x == boxes[bi] {
            closed[bi] = true;
        }
        match fate {
            Fate::Skip(k) => furthest = furthest.max(k),
            Fate::Fork(m, n) => furthest = furthest.max(m).max(n),
            _ => {}
        }
        let mut path = Path::with_capacity(src.path.len() + 1);
        path.push(key);
        path.extend_from_slice(&src.path);
        pieces.push(Piece { b: x, fate, path });
    }
    closed.iter().all(|&c| c)
}

/// Conntrack state NEW only.
pub const NEW: u8 = CtStates::NEW;
/// Conntrack state ESTABLISHED only.
pub const ESTABLISHED: u8 = CtStates::ESTABLISHED;

/// One piece per box, all with one fate, decided by the rule at `key`.
fn push_boxes(pieces: &mut Vec<Piece>, boxes: &[PBox], fate: Fate, key: (u32, u32)) {
    pieces.extend(boxes.iter().map(|b| Piece {
        b: b.clone(),
        fate,
        path: smallvec::smallvec![key],
    }));
}

/// A live fragment of [`Engine::walk`]: its box's place in the arena, the
/// plan position it resumes at, its first fork (as in [`Frag`]) and its
/// [`FragKey`], which turns away most boxes it does not meet without
/// reading the box (a fragment of "everything but the servers' network"
/// has a hull of every address, and the servers' rules fall in its hole; a
/// zone's rules miss the fragments of other zones' sources). 64 bytes.
#[derive(Debug, Clone, Copy)]
struct Slot {
    at: u32,
    pos: u32,
    fork: u32,
    key: FragKey,
}

/// A plan box's hulls narrowed to a few bytes: destination ([`dst_key`])
/// and the widest hole in it ([`dst_hole`]), source ([`src_key`]),
/// destination port, and the [`tag`] of its protocols, destination ports,
/// conntrack states and marks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BoxKey {
    dst: (u64, u64),
    hole: (u64, u64),
    src: (u32, u32),
    dport: (u16, u16),
    tag: u64,
}

impl BoxKey {
    fn of(b: &PBox, classes: &PortClasses) -> Self {
        Self {
            dst: dst_key(span(b.dst.ranges())),
            hole: dst_hole(b.dst.ranges()),
            src: src_key(span(b.src.ranges())),
            dport: span(b.dport.ranges()),
            tag: tag(b, classes),
        }
    }
}

/// A fragment's narrowed hulls, the widest hole of its destination (see
/// [`dst_hole`]) and its [`tag`]: what [`FragKey::may_meet`] tests a plan
/// box's [`BoxKey`] against before the boxes' sets are read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FragKey {
    dst: (u64, u64),
    hole: (u64, u64),
    src: (u32, u32),
    dport: (u16, u16),
    tag: u64,
}

impl FragKey {
    fn of(b: &PBox, classes: &PortClasses) -> Self {
        Self {
            dst: dst_key(span(b.dst.ranges())),
            hole: dst_hole(b.dst.ranges()),
            src: src_key(span(b.src.ranges())),
            dport: span(b.dport.ranges()),
            tag: tag(b, classes),
        }
    }

    /// Whether the fragment's hulls meet the box's, neither's destination
    /// is inside the other's hole, and their tags share a bit in every
    /// lane (necessary for the boxes to overlap).
    #[inline]
    pub(crate) fn may_meet(&self, k: &BoxKey) -> bool {
        self.dst.0 <= k.dst.1
            && k.dst.0 <= self.dst.1
            && self.dport.0 <= k.dport.1
            && k.dport.0 <= self.dport.1
            && !(self.hole.0 <= k.dst.0 && k.dst.1 <= self.hole.1)
            && self.src.0 <= k.src.1
            && k.src.0 <= self.src.1
            && tags_meet(self.tag, k.tag)
            && !(k.hole.0 <= self.dst.0 && self.dst.1 <= k.hole.1)
    }
}

/// Lanes of a [`tag`]: destination ports (bits 0-31), protocol classes
/// (32-39), conntrack states (40-47), packet marks (48-55) and connection
/// marks (56-63).
const TAG_LANES: [u64; 5] = [0xffff_ffff, 0xff << 32, 0xff << 40, 0xff << 48, 0xff << 56];

/// The packet and connection mark lanes of a [`tag`].
const MARK_LANES: u64 = 0xffff << 48;

/// The destination ports that get a [`tag`] bit of their own: the (at
/// most 31) single ports a plan's boxes name most often, sorted; every
/// other port shares bit 31. Ports are a partition of classes, so a set's
/// bits say which classes it has ports in, and two sets with no class in
/// common have no port in common. Chosen per plan so that a fragment left
/// with "every port but 443 and 8443" (what a zone's port rules cut off
/// it) has no bit for the boxes of those ports, whatever ports the
/// ruleset uses.
#[derive(Debug, Clone, Default)]
pub(crate) struct PortClasses {
    ports: Vec<u16>,
}

impl PortClasses {
    fn of<'b>(boxes: impl Iterator<Item = &'b PBox>) -> Self {
        let mut count: rustc_hash::FxHashMap<u16, u32> = rustc_hash::FxHashMap::default();
        for b in boxes {
            for &(lo, hi) in b.dport.ranges() {
                if lo == hi {
                    *count.entry(lo).or_default() += 1;
                }
            }
        }
        let mut by_count: Vec<(u32, u16)> = count.into_iter().map(|(p, n)| (n, p)).collect();
        by_count.sort_unstable_by(|a, b| b.cmp(a));
        let mut ports: Vec<u16> = by_count.into_iter().take(31).map(|(_, p)| p).collect();
        ports.sort_unstable();
        Self { ports }
    }

    /// The class bits of a port set (bit `i`: the `i`th port of the
    /// list; bit 31: any other port).
    fn mask(&self, r: &[(u16, u16)]) -> u64 {
        if r == [(0, 65535)] {
            return 0xffff_ffff;
        }
        let mut m = 0u64;
        for &(lo, hi) in r {
            let a = self.ports.partition_point(|&p| p < lo);
            let b = self.ports.partition_point(|&p| p <= hi);
            m |= ((1u64 << b) - 1) & !((1u64 << a) - 1);
            if u32::from(hi - lo) + 1 > (b - a) as u32 {
                m |= 1 << 31;
            }
        }
        m
    }
}

/// The class bits of a protocol set: TCP, UDP, ICMP, ICMPv6 and SCTP a
/// bit each, every other protocol by its value modulo 3 (bits 5-7).
fn proto_mask(r: &[(u8, u8)]) -> u64 {
    const NAMED: [u8; 5] = [6, 17, 1, 58, 132];
    if r == [(0, 255)] {
        return 0xff;
    }
    let mut m = 0u64;
    for &(lo, hi) in r {
        let mut named = 0;
        for (i, &p) in NAMED.iter().enumerate() {
            if (lo..=hi).contains(&p) {
                m |= 1 << i;
                named += 1;
            }
        }
        if u32::from(hi - lo) + 1 - named >= 8 {
            // Eight values not named: every residue among them.
            m |= 0b1110_0000;
        } else {
            for p in lo..=hi {
                if !NAMED.contains(&p) {
                    m |= 1 << (5 + p % 3);
                }
            }
        }
    }
    m
}

/// A box's protocols, destination ports, conntrack states and marks folded
/// into one word, a lane per field, so that two boxes that overlap have a
/// bit in common in every lane: the port classes of the plan
/// ([`PortClasses`]), the protocol classes ([`proto_mask`]), the state
/// bits, and each mark set ORed a byte at a time. The walk's keys test it
/// before reading the boxes: it turns away the boxes of other protocols,
/// of ports a fragment no longer has, and of other marks, which hulls let
/// through.
fn tag(b: &PBox, classes: &PortClasses) -> u64 {
    fn fold(m: u64) -> u64 {
        let m = m | m >> 32;
        let m = m | m >> 16;
        (m | m >> 8) & 0xff
    }
    classes.mask(b.dport.ranges())
        | proto_mask(b.proto.ranges()) << 32
        | u64::from(b.ct) << 40
        | fold(b.mark) << 48
        | fold(b.ctmark) << 56
}

/// Whether two [`tag`]s share a bit in every lane.
#[inline]
fn tags_meet(a: u64, b: u64) -> bool {
    let x = a & b;
    TAG_LANES.iter().all(|&l| x & l != 0)
}

/// A hull narrowed by `key`, a map that does not decrease, so hulls that
/// meet still meet: a necessary test, as the full one follows, with narrow
/// compares instead of 128-bit ones. An empty hull (low above high) stays
/// empty and meets nothing.
#[inline]
fn narrowed<K: From<u8>>((lo, hi): (u128, u128), key: impl Fn(u128) -> K) -> (K, K) {
    if lo > hi {
        (K::from(1), K::from(0))
    } else {
        (key(lo), key(hi))
    }
}

/// A destination hull narrowed to 64 bits (IPv4 addresses halved, IPv6
/// addresses by their top 63 bits above every IPv4 one).
#[inline]
fn dst_key(r: (u128, u128)) -> (u64, u64) {
    narrowed(r, |x| {
        if x >> 64 == 0 {
            (x as u64) >> 1
        } else {
            (1 << 63) | (x >> 65) as u64
        }
    })
}

/// A source hull narrowed to 32 bits (IPv4 addresses halved, IPv6
/// addresses by their top 31 bits above every IPv4 one).
#[inline]
fn src_key(r: (u128, u128)) -> (u32, u32) {
    narrowed(r, |x| {
        if x >> 32 == 0 {
            (x as u32) >> 1
        } else {
            (1 << 31) | (x >> 97) as u32
        }
    })
}

/// Ranges of a destination set searched for its widest hole: a set of
/// more (a fragment many rules cut apart) has its holes cut out of the
/// walk's way one by one, and the search would cost more than it saves.
const HOLE_SEARCH: usize = 16;

/// The widest gap between a destination set's ranges, in [`dst_key`]
/// values and shrunk so that a key range inside it is surely outside
/// the set (keys that a gap's edge addresses share are left out); `(1, 0)`,
/// holding nothing, when there is none or the set has more than
/// [`HOLE_SEARCH`] ranges.
fn dst_hole(r: &[(u128, u128)]) -> (u64, u64) {
    if r.len() > HOLE_SEARCH {
        return (1, 0);
    }
    let mut best: Option<(u64, u64)> = None;
    for w in r.windows(2) {
        // `key` does not decrease, so a key above the key of the range
        // before is an address above it, and one below the key of the
        // range after is below that.
        let (a, b) = (dst_key((w[0].1, w[0].1)).0, dst_key((w[1].0, w[1].0)).0);
        if b.saturating_sub(a) >= 2 {
            let gap = (a + 1, b - 1);
            if best.is_none_or(|h| gap.1 - gap.0 > h.1 - h.0) {
                best = Some(gap);
            }
        }
    }
    best.unwrap_or((1, 0))
}

/// The hull of a set's ranges (`(1, 0)`, meeting nothing, when empty).
fn span<T: Copy + From<u8>>(r: &[(T, T)]) -> (T, T) {
    match (r.first(), r.last()) {
        (Some(a), Some(b)) => (a.0, b.1),
        _ => (T::from(1), T::from(0)),
    }
}

/// The candidate boxes of one [`Engine::walk`], a block of plan
/// positions at a time ([`Blocked`]): the destination index's answers
/// (boxes of a narrow destination: few) are taken at once, the trees'
/// for each block when the walk gets there, so a walk that is over early
/// (every fragment decided) fetches no more.
struct CandidateBlocks<'p> {
    plan: &'p Plan,
    /// Each starting fragment's family and hull, and whether it is narrow
    /// (asks the destination index and the tree of wide boxes) or not
    /// (asks the tree of every box).
    queries: smallvec::SmallVec<[(crate::space::Fam, Hull, bool); 4]>,
    /// The destination index's candidates, ascending; those before
    /// `taken` are handed out.
    narrow: Vec<u32>,
    taken: usize,
    /// The next block, and the end of the walk.
    block: usize,
    to: u32,
}

impl<'p> CandidateBlocks<'p> {
    fn new(plan: &'p Plan, frags: &[Frag], from: u32, to: u32) -> Self {
        let mut narrow = Vec::new();
        let queries = frags
            .iter()
            .map(|f| {
                let (lo, hi) = hull(&f.b);
                let is_narrow = hi - lo < NARROW_DST;
                if is_narrow {
                    plan.index.query_below(f.b.fam, lo, hi, to, &mut narrow);
                }
                (f.b.fam, Hull::of(&f.b), is_narrow)
            })
            .collect();
        CandidateBlocks {
            plan,
            queries,
            narrow,
            taken: 0,
            block: Blocked::block_of(from),
            to,
        }
    }

    /// Keep the destination index's candidates that `wanted` keeps, once
    /// each, ascending.
    fn keep_narrow(&mut self, wanted: impl Fn(u32) -> bool) {
        self.narrow.retain(|&j| wanted(j));
        self.narrow.sort_unstable();
        if self.queries.len() > 1 {
            self.narrow.dedup();
        }
    }

    /// Put in `out` the candidates of the next block that ends after
    /// `low` (where the first live fragment resumes; the blocks before
    /// are passed over) that `wanted` keeps, once each, ascending; false
    /// when no block is left before the end of the walk.
    fn next_into(&mut self, low: u32, wanted: impl Fn(u32) -> bool, out: &mut Vec<u32>) -> bool {
        out.clear();
        while self.block == 0 || Blocked::block_end(self.block - 1) < u64::from(self.to) {
            let end = Blocked::block_end(self.block).min(u64::from(self.to)) as u32;
            let k = self.block;
            self.block += 1;
            let from = self.taken;
            self.taken += self.narrow[from..].partition_point(|&j| j < end);
            if end <= low {
                continue;
            }
            for (fam, h, is_narrow) in &self.queries {
                self.plan
                    .tree_for(*is_narrow)
                    .query_block(k, *fam, h, self.to, out);
            }
            out.retain(|&j| wanted(j));
            out.extend_from_slice(&self.narrow[from..self.taken]);
            out.sort_unstable();
            // Wide boxes come from one tree and narrow ones from the
            // index, each once, unless several fragments asked.
            if self.queries.len() > 1 {
                out.dedup();
            }
            return true;
        }
        false
    }
}

/// The boxes of [`Engine::walk`]'s live fragments; a cut fragment's place
/// is reused by the next box put.
struct Arena<'p> {
    boxes: Vec<PBox>,
    free: Vec<u32>,
    /// By place: whether the fragment there (its box, position and fork)
    /// is as it was at the walk's last join, where it was behind the walk
    /// and compared with every other fragment behind it ([`join_behind`]).
    compared: Vec<bool>,
    /// The walked plan's port classes (for the fragments' keys).
    classes: &'p PortClasses,
}

impl Arena<'_> {
    /// A slot for fragment `b` at `pos` with first fork `fork`.
    fn slot(&mut self, b: PBox, pos: u32, fork: u32) -> Slot {
        let key = FragKey::of(&b, self.classes);
        Slot {
            key,
            at: self.put(b),
            pos,
            fork,
        }
    }

    fn put(&mut self, b: PBox) -> u32 {
        match self.free.pop() {
            Some(at) => {
                self.boxes[at as usize] = b;
                self.compared[at as usize] = false;
                at
            }
            None => {
                self.boxes.push(b);
                self.compared.push(false);
                (self.boxes.len() - 1) as u32
            }
        }
    }
}

/// How many fragments a walk's live set grows by before it joins them.
pub const JOIN_STEP: usize = 8;

/// A walk with more live fragments than this does not join them: the
/// comparisons grow with the square of their number (without this bound,
/// and comparing every pair at every join, verify on the kube-nat shape
/// took 9x as long).
const JOIN_MAX: usize = 48;

/// Join live fragments that are behind position `j` (every box the walk
/// meets from here on is after both, so their packets have the same
/// future), have the same first fork and differ in one address side only
/// ([`PBox::join_addresses`]). A region that boxes cut apart along the way
/// (a RETURN guard takes part of it, the rest falls through, both go on
/// from the chain's end) then costs the boxes after it one test, not one
/// per piece. Returns the lowest position of the fragments still ahead of
/// `j` (`u32::MAX` when none is).
fn join_behind(v: &mut Vec<Slot>, arena: &mut Arena, j: u32) -> u32 {
    let mut ahead = u32::MAX;
    let mut fresh = false;
    for f in v.iter() {
        if f.pos > j {
            ahead = ahead.min(f.pos);
            arena.compared[f.at as usize] = false;
        } else {
            fresh |= !arena.compared[f.at as usize];
        }
    }
    if !fresh {
        // Every pair behind the walk was compared before, as it is now.
        return ahead;
    }
    let mut grew: smallvec::SmallVec<[usize; 8]> = smallvec::SmallVec::new();
    let mut i = 0;
    while i < v.len() {
        if v[i].pos > j {
            i += 1;
            continue;
        }
        let a = v[i].at as usize;
        let mut grown = false;
        let mut k = i + 1;
        while k < v.len() {
            let b = v[k].at as usize;
            // Two boxes compared at an earlier join are as they were then.
            let new_pair = !(arena.compared[a] && arena.compared[b]);
            if new_pair && v[k].pos <= j && v[k].fork == v[i].fork {
                let (ba, bb) = pair_mut(&mut arena.boxes, a, b);
                if ba.join_addresses(bb) {
                    // Both passed every box up to `j` without meeting it:
                    // the later resume position is right for both.
                    v[i].pos = v[i].pos.max(v[k].pos);
                    arena.compared[a] = false;
                    grew.push(a);
                    arena.free.push(v[k].at);
                    v.remove(k);
                    grown = true;
                    continue;
                }
            }
            k += 1;
        }
        if grown {
            v[i].key = FragKey::of(&arena.boxes[a], arena.classes);
            // The joined box may now join one it missed before.
            continue;
        }
        arena.compared[a] = true;
        i += 1;
    }
    // A box that grew here was compared grown with the boxes after it
    // only: at the next join, with every one.
    for a in grew {
        arena.compared[a] = false;
    }
    ahead
}

/// The boxes at `a` and `b` (two places), the first to change.
fn pair_mut(boxes: &mut [PBox], a: usize, b: usize) -> (&mut PBox, &PBox) {
    if a < b {
        let (lo, hi) = boxes.split_at_mut(b);
        (&mut lo[a], &hi[0])
    } else {
        let (lo, hi) = boxes.split_at_mut(a);
        (&mut hi[0], &lo[b])
    }
}

/// Drop the fragments at positions `at` that another fragment at the same
/// position and with the same first fork covers (the first of equal ones
/// stays).
fn dedup_at(v: &mut Vec<Slot>, arena: &mut Arena, at: &[u32]) {
    for &pos in at {
        let same: Vec<usize> = (0..v.len()).filter(|&i| v[i].pos == pos).collect();
        if same.len() < 2 {
            continue;
        }
        let b = |i: usize| &arena.boxes[v[i].at as usize];
        let mut gone = vec![false; v.len()];
        if same.len() <= 32 {
            for (x, &i) in same.iter().enumerate() {
                let covered = same.iter().enumerate().any(|(y, &k)| {
                    k != i
                        && !gone[k]
                        && v[k].fork == v[i].fork
                        && b(i).is_subset(b(k))
                        && (y < x || b(i) != b(k))
                });
                if covered {
                    gone[i] = true;
                }
            }
        } else {
            use std::hash::BuildHasher;
            let hasher = rustc_hash::FxBuildHasher;
            let mut by_hash: rustc_hash::FxHashMap<u64, smallvec::SmallVec<[usize; 1]>> =
                rustc_hash::FxHashMap::with_capacity_and_hasher(same.len(), hasher);
            for &i in &same {
                let kept = by_hash
                    .entry(hasher.hash_one((b(i), v[i].fork)))
                    .or_default();
                if kept.iter().any(|&k| v[k].fork == v[i].fork && b(k) == b(i)) {
                    gone[i] = true;
                } else {
                    kept.push(i);
                }
            }
        }
        for (i, g) in gone.iter().enumerate() {
            if *g {
                arena.free.push(v[i].at);
            }
        }
        let mut it = gone.into_iter();
        v.retain(|_| !it.next().unwrap_or(false));
    }
}

#[cfg(test)]
mod tests {
    use super::{dst_hole, dst_key, src_key, BoxKey, FragKey};
    use crate::space::{Fam, ISet, PBox};

    proptest::proptest! {
        /// A destination range whose keys fall in a set's widest hole
        /// (what the walk skips a fragment on) shares no address with the
        /// set, at the IPv4 keys' halving and at the IPv4/IPv6 edge.
        #[test]
        fn a_range_inside_the_widest_hole_misses_the_set(
            starts in proptest::collection::vec((0u128..64, 0u128..6), 1..20),
            v6 in proptest::bool::ANY,
            q in (0u128..70, 0u128..8),
        ) {
            let base = if v6 { (1u128 << 64) - 32 } else { 0x0a00_0000 };
            let set = ISet::from_ranges(starts.iter().map(|&(lo, w)| (base + lo, base + lo + w)));
            let (qlo, qhi) = (base + q.0, base + q.0 + q.1);
            let hole = dst_hole(set.ranges());
            let key = dst_key((qlo, qhi));
            if hole.0 <= key.0 && key.1 <= hole.1 {
                proptest::prop_assert!(!set.meets(&ISet::range(qlo, qhi)));
            }
            if set.ranges().len() > super::HOLE_SEARCH {
                proptest::prop_assert_eq!(hole, (1, 0));
            }
        }
    }

    proptest::proptest! {
        /// The walk's and the searches' quick test never turns away a box
        /// that overlaps the fragment: destinations with holes on either
        /// side, sources, port lists and ranges (with port classes that
        /// name some of their ports), protocol sets, conntrack states and
        /// marks, in both families.
        #[test]
        fn fragment_keys_let_every_overlapping_box_through(
            a_dst in proptest::collection::vec((0u128..4096, 0u128..300), 1..24),
            b_dst in proptest::collection::vec((0u128..4096, 0u128..300), 1..6),
            a_src in (0u128..4096, 0u128..4096),
            b_src in (0u128..4096, 0u128..4096),
            a_ports in proptest::collection::vec((0u16..120, 0u16..40), 1..6),
            b_ports in proptest::collection::vec((0u16..120, 0u16..40), 1..6),
            wide_port in proptest::bool::ANY,
            a_protos in proptest::collection::vec((0u8..60, 0u8..12), 1..4),
            b_protos in proptest::collection::vec((0u8..60, 0u8..12), 1..4),
            named in proptest::collection::btree_set(0u16..120, 0..31),
            a_marks in (1u64..u64::MAX, 1u64..u64::MAX, 1u8..32),
            b_marks in (1u64..u64::MAX, 1u64..u64::MAX, 1u8..32),
            v6 in proptest::bool::ANY,
        ) {
            let fam = if v6 { Fam::V6 } else { Fam::V4 };
            let base = if v6 { (1u128 << 96) - 2048 } else { 0x0a00_0000 };
            let u = crate::space::IfaceUniverse::new(std::iter::empty::<&ringfence_model::Ruleset>());
            let classes = super::PortClasses { ports: named.into_iter().collect() };
            let make = |dst: &[(u128, u128)],
                        src: (u128, u128),
                        ports: &[(u16, u16)],
                        protos: &[(u8, u8)],
                        (mark, ctmark, ct): (u64, u64, u8)| {
                let mut b = PBox::full(fam, &u);
                b.dst = ISet::from_ranges(dst.iter().map(|&(lo, w)| (base + lo, base + lo + w)));
                b.src = ISet::range(base + src.0, base + src.0 + src.1);
                b.dport = ISet::from_ranges(ports.iter().map(|&(lo, w)| (lo, lo + w)));
                if wide_port {
                    b.dport = b.dport.union(&ISet::range(1000, 65535));
                }
                b.proto = ISet::from_ranges(protos.iter().map(|&(lo, w)| (lo, lo + w)));
                (b.mark, b.ctmark, b.ct) = (mark, ctmark, ct);
                b
            };
            let a = make(&a_dst, a_src, &a_ports, &a_protos, a_marks);
            let b = make(&b_dst, b_src, &b_ports, &b_protos, b_marks);
            if a.overlaps(&b) {
                let (fk, bk) = (FragKey::of(&a, &classes), BoxKey::of(&b, &classes));
                proptest::prop_assert!(fk.may_meet(&bk));
                proptest::prop_assert!(super::tags_meet(fk.tag, bk.tag));
            }
        }
    }

    #[test]
    fn narrowed_address_hulls_that_meet_still_meet() {
        // Values at the IPv4, 64-bit and IPv6 edges and in between.
        let mut vals: Vec<u128> = vec![
            0,
            1,
            2,
            3,
            0xffff_ffff,
            0x1_0000_0000,
            u64::MAX as u128 - 1,
            u64::MAX as u128,
            1u128 << 64,
            (1u128 << 64) + 1,
            (1u128 << 65) - 1,
            1u128 << 65,
            u128::MAX - 1,
            u128::MAX,
        ];
        let mut x: u128 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..40 {
            x = x
                .wrapping_mul(0x5851_f42d_4c95_7f2d_1405_7b7e_f767_814f)
                .wrapping_add(1_442_695_040_888_963_407);
            vals.push(x >> (x % 97) as u32);
        }
        let meets = |a: (u128, u128), b: (u128, u128)| a.0 <= b.1 && b.0 <= a.1;
        let meets64 = |a: (u64, u64), b: (u64, u64)| a.0 <= b.1 && b.0 <= a.1;
        let ranges: Vec<(u128, u128)> = vals
            .iter()
            .flat_map(|&a| vals.iter().map(move |&b| (a.min(b), a.max(b))))
            .collect();
        for &a in &ranges {
            for &b in ranges.iter().step_by(7) {
                if meets(a, b) {
                    assert!(meets64(dst_key(a), dst_key(b)), "{a:?} {b:?}");
                    let (x, y) = (src_key(a), src_key(b));
                    assert!(x.0 <= y.1 && y.0 <= x.1, "source {a:?} {b:?}");
                }
            }
        }
        // An empty hull stays empty (low above high).
        let (lo, hi) = dst_key((1, 0));
        assert!(lo > hi);
        let (lo, hi) = src_key((1, 0));
        assert!(lo > hi);
    }

    #[test]
    fn a_walk_joins_pieces_that_went_different_ways_to_the_same_place_and_keeps_their_packets() {
        // Z returns 172.16.1/24 at once and drops 172.16.2/24; the rest of
        // the region falls through Z. From FORWARD's next box on, the part
        // that returned and the part that fell through are one box again.
        let text = "*filter\n:FORWARD DROP [0:0]\n:Z - [0:0]\n\
                    -A FORWARD -s 10.1.0.0/16 -j Z\n\
                    -A FORWARD -p tcp -m tcp --dport 23 -j DROP\n\
                    -A FORWARD -p tcp -j ACCEPT\n\
                    -A Z -d 172.16.1.0/24 -j RETURN\n\
                    -A Z -d 172.16.2.0/24 -j DROP\nCOMMIT\n";
        let rs =
            ringfence_parse::parse_ruleset(text, "t.rules", ringfence_parse::RulesetFormat::Auto)
                .expect("parses");
        let fwd = rs
            .chains
            .iter()
            .position(|c| c.name.ends_with("FORWARD"))
            .expect("FORWARD");
        let walk = |step: usize| {
            let e = super::Engine::new(&rs, crate::IfaceUniverse::new([&rs])).with_join_step(step);
            let plan = e.plan(ringfence_model::ChainId(fwd));
            let accept = plan.spans[2].0;
            let mut b = PBox::full(Fam::V4, &e.u);
            b.src = ISet::range(0x0a01_0000, 0x0a01_ffff);
            b.dst = ISet::range(0xac10_0000, 0xac10_03ff);
            b.proto = ISet::range(6, 6);
            let (decided, survivors) = e
                .walk(
                    plan,
                    vec![super::Frag::new(b, 0)],
                    0,
                    accept,
                    1000,
                    super::Forks::Decide,
                )
                .expect("within budget");
            let boxes = |v: Vec<super::Frag>| v.into_iter().map(|f| f.b).collect::<Vec<_>>();
            (boxes(decided), boxes(survivors))
        };
        let same = |a: &[PBox], b: &[PBox]| {
            let covered = |x: &[PBox], y: &[PBox]| {
                let refs: Vec<&PBox> = y.iter().collect();
                x.iter().all(|p| {
                    crate::space::subtract_all(p, &refs, 1000).is_some_and(|rest| rest.is_empty())
                })
            };
            covered(a, b) && covered(b, a)
        };
        let (decided_apart, apart) = walk(usize::MAX);
        let (decided_joined, joined) = walk(1);
        assert_eq!(apart.len(), 2, "{apart:#?}");
        assert_eq!(joined.len(), 1, "{joined:#?}");
        assert!(same(&apart, &joined));
        assert!(same(&decided_apart, &decided_joined));
        // 172.16.2/24 was dropped: it is in no survivor.
        let mut dropped = joined[0].clone();
        dropped.dst = ISet::range(0xac10_0200, 0xac10_02ff);
        assert!(!joined[0].overlaps(&dropped));
    }
}
