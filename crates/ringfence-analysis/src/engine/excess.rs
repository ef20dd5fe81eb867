//! The excess search of [`Engine::accepted_beyond`] prepared so that
//! several threads share it.
//!
//! On a path without rewrites, each accepting, unknown, fork or translating
//! box of the pivot is walked from the top of the pivot's plan on its own
//! (see [`Engine::accepted_beyond`]); those walks depend on nothing but the
//! box, so they are handed out in chunks ([`Shared`]) and their
//! outcomes concatenated in plan order: the same outcomes, in the same
//! order, whatever the number of threads. What follows them (the unknown
//! boxes of chains before the pivot, the pivot's fall-through) runs on the
//! thread that finishes the search.

use super::pool::Shared;
use super::*;

/// Pivot boxes per chunk handed to a thread: most walks take microseconds
/// to a millisecond, so a few boxes per chunk keep the shared counter out
/// of the profile and the last chunk short.
const PIECE_CHUNK: usize = 8;

/// [`Engine::accepted_beyond`] prepared: threads may [`ExcessSearch::help`]
/// with its walks while one thread [`ExcessSearch::finish`]es it, or
/// [`ExcessSearch::run_on`] does both on a number of threads it spawns.
pub struct ExcessSearch<'e, 'a> {
    kind: Kind<'e, 'a>,
}

enum Kind<'e, 'a> {
    /// A path that rewrites marks or destinations, or that routing splits:
    /// searched whole by the thread that finishes it.
    Rewritten {
        engine: &'e Engine<'a>,
        hook: Hook,
        routes: Vec<Vec<(ChainId, Hook)>>,
        scope: &'e [PBox],
        allowed: &'e [PBox],
        budget: usize,
    },
    /// Any other path: its per-piece walks shared. The outcomes' marks are
    /// erased at the end (the scope entered with them).
    Entered(Entered<'e, 'a>),
}

/// What one pivot box's walk found.
struct PieceOut {
    /// Excess outcomes at this box.
    found: Vec<Outcome>,
    /// A part of this box went over budget.
    incomplete: bool,
    /// The box had packets of the scope and its walk stayed within the
    /// budget (only such boxes end a piece in
    /// [`Engine::accepted_beyond_pieces`]).
    walked: bool,
}

/// The excess search on a path without mark or destination rewrites, for a
/// scope whose marks are those packets enter with.
pub(super) struct Entered<'e, 'a> {
    engine: &'e Engine<'a>,
    hook: Hook,
    /// The scope, marks entered.
    scope: Vec<PBox>,
    allowed: &'e [PBox],
    budget: usize,
    /// The path's base chains (empty: nothing filters this path).
    bases: &'e [ChainId],
    /// Index of the pivot in `bases`.
    pi: usize,
    /// The pivot's plan, when there is a base chain.
    plan: Option<&'e Plan>,
    /// The positions of the pivot's accepting, unknown, fork and
    /// translating boxes the caller selected, in plan order.
    picks: Vec<u32>,
    /// The walks of `picks`, by index into it.
    work: Shared<PieceOut>,
}

impl<'a> Engine<'a> {
    /// [`Engine::accepted_beyond`] prepared to be shared by threads (the
    /// same arguments; nothing is walked yet).
    pub fn excess_search<'e>(
        &'e self,
        hook: Hook,
        scope: &'e [PBox],
        allowed: &'e [PBox],
        budget: usize,
    ) -> ExcessSearch<'e, 'a> {
        let routes = self.routes(hook);
        let rewrites = routes.iter().flatten().any(|&(c, t)| {
            self.stage_plan(t, c).pieces.iter().any(|p| match p.fate {
                Fate::Mark(..) => true,
                Fate::Nat(c, r) => self.is_dnat((c, r)),
                _ => false,
            })
        });
        if rewrites || routes.len() > 1 {
            return ExcessSearch {
                kind: Kind::Rewritten {
                    engine: self,
                    hook,
                    routes,
                    scope,
                    allowed,
                    budget,
                },
            };
        }
        // No rewrite on the path: the marks packets reach the pivot with are
        // those they entered with.
        let scope: Vec<PBox> = scope
            .iter()
            .flat_map(|b| self.u.marks.enter(self.u.marks.erase(b.clone())))
            .collect();
        ExcessSearch {
            kind: Kind::Entered(Entered::new(self, hook, scope, allowed, budget, None)),
        }
    }
}

impl ExcessSearch<'_, '_> {
    /// Walk pivot boxes of the search until every one is taken (by this
    /// thread or another). Returns at once on a path whose search is not
    /// split (one that rewrites marks or destinations, or that routing
    /// splits: [`ExcessSearch::finish`] does it whole).
    pub fn help(&self) {
        if let Kind::Entered(e) = &self.kind {
            e.help();
        }
    }

    /// Finish the search: help until every pivot box is taken, wait for
    /// the boxes other threads took, then do the rest on this thread. The
    /// same result as [`Engine::accepted_beyond`].
    ///
    /// # Panics
    /// On a second call, and when a thread helping it panicked.
    pub fn finish(&self) -> (Vec<Outcome>, bool) {
        match &self.kind {
            Kind::Rewritten {
                engine,
                hook,
                routes,
                scope,
                allowed,
                budget,
            } => engine.accepted_beyond_rewritten(*hook, routes, scope, allowed, *budget),
            Kind::Entered(e) => e.erased(e.finish(None)),
        }
    }

    /// The whole search on `threads` threads (this one and up to
    /// `threads - 1` it spawns, no more than there are chunks to share).
    pub fn run_on(&self, threads: usize) -> (Vec<Outcome>, bool) {
        match &self.kind {
            Kind::Rewritten { .. } => self.finish(),
            Kind::Entered(e) => e.erased(e.run_on(threads, None)),
        }
    }
}

impl<'e, 'a> Entered<'e, 'a> {
    /// The search over `scope` (marks entered), walking only the pivot
    /// boxes `select` picks when given.
    pub(super) fn new(
        engine: &'e Engine<'a>,
        hook: Hook,
        scope: Vec<PBox>,
        allowed: &'e [PBox],
        budget: usize,
        select: Option<&dyn Fn(&PBox) -> bool>,
    ) -> Self {
        let bases = engine.base_chains(hook);
        let policy_of = |c: ChainId| engine.rs.chain(c).base.as_ref().map(|b| b.policy);
        let route: Vec<(ChainId, Hook)> = bases.iter().map(|&c| (c, hook)).collect();
        let pi = (0..route.len())
            .position(|i| {
                policy_of(route[i].0) == Some(Policy::Drop) && !engine.skippable(&route, i)
            })
            .unwrap_or(0);
        let plan = bases.get(pi).map(|&pivot| engine.stage_plan(hook, pivot));
        // Accepting, unknown, fork and translating boxes of the pivot, each
        // walked from the top.
        let picks: Vec<u32> = plan
            .map(|plan| {
                plan.pieces
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| {
                        matches!(
                            p.fate,
                            Fate::Accept | Fate::Unknown | Fate::Fork(..) | Fate::Nat(..)
                        ) && select.is_none_or(|f| f(&p.b))
                    })
                    .map(|(j, _)| j as u32)
                    .collect()
            })
            .unwrap_or_default();
        let work = Shared::new(picks.len(), PIECE_CHUNK);
        Entered {
            engine,
            hook,
            scope,
            allowed,
            budget,
            bases,
            pi,
            plan,
            picks,
            work,
        }
    }

    /// Walk pivot boxes until every one is taken.
    pub(super) fn help(&self) {
        self.work.help(|i| self.piece(self.picks[i]));
    }

    /// [`Entered::finish`] on `threads` threads: this one and up to
    /// `threads - 1` it spawns, no more than there are chunks to share.
    pub(super) fn run_on(
        &self,
        threads: usize,
        per_piece: Option<&mut Vec<(u32, usize)>>,
    ) -> (Vec<Outcome>, bool) {
        let helpers = threads.min(self.work.chunks()).saturating_sub(1);
        if helpers == 0 {
            return self.finish(per_piece);
        }
        std::thread::scope(|s| {
            for _ in 0..helpers {
                s.spawn(|| self.help());
            }
            self.finish(per_piece)
        })
    }

    /// The outcomes with their marks erased (the scope entered with them).
    fn erased(&self, (out, incomplete): (Vec<Outcome>, bool)) -> (Vec<Outcome>, bool) {
        let marks = &self.engine.u.marks;
        let out = out
            .into_iter()
            .map(|mut o| {
                o.b = marks.erase(o.b);
                o
            })
            .collect();
        (out, incomplete)
    }

    /// The search's outcomes, the pivot boxes' first in plan order, and
    /// whether some part went over budget; `per_piece` gets, for each box
    /// walked, its plan position and the number of outcomes up to and
    /// including its own.
    pub(super) fn finish(
        &self,
        mut per_piece: Option<&mut Vec<(u32, usize)>>,
    ) -> (Vec<Outcome>, bool) {
        let Some(plan) = self.plan else {
            return self.open();
        };
        let mut out = Vec::new();
        let mut incomplete = false;
        self.work.finish(
            |i| self.piece(self.picks[i]),
            |i, p| {
                incomplete |= p.incomplete;
                out.extend(p.found);
                if p.walked {
                    if let Some(pp) = per_piece.as_deref_mut() {
                        pp.push((self.picks[i], out.len()));
                    }
                }
            },
        );
        self.rest(plan, &mut out, &mut incomplete);
        (out, incomplete)
    }

    /// No base chain on the path: the whole scope is accepted.
    fn open(&self) -> (Vec<Outcome>, bool) {
        let mut incomplete = false;
        let mut out = Vec::new();
        for s in &self.scope {
            let refs: Vec<&PBox> = self.allowed.iter().collect();
            match crate::space::subtract_all(s, &refs, self.budget) {
                Some(v) => out.extend(v.into_iter().map(|b| Outcome {
                    b,
                    fate: Fate::Accept,
                    path: Path::new(),
                    fork: None,
                    xlat: None,
                })),
                None => incomplete = true,
            }
        }
        (out, incomplete)
    }

    /// `b` minus the allowed flows; `None` over budget.
    fn minus_allowed(&self, b: &PBox) -> Option<Vec<PBox>> {
        let refs: Vec<&PBox> = self.allowed.iter().filter(|a| a.overlaps(b)).collect();
        crate::space::subtract_all(b, &refs, self.budget)
    }

    /// The packets of the scope whose first deciding box in the pivot is
    /// the one at position `j`, classified through the whole path.
    fn piece(&self, j: u32) -> PieceOut {
        let plan = self.plan.expect("pivot boxes come from the pivot's plan");
        let piece = &plan.pieces[j as usize];
        let mut found = Vec::new();
        let mut incomplete = false;
        let mut frags = Vec::new();
        for s in &self.scope {
            if let Some(x) = piece.b.intersect(s) {
                match self.minus_allowed(&x) {
                    Some(v) => frags.extend(v.into_iter().map(|b| Frag::new(b, 0))),
                    None => incomplete = true,
                }
            }
        }
        if frags.is_empty() {
            return PieceOut {
                found,
                incomplete,
                walked: false,
            };
        }
        let Ok((decided, surv)) = self
            .engine
            .walk(plan, frags, 0, j, self.budget, Forks::Decide)
        else {
            return PieceOut {
                found,
                incomplete: true,
                walked: false,
            };
        };
        drop(decided);
        let reach: Vec<(PBox, Path)> = surv
            .into_iter()
            .filter(|f| f.pos <= j)
            .map(|f| (f.b, piece.path.clone()))
            .collect();
        if !reach.is_empty() && !self.settle_reach(reach, piece.fate, &mut found) {
            incomplete = true;
        }
        PieceOut {
            found,
            incomplete,
            walked: true,
        }
    }

    /// What the whole path does with a region whose first deciding box in
    /// the pivot has fate `fate` (reached through the pivot's boxes on
    /// `path`). When the pivot is the first base chain and that box
    /// decides (it is no fork), its decision is already known and only the
    /// later chains are walked; otherwise the earlier chains may drop,
    /// reject, fork or not be evaluable, or the packets fork here, so the
    /// region is classified from the start of the path. False when the
    /// classification went over budget.
    fn settle_reach(&self, reach: Vec<(PBox, Path)>, fate: Fate, out: &mut Vec<Outcome>) -> bool {
        let e = self.engine;
        let result = match fate {
            Fate::Unknown if self.pi == 0 => Ok(reach
                .into_iter()
                .map(|(b, path)| Outcome {
                    b,
                    fate: Fate::Unknown,
                    path,
                    fork: None,
                    xlat: None,
                })
                .collect()),
            Fate::Accept if self.pi == 0 => e.classify_from(
                self.hook,
                1,
                reach.into_iter().map(|(b, p)| (b, p, None)).collect(),
            ),
            _ => e.classify_from(
                self.hook,
                0,
                reach
                    .into_iter()
                    .map(|(b, _)| (b, Path::new(), None))
                    .collect(),
            ),
        };
        match result.and_then(|v| settle(v, self.budget)) {
            Ok(v) => {
                out.extend(v.into_iter().filter_map(|s| e.excess_outcome(s)));
                true
            }
            Err(_) => false,
        }
    }

    /// After the pivot boxes: the unknown boxes of chains before the pivot
    /// and, when the pivot's policy accepts, its return boxes and
    /// fall-through.
    fn rest(&self, plan: &Plan, out: &mut Vec<Outcome>, incomplete: &mut bool) {
        let e = self.engine;
        let (hook, budget, scope) = (self.hook, self.budget, &self.scope);
        let pivot = self.bases[self.pi];
        // Packets that a target the model cannot follow takes before the
        // pivot: what it does to them is unknown (it may rewrite them past
        // the pivot), so they are possibly accepted even where the pivot
        // would drop them as they are. Those the pivot would not drop were
        // found above; each of the others is taken once, at the first such
        // box that has it.
        let mut earlier_unknown: Vec<&PBox> = Vec::new();
        for &before in &self.bases[..self.pi] {
            for piece in e
                .stage_plan(hook, before)
                .pieces
                .iter()
                .filter(|p| p.fate == Fate::Unknown)
            {
                let mut frags = Vec::new();
                for s in scope {
                    let Some(x) = piece.b.intersect(s) else {
                        continue;
                    };
                    let refs: Vec<&PBox> = self
                        .allowed
                        .iter()
                        .chain(earlier_unknown.iter().copied())
                        .filter(|a| a.overlaps(&x))
                        .collect();
                    match crate::space::subtract_all(&x, &refs, budget) {
                        Some(v) => frags.extend(v.into_iter().map(|b| Frag::new(b, 0))),
                        None => *incomplete = true,
                    }
                }
                earlier_unknown.push(&piece.b);
                if frags.is_empty() {
                    continue;
                }
                let Ok((decided, surv)) = e.walk(
                    plan,
                    frags,
                    0,
                    plan.pieces.len() as u32,
                    budget,
                    Forks::Decide,
                ) else {
                    *incomplete = true;
                    continue;
                };
                let dropped: Vec<Branch> = decided
                    .into_iter()
                    .filter(|f| {
                        matches!(
                            plan.pieces[f.pos as usize].fate,
                            Fate::Drop | Fate::Reject | Fate::Return
                        )
                    })
                    .chain(surv)
                    .map(|f| (f.b, Path::new(), None))
                    .collect();
                if dropped.is_empty() {
                    continue;
                }
                match e
                    .classify_from(hook, 0, dropped)
                    .and_then(|v| settle(v, budget))
                {
                    Ok(v) => out.extend(v.into_iter().filter_map(|s| e.excess_outcome(s))),
                    Err(_) => *incomplete = true,
                }
            }
        }
        // Return boxes and the fall-through, when the pivot's policy accepts.
        if e.rs.chain(pivot).base.as_ref().map(|b| b.policy) != Some(Policy::Drop) {
            let mut frags = Vec::new();
            for s in scope {
                match self.minus_allowed(s) {
                    Some(v) => frags.extend(v.into_iter().map(|b| Frag::new(b, 0))),
                    None => *incomplete = true,
                }
            }
            match e.walk(
                plan,
                frags,
                0,
                plan.pieces.len() as u32,
                budget,
                Forks::Decide,
            ) {
                Ok((decided, surv)) => {
                    let mut reach: Vec<(PBox, Path)> = decided
                        .into_iter()
                        .filter(|f| plan.pieces[f.pos as usize].fate == Fate::Return)
                        .map(|f| {
                            let mut p = plan.pieces[f.pos as usize].path.clone();
                            p.push((pivot.0 as u32, u32::MAX));
                            (f.b, p)
                        })
                        .collect();
                    reach.extend(
                        surv.into_iter()
                            .map(|f| (f.b, smallvec::smallvec![(pivot.0 as u32, u32::MAX)])),
                    );
                    if !reach.is_empty() && !self.settle_reach(reach, Fate::Accept, out) {
                        *incomplete = true;
                    }
                }
                Err(_) => *incomplete = true,
            }
        }
    }
}
