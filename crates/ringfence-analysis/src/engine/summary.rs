//! Per-chain summaries: one base chain's walk, computed once for a class of
//! regions and reused for every region of the class.
//!
//! Classification walks each branch through every base chain of its path
//! ([`Engine::classify`]). On a path that rewrites destinations many
//! branches enter a chain with regions that differ only in values the
//! chain cannot tell apart: after a DNAT to one of thousands of endpoints,
//! the filter chain sees one address that no rule of it names, or a
//! service's other protocols go on to it with the service's address. The
//! chain cuts all of them the same way.
//!
//! A plan's *atoms* make this exact. For each header field, the range ends
//! of every box of the plan cut the field's values into intervals (atoms);
//! every box holds a whole atom or none of it. So a region whose field lies
//! inside one atom is cut by the plan exactly as the atom's lowest value
//! is: every box meets both or neither, and no cut ever splits that field.
//! Walking the region with the field replaced by that one value, and
//! putting the region's own field back into every fragment, gives the very
//! fragments (the same boxes, in the same order, with the same fates) the
//! walk of the region gives. The *summary key* is the region with each
//! such field replaced; regions with equal keys share one walk, which is
//! the summary: a list of fragments, each with its plan position, for the
//! key's packets, and putting a region's field back is intersecting those
//! fragments with the region. The original destination is left out of the
//! key (every fragment keeps the region's) when no box of the plan reads
//! it; marks, conntrack and translation states and the rarer fields stay
//! in the key as they are (a mark rewrite reads the mark it rewrites).
//!
//! A region whose port and original port are linked (a translated packet
//! whose port was kept, [`PBox::port_linked`]) drops both from the key
//! only when the port lies inside one atom and the plan reads no original
//! destination: then no cut touches the port, and the link changes
//! nothing. Otherwise both stay as they are.
//!
//! The result for a region is a function of its key alone, whether the
//! summary was cached or not, so the answers do not depend on the order in
//! which threads meet keys. It equals the walk of the region itself except
//! for the work bound: the key's walk counts its own candidate boxes
//! against [`WORK_LIMIT`](super::WORK_LIMIT), so it may stay within the
//! bound where the region's walk would not, or the other way round (both
//! answers are sound: a walk over the bound is reported incomplete).
//!
//! The cache keeps at most [`MAX_CACHED_FRAGMENTS`] fragments; once it
//! holds [`FIRST_SIGHT_FRAGMENTS`], a walk is kept only when its key comes
//! back, and a walk not kept is computed from its key all the same. Walks are
//! computed outside the lock, so threads never wait on each other's walks.

use super::{Engine, Forks, Frag, OverBudget, Plan, DEFAULT_BUDGET};
use crate::space::{Fam, ISet, PBox};
use ringfence_model::interval::Bound;

use std::sync::{Arc, Mutex};

/// Most fragments the summaries keep in all (about 180 bytes each, so
/// under 10 MB): a bound on the memory they add, whatever the ruleset. The
/// `kube-nat` shape keeps about 11,000 at 10k rules and 5,000 at 100k; the
/// `marks` shape, whose branches rarely share a key, would fill 200,000
/// (36 MB more peak memory at 10k rules for no gain).
pub const MAX_CACHED_FRAGMENTS: usize = 48_000;

/// Up to this many fragments held, a walk is kept the first time its key
/// is met; past it, only the second time (a key met once is remembered by
/// its hash alone), so a ruleset whose branches rarely share a key fills
/// the cache with neither.
pub const FIRST_SIGHT_FRAGMENTS: usize = 16_000;

/// A walk's decided fragments and survivors ([`Engine::walk`]).
type Walked = (Vec<Frag>, Vec<Frag>);

/// The values at which a field's atoms start, sorted, without duplicates
/// (the lowest value of the type is always an atom start and not listed).
#[derive(Debug, Default)]
struct Cuts<T>(Vec<T>);

impl<T: Bound> Cuts<T> {
    /// The atom starts of every range of `sets`.
    fn of<'a>(sets: impl Iterator<Item = &'a ISet<T>>) -> Self
    where
        T: 'a,
    {
        let mut v = Vec::new();
        for s in sets {
            for &(lo, hi) in s.ranges() {
                if lo != T::MIN {
                    v.push(lo);
                }
                if let Some(n) = hi.succ() {
                    v.push(n);
                }
            }
        }
        v.sort_unstable();
        v.dedup();
        v.shrink_to_fit();
        Self(v)
    }

    /// The lowest value of the atom holding every value of `s`, when one
    /// atom does (`None` for an empty set or one that spans atoms).
    fn atom_low(&self, s: &ISet<T>) -> Option<T> {
        let r = s.ranges();
        let (lo, hi) = (r.first()?.0, r.last()?.1);
        let i = self.0.partition_point(|&c| c <= lo);
        if self.0.get(i).is_some_and(|&c| c <= hi) {
            return None;
        }
        Some(if i == 0 { T::MIN } else { self.0[i - 1] })
    }
}

/// The atoms of one plan's boxes of one family, field by field.
#[derive(Debug, Default)]
struct Atoms {
    src: Cuts<u128>,
    dst: Cuts<u128>,
    proto: Cuts<u8>,
    sport: Cuts<u16>,
    dport: Cuts<u16>,
    iif: Cuts<u16>,
    oif: Cuts<u16>,
    /// Some box restricts the original destination or is
    /// [port-linked](PBox::port_linked): the original destination and the
    /// port stay in the key as they are.
    reads_orig: bool,
}

impl Atoms {
    fn of(plan: &Plan, fam: Fam) -> Self {
        let boxes = || plan.pieces.iter().map(|p| &p.b).filter(|b| b.fam == fam);
        Self {
            src: Cuts::of(boxes().map(|b| &b.src)),
            dst: Cuts::of(boxes().map(|b| &b.dst)),
            proto: Cuts::of(boxes().map(|b| &b.proto)),
            sport: Cuts::of(boxes().map(|b| &b.sport)),
            dport: Cuts::of(boxes().map(|b| &b.dport)),
            iif: Cuts::of(boxes().map(|b| &b.iif)),
            oif: Cuts::of(boxes().map(|b| &b.oif)),
            reads_orig: boxes().any(|b| b.orig.is_some() || b.port_linked()),
        }
    }
}

/// The fields a key replaced, to be put back into every fragment of its walk.
#[derive(Debug, Default)]
struct Restore {
    src: Option<ISet<u128>>,
    dst: Option<ISet<u128>>,
    proto: Option<ISet<u8>>,
    sport: Option<ISet<u16>>,
    dport: Option<ISet<u16>>,
    iif: Option<ISet<u16>>,
    oif: Option<ISet<u16>>,
    orig: Option<crate::space::Orig>,
}

impl Restore {
    fn apply(&self, b: &mut PBox) {
        macro_rules! put {
            ($($f:ident),*) => {$(
                if let Some(v) = &self.$f {
                    b.$f = v.clone();
                }
            )*};
        }
        put!(src, dst, proto, sport, dport, iif, oif, orig);
    }

    fn is_noop(&self) -> bool {
        self.src.is_none()
            && self.dst.is_none()
            && self.proto.is_none()
            && self.sport.is_none()
            && self.dport.is_none()
            && self.iif.is_none()
            && self.oif.is_none()
            && self.orig.is_none()
    }
}

/// The summary key of `b` for a plan with atoms `a`, and what to put back.
/// A linked region ([`PBox::port_linked`]) gets an unlinked key only when
/// its port is one atom's (no cut touches port or original port, so the
/// link changes nothing); an unlinked region never gets a linked key.
fn key(a: &Atoms, b: &PBox) -> (PBox, Restore) {
    let mut k = b.clone();
    let mut r = Restore::default();
    macro_rules! canon {
        ($($f:ident),*) => {$(
            if let Some(low) = a.$f.atom_low(&b.$f) {
                if b.$f.ranges() != [(low, low)] {
                    r.$f = Some(std::mem::replace(&mut k.$f, ISet::single(low)));
                }
            }
        )*};
    }
    canon!(src, dst, proto, sport, iif, oif);
    if a.reads_orig {
        return (k, r);
    }
    let linked = b.port_linked();
    let port_low = a.dport.atom_low(&b.dport);
    if linked && port_low.is_none() {
        // A port the plan cuts narrows the original port with it.
        return (k, r);
    }
    if let Some(low) = port_low {
        if b.dport.ranges() != [(low, low)] {
            r.dport = Some(std::mem::replace(&mut k.dport, ISet::single(low)));
        }
    }
    if b.orig.is_some() {
        r.orig = Some(k.orig.take());
    }
    // An unlinked region must not become linked in its key (a linked box
    // is cut as if port and original port were one field): keep both then.
    if !linked && k.port_linked() {
        if let Some(d) = r.dport.take() {
            k.dport = d;
        }
        if let Some(o) = r.orig.take() {
            k.orig = o;
        }
    }
    (k, r)
}

/// Per-chain summaries of one engine, shared by every thread that
/// classifies with it.
#[derive(Debug, Default)]
pub(crate) struct Summaries {
    /// Off: every walk is the region's own (for tests that compare).
    off: bool,
    /// Atoms per plan (by address: plans live as long as their engine) and family.
    atoms: Mutex<rustc_hash::FxHashMap<(usize, Fam), Arc<Atoms>>>,
    /// Walks per plan and key.
    walks: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    map: rustc_hash::FxHashMap<(usize, PBox), Arc<Result<Walked, OverBudget>>>,
    /// Fragments held in `map`, and one per key.
    held: usize,
    /// Hashes of the keys met once and not kept.
    seen: rustc_hash::FxHashSet<u64>,
}

impl Summaries {
    /// Summaries switched off: [`Summaries::walk`] walks every region itself.
    pub(crate) fn off() -> Self {
        Self {
            off: true,
            atoms: Mutex::default(),
            walks: Mutex::default(),
        }
    }

    fn atoms(&self, plan: &Plan, fam: Fam) -> Arc<Atoms> {
        let id = (plan as *const Plan as usize, fam);
        if let Some(a) = self.atoms.lock().expect("summary lock").get(&id) {
            return a.clone();
        }
        let a = Arc::new(Atoms::of(plan, fam));
        self.atoms
            .lock()
            .expect("summary lock")
            .entry(id)
            .or_insert(a)
            .clone()
    }

    /// The walk of `b` through the whole of `plan`, following both
    /// branches of every fork, with the default budget: the same decided
    /// fragments and survivors as [`Engine::walk`] gives for `b` (see the
    /// module comment for the one difference, the work bound), from the
    /// plan's summary for `b`'s key.
    pub(crate) fn walk(&self, e: &Engine<'_>, plan: &Plan, b: PBox) -> Result<Walked, OverBudget> {
        let len = plan.pieces.len() as u32;
        let direct = |b: PBox| {
            e.walk(
                plan,
                vec![Frag::new(b, 0)],
                0,
                len,
                DEFAULT_BUDGET,
                Forks::Branch,
            )
        };
        if self.off {
            return direct(b);
        }
        let atoms = self.atoms(plan, b.fam);
        let (k, restore) = key(&atoms, &b);
        drop(b);
        let id = (plan as *const Plan as usize, k);
        let cached = self
            .walks
            .lock()
            .expect("summary lock")
            .map
            .get(&id)
            .cloned();
        let summary = match cached {
            Some(s) => s,
            None => {
                let s = Arc::new(direct(id.1.clone()));
                let n = s.as_ref().as_ref().map_or(0, |(d, v)| d.len() + v.len());
                let mut c = self.walks.lock().expect("summary lock");
                let keep = c.held + n < MAX_CACHED_FRAGMENTS
                    && (c.held < FIRST_SIGHT_FRAGMENTS || {
                        use std::hash::BuildHasher;
                        !c.seen.insert(rustc_hash::FxBuildHasher.hash_one(&id))
                    });
                if keep && !c.map.contains_key(&id) {
                    c.held += n + 1;
                    c.map.insert(id, s.clone());
                }
                s
            }
        };
        // A walk the cache did not keep is this call's alone: its
        // fragments get their fields back in place, not copied.
        let summary = match Arc::try_unwrap(summary) {
            Ok(walked) => {
                let (mut decided, mut surv) = walked?;
                if !restore.is_noop() {
                    for f in decided.iter_mut().chain(surv.iter_mut()) {
                        restore.apply(&mut f.b);
                    }
                }
                return Ok((decided, surv));
            }
            Err(shared) => shared,
        };
        let (decided, surv) = summary.as_ref().as_ref().map_err(|e| *e)?;
        if restore.is_noop() {
            return Ok((decided.clone(), surv.clone()));
        }
        let back = |f: &Frag| {
            let mut f = f.clone();
            restore.apply(&mut f.b);
            f
        };
        Ok((
            decided.iter().map(back).collect(),
            surv.iter().map(back).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringfence_model::{CtStates, Hook};

    const FILTER: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -d 198.18.1.0/24 -p tcp -m tcp --dport 80 -j ACCEPT
-A FORWARD ! -d 198.18.2.0/24 -p tcp -m tcp --dport 22 -j ACCEPT
-A FORWARD -s 198.19.0.0/16 -p udp -j REJECT
COMMIT
";

    fn to(e: &Engine<'_>, dst: &str) -> PBox {
        let mut b = PBox::full(Fam::V4, &e.u);
        let a: std::net::Ipv4Addr = dst.parse().expect("address");
        b.dst = ISet::single(u32::from(a) as u128);
        e.restrict_to_hook(b, Hook::Forward, CtStates::NEW)
    }

    #[test]
    fn regions_of_one_class_share_one_walk_and_keep_their_own_destination() {
        let rs =
            ringfence_parse::parse_ruleset(FILTER, "f.rules", ringfence_parse::RulesetFormat::Auto)
                .expect("parses");
        let e = Engine::for_ruleset(&rs);
        let walks = || e.summaries.walks.lock().expect("lock").map.len();
        // No rule tells 10.0.0.1 from 10.0.0.2 apart: one walk for both.
        let a = e
            .classify(Hook::Forward, vec![to(&e, "10.0.0.1")])
            .expect("in budget");
        assert_eq!(walks(), 1);
        let b = e
            .classify(Hook::Forward, vec![to(&e, "10.0.0.2")])
            .expect("in budget");
        assert_eq!(walks(), 1);
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.b.dst, ISet::single(0x0a00_0001));
            assert_eq!(y.b.dst, ISet::single(0x0a00_0002));
            let mut y2 = y.b.clone();
            y2.dst = x.b.dst.clone();
            assert_eq!((x.fate, &x.path, &x.b), (y.fate, &y.path, &y2));
        }
        // 198.18.1.5 is in the first rule's destination: a walk of its own.
        e.classify(Hook::Forward, vec![to(&e, "198.18.1.5")])
            .expect("in budget");
        assert_eq!(walks(), 2);
    }

    fn cuts(sets: &[&[(u16, u16)]]) -> Cuts<u16> {
        let v: Vec<ISet<u16>> = sets
            .iter()
            .map(|r| ISet::from_ranges(r.iter().copied()))
            .collect();
        Cuts::of(v.iter())
    }

    #[test]
    fn a_set_inside_one_atom_maps_to_the_atoms_lowest_value() {
        // Boxes test port 80 and 8000-8999: atoms [0,79] [80] [81,7999]
        // [8000,8999] [9000,65535].
        let c = cuts(&[&[(80, 80)], &[(8000, 8999)], &[(0, 65535)]]);
        assert_eq!(c.atom_low(&ISet::single(22)), Some(0));
        assert_eq!(c.atom_low(&ISet::from_ranges([(1, 2), (50, 79)])), Some(0));
        assert_eq!(c.atom_low(&ISet::single(80)), Some(80));
        assert_eq!(c.atom_low(&ISet::range(100, 7999)), Some(81));
        assert_eq!(c.atom_low(&ISet::range(8100, 8200)), Some(8000));
        assert_eq!(c.atom_low(&ISet::single(65535)), Some(9000));
    }

    #[test]
    fn a_set_across_a_cut_has_no_atom() {
        let c = cuts(&[&[(80, 80)], &[(8000, 8999)]]);
        assert_eq!(c.atom_low(&ISet::range(79, 80)), None);
        assert_eq!(c.atom_low(&ISet::from_ranges([(1, 2), (81, 82)])), None);
        assert_eq!(c.atom_low(&ISet::full()), None);
        assert_eq!(c.atom_low(&ISet::empty()), None);
    }

    #[test]
    fn a_field_no_box_restricts_is_one_atom() {
        let c = cuts(&[&[(0, 65535)]]);
        assert_eq!(c.atom_low(&ISet::full()), Some(0));
        assert_eq!(c.atom_low(&ISet::range(1000, 2000)), Some(0));
    }
}
