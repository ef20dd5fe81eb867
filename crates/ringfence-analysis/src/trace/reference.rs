//! The straightforward walker: the same first-match walk as [`Tracer`],
//! visiting every rule of every chain in order, with no rule tables. It is
//! the reference that tests hold the indexed walk against: for every packet
//! both must give the same outcomes, path and deciding rule.

use super::Tracer;
use ringfence_model::Ruleset;

/// A tracer of `rs` that visits every rule of each chain it enters (slow on
/// long chains; for tests and for checking the indexed [`Tracer::new`]):
/// no rule tables, no jump passed over, every chain walked each time it is
/// entered. [`Tracer::with_local`] keeps it so.
pub fn tracer(rs: &Ruleset) -> Tracer<'_> {
    plain(Tracer::new(rs))
}

/// `t` without its tables and without passing over any chain.
fn plain(mut t: Tracer<'_>) -> Tracer<'_> {
    t.indexed = false;
    t.index.iter_mut().for_each(|ix| *ix = None);
    t.cut.iter_mut().for_each(|c| *c = false);
    t.cut_jumps = 0;
    t.bounded = false;
    t
}

/// A reference tracer for hosts marked before the ruleset
/// ([`Tracer::with_initial_mark_any`]).
pub fn tracer_initial_mark_any(rs: &Ruleset) -> Tracer<'_> {
    plain(Tracer::with_initial_mark_any(rs))
}
