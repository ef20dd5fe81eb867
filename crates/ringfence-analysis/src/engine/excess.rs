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
//!
//! On a path that rewrites marks or destinations, or that routing splits
//! ([`Rewritten`]), the pivot boxes' walks are shared the same way, the
//! candidates they find are made disjoint on the finishing thread, and the
//! classification of each disjoint candidate is shared again by every
//! thread still helping.

use super::pool::Shared;
use super::*;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

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
    /// its candidates' walks and classifications shared.
    Rewritten(Rewritten<'e, 'a>),
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
                kind: Kind::Rewritten(Rewritten::new(self, hook, routes, scope, allowed, budget)),
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
    /// thread or another). On a path that rewrites marks or destinations,
    /// or that routing splits, a helper that finds [`ExcessSearch::finish`]
    /// already running then waits for the candidates to be made disjoint
    /// and classifies them with it until every one is taken; one that comes
    /// before the finish began returns after the walks. So a thread may
    /// call this before `finish` on itself without waiting forever.
    pub fn help(&self) {
        match &self.kind {
            Kind::Entered(e) => e.help(),
            Kind::Rewritten(r) => r.help(),
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
            Kind::Rewritten(r) => r.finish(),
            Kind::Entered(e) => e.erased(e.finish(None)),
        }
    }

    /// The whole search on `threads` threads (this one and up to
    /// `threads - 1` it spawns, no more than there are chunks to share).
    pub fn run_on(&self, threads: usize) -> (Vec<Outcome>, bool) {
        match &self.kind {
            Kind::Rewritten(r) => r.run_on(threads),
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

/// Candidates per chunk of the classification on a rewriting path: each is
/// classified through the whole path, often milliseconds.
const CANDIDATE_CHUNK: usize = 4;

/// One way packets take on a rewriting path, as the search needs it.
struct Way<'e> {
    /// Index of the pivot in the route (see [`Rewritten`]).
    pi: usize,
    /// The pivot's plan; `None` when nothing filters this way.
    plan: Option<&'e Plan>,
}

/// What a walk of a pivot box found: candidates, and whether some part
/// went over budget.
type Found = (Vec<PBox>, bool);

/// Where the classification of a rewriting path's candidates stands, for
/// helpers waiting to join it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage3 {
    /// [`Rewritten::finish`] has not begun: a helper does not wait.
    Idle,
    /// The finish has begun and the candidates are not disjoint yet.
    Pending,
    /// The classification is open to helpers (or abandoned: nothing left).
    Open,
}

/// The excess search for a path on which marks or destinations are
/// rewritten, or that routing splits. A box of a pivot speaks of the marks
/// and destination packets have when they get there, so candidates are
/// found per way the packets can take (each with its own pivot) with the
/// pivot's entry marks over-approximated (any value, unless the pivot is
/// the first chain: then marks 0) and untranslated, named by their entry
/// fields, made disjoint from the candidates before them, and each
/// classified exactly from the start of the path. The candidates: what
/// reaches each accepting, unknown, translating or fork box of a pivot
/// untranslated; what each destination translation before a pivot takes
/// (those are judged by where they are delivered, so `allowed` is not taken
/// out of them first); what an unknown box of an earlier chain takes; and,
/// when a pivot's policy accepts, what returns from or falls through it.
/// Excess is judged on delivery: a translated packet is excess when where
/// it is delivered is not allowed, and reported as it entered with the
/// translation.
///
/// Shared by threads in three steps: the pivot boxes' walks (independent,
/// in chunks, put back in order), making the candidates disjoint (one
/// thread, in candidate order), and the classification of each disjoint
/// candidate (independent, in chunks, put back in order). The outcomes,
/// their order and the over-budget flag do not depend on the threads.
pub(super) struct Rewritten<'e, 'a> {
    engine: &'e Engine<'a>,
    hook: Hook,
    routes: Vec<Vec<(ChainId, Hook)>>,
    ways: Vec<Way<'e>>,
    scope: &'e [PBox],
    allowed: &'e [PBox],
    budget: usize,
    /// The pivot boxes walked: (way, plan position), in route and plan
    /// order.
    picks: Vec<(u32, u32)>,
    /// Their walks, by index into `picks`.
    walks: Shared<Found>,
    /// The disjoint candidates (parts of each) and their classification,
    /// once the finishing thread has made them.
    classify: OnceLock<(Vec<Vec<PBox>>, Shared<Found2>)>,
    stage: Mutex<Stage3>,
    opened: Condvar,
}

/// What classifying one disjoint candidate found: excess outcomes, and
/// whether some part went over budget.
type Found2 = (Vec<Outcome>, bool);

/// Opens the classification to helpers when the finishing thread leaves
/// (by a panic too), so none waits for it forever.
struct Release<'r, 'e, 'a>(&'r Rewritten<'e, 'a>);

impl Drop for Release<'_, '_, '_> {
    fn drop(&mut self) {
        *self.0.stage.lock().unwrap_or_else(PoisonError::into_inner) = Stage3::Open;
        self.0.opened.notify_all();
    }
}

impl<'e, 'a> Rewritten<'e, 'a> {
    fn new(
        engine: &'e Engine<'a>,
        hook: Hook,
        routes: Vec<Vec<(ChainId, Hook)>>,
        scope: &'e [PBox],
        allowed: &'e [PBox],
        budget: usize,
    ) -> Self {
        let policy_of = |c: ChainId| engine.rs.chain(c).base.as_ref().map(|b| b.policy);
        let mut ways = Vec::new();
        let mut picks = Vec::new();
        for (w, route) in routes.iter().enumerate() {
            if route.is_empty() {
                ways.push(Way { pi: 0, plan: None });
                continue;
            }
            let pi = (0..route.len())
                .position(|i| {
                    policy_of(route[i].0) == Some(Policy::Drop) && !engine.skippable(route, i)
                })
                .unwrap_or(0);
            let (pivot, ptrav) = route[pi];
            let plan = engine.stage_plan(ptrav, pivot);
            for (j, piece) in plan.pieces.iter().enumerate() {
                if matches!(
                    piece.fate,
                    Fate::Accept | Fate::Unknown | Fate::Fork(..) | Fate::Nat(..)
                ) {
                    picks.push((w as u32, j as u32));
                }
            }
            ways.push(Way {
                pi,
                plan: Some(plan),
            });
        }
        let walks = Shared::new(picks.len(), PIECE_CHUNK);
        Rewritten {
            engine,
            hook,
            routes,
            ways,
            scope,
            allowed,
            budget,
            picks,
            walks,
            classify: OnceLock::new(),
            stage: Mutex::new(Stage3::Idle),
            opened: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Stage3> {
        self.stage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Helpers that come from now on wait for the classification.
    fn begin(&self) {
        let mut st = self.lock();
        if *st == Stage3::Idle {
            *st = Stage3::Pending;
        }
    }

    /// Walk pivot boxes until every one is taken; then, when the finish has
    /// begun, classify candidates until every one is taken.
    fn help(&self) {
        self.walks.help(|i| self.walk_pick(i));
        let mut st = self.lock();
        if *st == Stage3::Idle {
            return;
        }
        while *st == Stage3::Pending {
            st = self.opened.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        drop(st);
        if let Some((parts, work)) = self.classify.get() {
            work.help(|i| self.classify_one(&parts[i]));
        }
    }

    /// [`Rewritten::finish`] on this thread and up to `threads - 1` it
    /// spawns.
    fn run_on(&self, threads: usize) -> (Vec<Outcome>, bool) {
        let helpers = threads.saturating_sub(1);
        if helpers == 0 {
            return self.finish();
        }
        self.begin();
        std::thread::scope(|s| {
            for _ in 0..helpers {
                s.spawn(|| self.help());
            }
            self.finish()
        })
    }

    /// Scope (minus the allowed flows, unless `keep_allowed`) cut to `b`'s
    /// entry fields, as untranslated fragments at the top of the pivot of
    /// a way whose pivot is at `pi`.
    fn start(&self, pi: usize, b: &PBox, keep_allowed: bool, incomplete: &mut bool) -> Vec<Frag> {
        let marks = &self.engine.u.marks;
        let b = marks.erase(b.clone());
        let mut frags = Vec::new();
        for s in self.scope {
            let Some(mut x) = b.intersect(&marks.erase(s.clone())) else {
                continue;
            };
            if x.ct & !CtStates::NEW == 0 {
                x.nat &= crate::space::nat::NONE;
                if x.is_empty() {
                    continue;
                }
            }
            let refs: Vec<&PBox> = if keep_allowed {
                Vec::new()
            } else {
                self.allowed.iter().filter(|a| a.overlaps(&x)).collect()
            };
            match crate::space::subtract_all(&x, &refs, self.budget) {
                Some(v) => {
                    for y in v {
                        if pi == 0 {
                            frags.extend(marks.enter(y).into_iter().map(|b| Frag::new(b, 0)));
                        } else {
                            frags.push(Frag::new(y, 0));
                        }
                    }
                }
                None => *incomplete = true,
            }
        }
        frags
    }

    /// The candidates of pivot box `picks[i]`: what of the scope reaches
    /// it untranslated, walked from the top of its pivot.
    fn walk_pick(&self, i: usize) -> Found {
        let (w, j) = self.picks[i];
        let way = &self.ways[w as usize];
        let plan = way.plan.expect("pivot boxes come from a pivot's plan");
        let piece = &plan.pieces[j as usize];
        let mut incomplete = false;
        let frags = self.start(way.pi, &piece.b, false, &mut incomplete);
        if frags.is_empty() {
            return (Vec::new(), incomplete);
        }
        let marks = &self.engine.u.marks;
        match self
            .engine
            .walk(plan, frags, 0, j, self.budget, Forks::Decide)
        {
            Ok((_, surv)) => (
                surv.into_iter()
                    .filter(|f| f.pos <= j)
                    .filter_map(|f| f.b.intersect(&piece.b))
                    .map(|b| marks.erase(b))
                    .collect(),
                incomplete,
            ),
            Err(_) => (Vec::new(), true),
        }
    }

    /// The candidates of way `w` after its pivot boxes: what destination
    /// translations and unknown boxes before the pivot take, and what
    /// returns from or falls through a pivot whose policy accepts.
    fn way_rest(&self, w: usize, candidates: &mut Vec<PBox>, incomplete: &mut bool) {
        let e = self.engine;
        let marks = &e.u.marks;
        let route = &self.routes[w];
        let way = &self.ways[w];
        let Some(plan) = way.plan else {
            // Nothing filters this way: the whole scope may be accepted.
            candidates.extend(self.scope.iter().map(|s| marks.erase(s.clone())));
            return;
        };
        let pi = way.pi;
        for &(before, trav) in &route[..pi] {
            for piece in e.stage_plan(trav, before).pieces.iter() {
                let keep_allowed = match piece.fate {
                    Fate::Unknown => false,
                    Fate::Nat(c, r) if e.is_dnat((c, r)) => true,
                    _ => continue,
                };
                candidates.extend(
                    self.start(pi, &piece.b, keep_allowed, incomplete)
                        .into_iter()
                        .map(|f| marks.erase(f.b)),
                );
            }
        }
        let pivot = route[pi].0;
        if e.rs.chain(pivot).base.as_ref().map(|b| b.policy) != Some(Policy::Drop) {
            let full: Vec<PBox> = [crate::space::Fam::V4, crate::space::Fam::V6]
                .into_iter()
                .map(|f| PBox::full(f, &e.u))
                .collect();
            let frags: Vec<Frag> = full
                .iter()
                .flat_map(|b| self.start(pi, b, false, incomplete))
                .collect();
            let len = plan.pieces.len() as u32;
            match e.walk(plan, frags, 0, len, self.budget, Forks::Decide) {
                Ok((decided, surv)) => candidates.extend(
                    decided
                        .into_iter()
                        .filter(|f| plan.pieces[f.pos as usize].fate == Fate::Return)
                        .chain(surv)
                        .map(|f| marks.erase(f.b)),
                ),
                Err(_) => *incomplete = true,
            }
        }
    }

    /// One disjoint candidate classified from the start of the path,
    /// settled, and judged on delivery.
    fn classify_one(&self, parts: &[PBox]) -> Found2 {
        let e = self.engine;
        let mut out = Vec::new();
        let mut incomplete = false;
        match e
            .classify_from(
                self.hook,
                0,
                parts
                    .iter()
                    .map(|b| (b.clone(), Path::new(), None))
                    .collect(),
            )
            .and_then(|v| settle(v, self.budget))
        {
            Ok(v) => {
                for s in v {
                    match e.delivered_excess(s, self.allowed, self.budget) {
                        Some(v) => out.extend(v),
                        None => incomplete = true,
                    }
                }
            }
            Err(_) => incomplete = true,
        }
        (out, incomplete)
    }

    /// The search's outcomes and whether some part went over budget.
    ///
    /// # Panics
    /// On a second call, and when a thread helping it panicked.
    fn finish(&self) -> (Vec<Outcome>, bool) {
        self.begin();
        let release = Release(self);
        let mut incomplete = false;
        // The pivot boxes' candidates, by way, in plan order; then each
        // way's other candidates after its own boxes'.
        let mut by_way: Vec<Vec<PBox>> = vec![Vec::new(); self.ways.len()];
        self.walks.finish(
            |i| self.walk_pick(i),
            |i, (found, inc)| {
                incomplete |= inc;
                by_way[self.picks[i].0 as usize].extend(found);
            },
        );
        let mut candidates: Vec<PBox> = Vec::new();
        for (w, mut found) in by_way.into_iter().enumerate() {
            candidates.append(&mut found);
            self.way_rest(w, &mut candidates, &mut incomplete);
        }
        // Each candidate is made disjoint from the earlier ones taken (in
        // their order); a tree over every candidate's hulls proposes the
        // earlier ones that may overlap it, instead of a scan of all.
        let tree = crate::index::BoxIndex::build(
            candidates
                .iter()
                .enumerate()
                .map(|(i, c)| (c.fam, Hull::of(c), i as u32)),
        );
        let mut taken = vec![false; candidates.len()];
        let mut near = Vec::new();
        let mut disjoint: Vec<Vec<PBox>> = Vec::new();
        for (i, c) in candidates.iter().enumerate() {
            near.clear();
            tree.query_into(c.fam, &Hull::of(c), &mut near);
            near.retain(|&k| (k as usize) < i && taken[k as usize]);
            near.sort_unstable();
            let refs: Vec<&PBox> = near
                .iter()
                .map(|&k| &candidates[k as usize])
                .filter(|t| t.overlaps(c))
                .collect();
            let Some(parts) = crate::space::subtract_all(c, &refs, self.budget) else {
                incomplete = true;
                continue;
            };
            taken[i] = true;
            if !parts.is_empty() {
                disjoint.push(parts);
            }
        }
        drop(tree);
        drop(candidates);
        let n = disjoint.len();
        assert!(
            self.classify
                .set((disjoint, Shared::new(n, CANDIDATE_CHUNK)))
                .is_ok(),
            "excess search finished twice"
        );
        drop(release);
        let (parts, work) = self.classify.get().expect("set just above");
        let mut out = Vec::new();
        work.finish(
            |i| self.classify_one(&parts[i]),
            |_, (found, inc)| {
                incomplete |= inc;
                out.extend(found);
            },
        );
        (out, incomplete)
    }
}
