//! The straightforward walker: the same first-match walk as [`Tracer`],
//! visiting every rule of every chain in order, with no rule tables. It is
//! the reference that tests hold the indexed walk against: for every packet
//! both must give the same outcomes, path and deciding rule.

use super::Tracer;
use ringfence_model::Ruleset;

/// A tracer of `rs` that visits every rule of each chain it enters (slow on
/// long chains; for tests and for checking the indexed [`Tracer::new`]).
/// [`Tracer::with_local`] keeps it unindexed.
pub fn tracer(rs: &Ruleset) -> Tracer<'_> {
    let mut t = Tracer::new(rs);
    t.indexed = false;
    t.index.iter_mut().for_each(|ix| *ix = None);
    t
}

/// A reference tracer for hosts marked before the ruleset
/// ([`Tracer::with_initial_mark_any`]).
pub fn tracer_initial_mark_any(rs: &Ruleset) -> Tracer<'_> {
    let mut t = Tracer::with_initial_mark_any(rs);
    t.indexed = false;
    t.index.iter_mut().for_each(|ix| *ix = None);
    t
}
