//! `diff`: what a ruleset change newly allows and newly blocks, as regions,
//! and which site flows change status.

use crate::engine::{Engine, Fate, Outcome, Xlat, DEFAULT_BUDGET};
use crate::space::IfaceUniverse;
use crate::verify::{check_flow, render_regions, Region, Status};
use ringfence_model::{CtStates, Hook, Ruleset};
use ringfence_site::ResolvedSite;
use serde::Serialize;

/// A flow whose status differs between the two rulesets.
#[derive(Debug, Clone, Serialize)]
pub struct FlowChange {
    /// Catalog id.
    pub id: String,
    /// Status under the old ruleset.
    pub old: Status,
    /// Status under the new ruleset.
    pub new: Status,
    /// Reply status under the old ruleset.
    pub old_replies: Status,
    /// Reply status under the new ruleset.
    pub new_replies: Status,
}

/// The difference between two rulesets on one hook, for new connections.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// The old ruleset file.
    pub old: String,
    /// The new ruleset file.
    pub new: String,
    /// The hook compared.
    pub hook: String,
    /// Accepted by the new ruleset, not by the old (rules: the new accepting rules).
    pub newly_allowed: Vec<Region>,
    /// Accepted by the old ruleset, not by the new (rules: the old accepting rules).
    pub newly_blocked: Vec<Region>,
    /// False when part of the comparison exceeded the size budget (the lists are then incomplete).
    pub complete: bool,
    /// Site flows whose status changed (empty without a site).
    pub flows: Vec<FlowChange>,
}

/// Regions accepted by `a` but not by `b` (or that `b` delivers elsewhere:
/// a destination translation that changed is a change).
fn accepted_not_in(a: &Engine<'_>, b: &Engine<'_>, hook: Hook) -> (Vec<Outcome>, bool) {
    // With the host's addresses known, routing splits the path after
    // prerouting; packets arrive on an interface either way.
    let space_hook = if a.split_route(hook).is_some() {
        Hook::Forward
    } else {
        hook
    };
    let scope = a.hook_space(space_hook, CtStates::NEW);
    let (acc, incomplete) = a.accepted_beyond(hook, &scope, &[], DEFAULT_BUDGET);
    let mut out = Vec::new();
    let mut complete = !incomplete;
    // Certainly accepted regions only: a region `a` possibly accepts (a
    // branch does not accept, or a rule the model cannot follow decides it)
    // is not reported as a change. It is a change when `b` does not
    // certainly accept it (some branch of `b` does not accept).
    for o in acc.into_iter().filter(|o| o.fate == Fate::Accept) {
        match b.classify_settled(hook, vec![o.b.clone()]) {
            Ok(v) => {
                let delivers = |x: &crate::engine::Settled| {
                    x.outcomes
                        .iter()
                        .all(|(_, _, t)| Xlat::dnat_of(t) == Xlat::dnat_of(&o.xlat))
                };
                for x in v {
                    if !x.all_accept() || !delivers(&x) {
                        out.push(Outcome {
                            b: x.b,
                            fate: Fate::Accept,
                            path: o.path.clone(),
                            fork: None,
                            xlat: o.xlat.clone(),
                        });
                    }
                }
            }
            Err(_) => complete = false,
        }
    }
    (out, complete)
}

/// Compare two rulesets on `hook`; with a site, also compare every flow's status.
pub fn diff(old: &Ruleset, new: &Ruleset, hook: Hook, site: Option<&ResolvedSite>) -> DiffReport {
    diff_with(old, new, hook, site, None)
}

/// [`diff`] on a host whose own addresses are `locals` (`--local`): routing
/// then splits the forward and input paths after prerouting (see
/// [`crate::verify::verify_with`]).
pub fn diff_with(
    old: &Ruleset,
    new: &Ruleset,
    hook: Hook,
    site: Option<&ResolvedSite>,
    locals: Option<&ringfence_model::AddrSet>,
) -> DiffReport {
    let host = locals.map(ringfence_model::LocalAddrs::from_set);
    diff_host(old, new, hook, site, host.as_ref())
}

/// [`diff_with`] on a host whose addresses may come with their interfaces
/// (`--local ADDR%IFACE`), as [`crate::verify::verify_host`] takes them.
pub fn diff_host(
    old: &Ruleset,
    new: &Ruleset,
    hook: Hook,
    site: Option<&ResolvedSite>,
    locals: Option<&ringfence_model::LocalAddrs>,
) -> DiffReport {
    let u = IfaceUniverse::new([old, new]);
    let u = match locals {
        Some(l) => u.with_local_addrs(l),
        None => u,
    };
    let eo = Engine::new(old, u.clone());
    let en = Engine::new(new, u);
    let (added, c1) = accepted_not_in(&en, &eo, hook);
    let (removed, c2) = accepted_not_in(&eo, &en, hook);
    let mut flows = Vec::new();
    if let Some(site) = site {
        for f in site.allowed() {
            let a = check_flow(&eo, hook, f);
            let b = check_flow(&en, hook, f);
            if a.status != b.status || a.replies != b.replies {
                flows.push(FlowChange {
                    id: f.id.clone(),
                    old: a.status,
                    new: b.status,
                    old_replies: a.replies,
                    new_replies: b.replies,
                });
            }
        }
    }
    DiffReport {
        old: old.source.clone(),
        new: new.source.clone(),
        hook: hook.to_string(),
        newly_allowed: render_regions(&en, &added, &[]),
        newly_blocked: render_regions(&eo, &removed, &[]),
        complete: c1 && c2,
        flows,
    }
}
