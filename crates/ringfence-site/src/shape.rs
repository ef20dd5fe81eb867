//! Flows a site shapes: `disable:` drops flows by id, `narrow:` restricts a
//! flow's sources, destinations or services to a subset of what its row gives.
//!
//! Narrowing is applied to the flow as resolved from its row, and only ever
//! keeps a subset of it: a narrowed network must lie inside one of the row's
//! networks, a narrowed service inside one of the row's services, and each
//! narrowed destination keeps only services the row already gave it. Loading
//! a site reports every part that would widen the flow as a located error;
//! [`narrow_flow`] drops such parts, so resolution can never widen a flow even
//! for a [`Site`](crate::Site) built by hand.

use crate::catalog::{EndpointRef, ServiceSpec};
use crate::resolve::{Protocol, ResolvedFlow, Service};
use ipnet::IpNet;
use serde::Serialize;

/// How a site narrows one flow (an entry under `narrow:`), validated.
/// `None` leaves that part as the row gives it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Narrowing {
    /// `from:` the sources to keep (zones, `any`, or addresses).
    pub sources: Option<Vec<EndpointRef>>,
    /// `to:` the destinations to keep.
    pub destinations: Option<Vec<EndpointRef>>,
    /// `services:` the services to keep (named, or protocol and ports).
    pub services: Option<Vec<ServiceSpec>>,
}

/// What a narrowed flow's row gave before the site narrowed it; only the
/// parts the site narrowed are present.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Narrowed {
    /// The row's source zones, when `from:` narrowed them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_zones: Option<Vec<String>>,
    /// The row's destination zones, when `to:` (or `from:` of a
    /// same-network flow) narrowed them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_zones: Option<Vec<String>>,
    /// The row's services, when `services:` narrowed them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<Service>>,
}

impl Narrowed {
    /// One line for people: `sources were workload; services were tcp/6443 tcp/5556`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(z) = &self.source_zones {
            parts.push(format!("sources were {}", z.join(" ")));
        }
        if let Some(z) = &self.destination_zones {
            parts.push(format!("destinations were {}", z.join(" ")));
        }
        if let Some(s) = &self.services {
            let s: Vec<String> = s.iter().map(ToString::to_string).collect();
            parts.push(format!("services were {}", s.join(" ")));
        }
        parts.join("; ")
    }
}

/// A flow the site disabled (`disable:`), listed so outputs can say so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DisabledFlow {
    /// The flow's id.
    pub id: String,
    /// Why the row exists (what the site gives up).
    pub purpose: String,
}

/// A part of a narrowing that is not a subset of the flow it narrows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// `from:` entry `index` holds `net`, which lies inside none of the row's sources.
    SourceOutside { index: usize, net: IpNet },
    /// `from:` entry `index` resolves to no address.
    SourceEmpty { index: usize },
    /// `to:` entry `index` holds `net`, which lies inside none of the row's destinations.
    DestinationOutside { index: usize, net: IpNet },
    /// `to:` entry `index` resolves to no address.
    DestinationEmpty { index: usize },
    /// `services:` entry `index` gives `service`, inside none of the row's services.
    ServiceOutside { index: usize, service: Service },
    /// The destination (a `to:` entry `index`, or the row's own destination
    /// `label` when `to:` is absent) receives none of the narrowed services.
    DestinationGetsNothing { index: Option<usize>, label: String },
    /// `services:` entry `index` (`service`) goes to none of the narrowed destinations.
    ServiceReachesNothing { index: usize, service: Service },
}

/// Whether service `s` admits only what `t` admits.
pub(crate) fn service_within(s: &Service, t: &Service) -> bool {
    match t.protocol {
        Protocol::Any => true,
        p => s.protocol == p && t.ports.first <= s.ports.first && s.ports.last <= t.ports.last,
    }
}

/// Whether `net` lies inside one of `nets`.
fn inside(net: &IpNet, nets: &[IpNet]) -> bool {
    nets.iter().any(|n| n.contains(net))
}

/// One destination of the narrowed flow: its labels, networks, and the
/// `to:` entry it came from (if any).
struct Dest {
    labels: Vec<String>,
    nets: Vec<IpNet>,
    index: Option<usize>,
}

/// Narrow `orig` (a flow resolved from its row) with `n`, whose entries are
/// already resolved: `sources[i]` and `destinations[i]` are (label, networks)
/// of the `i`-th `from:`/`to:` entry, `services[i]` the services of the
/// `i`-th `services:` entry. Returns the narrowed flow, which never admits
/// anything `orig` does not, and every part that had to be dropped to keep
/// it so.
#[allow(clippy::type_complexity)]
pub(crate) fn narrow_flow(
    orig: &ResolvedFlow,
    sources: Option<&[(String, Vec<IpNet>)]>,
    destinations: Option<&[(String, Vec<IpNet>)]>,
    services: Option<&[Vec<Service>]>,
) -> (ResolvedFlow, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut out = orig.clone();
    let mut narrowed = Narrowed::default();

    // Sources: networks inside the row's. A same-network flow pairs each
    // network with itself, so its destinations follow its sources.
    if let Some(entries) = sources {
        let mut nets = crate::resolve::UniqueNets::default();
        let mut labels = Vec::new();
        for (index, (label, list)) in entries.iter().enumerate() {
            if list.is_empty() {
                problems.push(Problem::SourceEmpty { index });
            }
            let mut kept = false;
            for net in list {
                if inside(net, &orig.sources) {
                    nets.push(*net);
                    kept = true;
                } else {
                    problems.push(Problem::SourceOutside { index, net: *net });
                }
            }
            if kept && !labels.contains(label) {
                labels.push(label.clone());
            }
        }
        narrowed.source_zones = Some(orig.source_zones.clone());
        out.sources = nets.into_vec();
        out.source_zones = labels;
        if orig.same_network {
            narrowed.destination_zones = Some(orig.destination_zones.clone());
            out.destinations = out.sources.clone();
            out.destination_zones = out.source_zones.clone();
        }
    }
    if orig.same_network {
        // `to:` is refused for same-network flows when the site loads; a
        // service narrowing applies to every pair alike.
        if let Some(lists) = services {
            let (kept, mut p) = narrow_services(orig, lists);
            problems.append(&mut p);
            narrowed.services = Some(orig.services.clone());
            out.services = kept.into_iter().map(|(_, s)| s).collect();
        }
        out.narrowed = Some(narrowed);
        return (out, problems);
    }

    // Destinations: the `to:` entries, or the row's own.
    let dests: Vec<Dest> = match destinations {
        Some(entries) => {
            narrowed.destination_zones = Some(orig.destination_zones.clone());
            entries
                .iter()
                .enumerate()
                .map(|(index, (label, list))| {
                    if list.is_empty() {
                        problems.push(Problem::DestinationEmpty { index });
                    }
                    let nets = list
                        .iter()
                        .filter(|net| {
                            let ok = inside(net, &orig.destinations);
                            if !ok {
                                problems.push(Problem::DestinationOutside { index, net: **net });
                            }
                            ok
                        })
                        .copied()
                        .collect();
                    Dest {
                        labels: vec![label.clone()],
                        nets,
                        index: Some(index),
                    }
                })
                .filter(|d| !d.nets.is_empty())
                .collect()
        }
        None if orig.destination_services.is_empty() => vec![Dest {
            labels: orig.destination_zones.clone(),
            nets: orig.destinations.clone(),
            index: None,
        }],
        None => orig
            .destination_services
            .iter()
            .map(|d| Dest {
                labels: vec![d.zone.clone()],
                nets: d.destinations.clone(),
                index: None,
            })
            .collect(),
    };

    // Services: each inside one of the row's.
    let candidates: Vec<(Option<usize>, Service)> = match services {
        Some(lists) => {
            narrowed.services = Some(orig.services.clone());
            let (kept, mut p) = narrow_services(orig, lists);
            problems.append(&mut p);
            kept.into_iter().map(|(i, s)| (Some(i), s)).collect()
        }
        None => orig.services.iter().map(|s| (None, *s)).collect(),
    };

    // Each destination keeps the services that every one of its networks
    // already received from the row.
    let mut given: Vec<Vec<Service>> = Vec::new();
    let mut kept_dests: Vec<&Dest> = Vec::new();
    for d in &dests {
        let svcs: Vec<Service> = candidates
            .iter()
            .map(|(_, s)| *s)
            .filter(|s| {
                d.nets
                    .iter()
                    .all(|n| orig.services_to(n).iter().any(|t| service_within(s, t)))
            })
            .collect();
        if svcs.is_empty() {
            // When every narrowed service lies outside the row's, that is
            // the problem already reported.
            if candidates.is_empty() {
                continue;
            }
            problems.push(Problem::DestinationGetsNothing {
                index: d.index,
                label: d.labels.join(" "),
            });
            continue;
        }
        given.push(svcs);
        kept_dests.push(d);
    }
    let mut final_services = Vec::new();
    for (index, s) in &candidates {
        if given.iter().any(|g| g.contains(s)) {
            if !final_services.contains(s) {
                final_services.push(*s);
            }
        } else if let Some(index) = index {
            problems.push(Problem::ServiceReachesNothing {
                index: *index,
                service: *s,
            });
        }
    }
    let mut nets = crate::resolve::UniqueNets::default();
    let mut labels: Vec<String> = Vec::new();
    for d in &kept_dests {
        nets.extend(d.nets.iter().copied());
        for l in &d.labels {
            if !labels.contains(l) {
                labels.push(l.clone());
            }
        }
    }
    out.destinations = nets.into_vec();
    out.destination_zones = labels;
    out.services = final_services;
    out.destination_services = if given.iter().all(|g| *g == out.services) {
        Vec::new()
    } else {
        kept_dests
            .iter()
            .zip(&given)
            .map(|(d, g)| crate::resolve::DestinationServices {
                zone: d.labels.join(" "),
                destinations: d.nets.clone(),
                services: g.clone(),
            })
            .collect()
    };
    out.narrowed = Some(narrowed);
    (out, problems)
}

/// The narrowed services that lie inside one of the row's, each with the
/// `services:` entry it came from, and a problem for each that does not.
fn narrow_services(
    orig: &ResolvedFlow,
    lists: &[Vec<Service>],
) -> (Vec<(usize, Service)>, Vec<Problem>) {
    let mut kept: Vec<(usize, Service)> = Vec::new();
    let mut problems = Vec::new();
    for (index, list) in lists.iter().enumerate() {
        for s in list {
            if orig.services.iter().any(|t| service_within(s, t)) {
                if !kept.iter().any(|(_, k)| k == s) {
                    kept.push((index, *s));
                }
            } else {
                problems.push(Problem::ServiceOutside { index, service: *s });
            }
        }
    }
    (kept, problems)
}
