//! Several input files read as the one ruleset a host runs.
//!
//! - `iptables-save` and `ip6tables-save`: each file applies to its own
//!   family. Each family's base chains let the other family's packets pass
//!   untouched (they are the other file's business); a family no file (and
//!   no nft or NSX input) covers is *not covered*: its packets meet an
//!   unmodelled first rule, so every result about them is "unknown", never
//!   blocked or allowed, and a note says which file is missing.
//! - `ipset save` files: the sets `-m set --match-set` names; a set a rule
//!   names that no file defines is an error naming it.
//! - nft text files: read in order as one script, the way consecutive
//!   `nft -f` runs build one ruleset.
//! - nft JSON and NSX exports: each read on its own.
//!
//! The parts are then put side by side in one [`Ruleset`]: chains keep
//! their names (a name two files share gets the file name after it) and
//! every base chain sits on its hook at its priority, as in the kernel.

use crate::{detect_format, ipset, iptables, jump_loop, loop_error, nft, nft_text, nsx};
use crate::{RulesetFormat, Sets};
use ringfence_diag::{InputError, InputErrors};
use ringfence_model::{
    Action, AddrSet, Chain, ChainId, EnforcedAt, Match, Opaque, ParseNote, Policy, Rule, RuleRef,
    Ruleset, SourceFormat,
};

/// What one input file is.
enum Kind {
    Ipset,
    Iptables,
    NftText,
    NftJson,
    Nsx,
}

/// Parse `inputs` (each `(text, name)`) as one ruleset; `format` names the
/// format of every ruleset file (`ipset save` files are recognized whatever
/// it says), or [`RulesetFormat::Auto`] to detect each file's.
///
/// One file that is not `ipset save` output gives what
/// [`crate::parse_ruleset`] gives, except that an iptables-save file covers
/// only its own family (see the module documentation).
pub fn parse_rulesets(
    inputs: &[(&str, &str)],
    format: RulesetFormat,
) -> Result<Ruleset, InputErrors> {
    parse_rulesets_for(inputs, format, Families::BOTH)
}

/// The address families a ruleset must cover to answer the questions asked
/// of it (a site with no IPv6 network asks nothing about IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Families {
    /// IPv4 matters.
    pub v4: bool,
    /// IPv6 matters.
    pub v6: bool,
}

impl Families {
    /// Both families.
    pub const BOTH: Families = Families { v4: true, v6: true };
}

/// [`parse_rulesets`], where only the families in `need` must be covered:
/// a family no file covers is reported as not covered only if it is
/// needed; otherwise an iptables file's chains judge it as they are.
pub fn parse_rulesets_for(
    inputs: &[(&str, &str)],
    format: RulesetFormat,
    need: Families,
) -> Result<Ruleset, InputErrors> {
    let Some(&(_, first_name)) = inputs.first() else {
        return Err(InputError::whole(
            "<none>",
            "no ruleset file given: expected at least one --ruleset FILE",
        )
        .into());
    };
    let mut kinds = Vec::with_capacity(inputs.len());
    for &(text, name) in inputs {
        let f = if ipset::looks_like(text) {
            Kind::Ipset
        } else {
            match format {
                RulesetFormat::Auto => match detect_format(text, name)? {
                    RulesetFormat::IptablesSave => Kind::Iptables,
                    RulesetFormat::NftText => Kind::NftText,
                    RulesetFormat::NftJson => Kind::NftJson,
                    _ => Kind::Nsx,
                },
                RulesetFormat::IptablesSave => Kind::Iptables,
                RulesetFormat::NftText => Kind::NftText,
                RulesetFormat::NftJson => Kind::NftJson,
                RulesetFormat::NsxJson => Kind::Nsx,
            }
        };
        kinds.push(f);
    }

    let mut sets = Sets::new();
    let mut errors = Vec::new();
    for (&(text, name), k) in inputs.iter().zip(&kinds) {
        if matches!(k, Kind::Ipset) {
            if let Err(e) = sets.add_file(text, name) {
                errors.extend(e.0);
            }
        }
    }
    let has = |want: fn(&Kind) -> bool| kinds.iter().any(want);
    if !sets.is_empty() && !has(|k| matches!(k, Kind::Iptables)) {
        errors.push(
            InputError::whole(
                sets.files().join(", "),
                "ipset definitions without iptables rules: only iptables `-m set` matches read them",
            )
            .with_help("give the iptables-save output whose rules name these sets as another --ruleset"),
        );
    }
    if !errors.is_empty() {
        return Err(InputErrors(errors));
    }

    // Parse each part; nft text files together, in order.
    let mut parts: Vec<Ruleset> = Vec::new();
    let nft_texts: Vec<(&str, &str)> = inputs
        .iter()
        .zip(&kinds)
        .filter(|(_, k)| matches!(k, Kind::NftText))
        .map(|(i, _)| *i)
        .collect();
    let mut nft_text_done = false;
    for (&(text, name), k) in inputs.iter().zip(&kinds) {
        let parsed = match k {
            Kind::Ipset => continue,
            Kind::Iptables => {
                iptables::parse_with_sets(text, name, (!sets.is_empty()).then_some(&sets))
            }
            Kind::NftText if nft_text_done => continue,
            Kind::NftText => {
                nft_text_done = true;
                nft_text::parse_files(&nft_texts)
            }
            Kind::NftJson => nft::parse(text, name),
            Kind::Nsx => nsx::parse(text, name),
        };
        match parsed {
            Ok(rs) => {
                if let Some((rule, path)) = jump_loop(&rs) {
                    let e = match &rule.origin {
                        RuleRef::Line { file, .. } => loop_error(text, file, rule, &path),
                        _ => loop_error(text, name, rule, &path),
                    };
                    errors.push(e);
                } else {
                    parts.push(rs);
                }
            }
            Err(e) => errors.extend(e.0),
        }
    }
    if !errors.is_empty() {
        return Err(InputErrors(errors));
    }
    if parts.is_empty() {
        return Err(InputError::whole(
            first_name,
            "only ipset definitions given: expected a ruleset (iptables-save, nft or NSX) as well",
        )
        .into());
    }

    // Family coverage of iptables files.
    let fam = |rs: &Ruleset| match rs.format {
        SourceFormat::IptablesSave => Some(false),
        SourceFormat::Ip6tablesSave => Some(true),
        _ => None,
    };
    let mut seen: [Option<&str>; 2] = [None, None];
    for rs in &parts {
        if let Some(v6) = fam(rs) {
            if let Some(prev) = seen[v6 as usize] {
                return Err(InputError::whole(
                    rs.source.clone(),
                    format!(
                        "a second {} file (the first is {prev}): expected one iptables-save and one ip6tables-save at most",
                        if v6 { "ip6tables-save" } else { "iptables-save" }
                    ),
                )
                .with_help("each file is a whole table dump of one family; give the one the host runs")
                .into());
            }
            seen[v6 as usize] = Some(rs.source.as_str());
        }
    }
    let others = parts.iter().any(|rs| fam(rs).is_none());
    let covered = [others || seen[0].is_some(), others || seen[1].is_some()];
    let seen: [Option<String>; 2] = [seen[0].map(str::to_string), seen[1].map(str::to_string)];
    let needed = [need.v4, need.v6];
    for rs in &mut parts {
        if let Some(v6) = fam(rs) {
            let other_v6 = !v6;
            if !covered[other_v6 as usize] && !needed[other_v6 as usize] {
                continue;
            }
            cover_other_family(
                rs,
                other_v6,
                covered[other_v6 as usize],
                seen[other_v6 as usize].as_deref(),
            );
        }
    }
    Ok(merge(parts))
}

/// The name of the chain standing for a family no file covers.
fn uncovered_chain(what: &str) -> String {
    format!("?{what} not covered")
}

/// The families [`parse_rulesets_for`] was asked to cover and no file
/// given covers (their packets' fate is unknown in `rs`).
pub fn uncovered_families(rs: &Ruleset) -> Families {
    let has = |what: &str| rs.chains.iter().any(|c| c.name == uncovered_chain(what));
    Families {
        v4: has("IPv4"),
        v6: has("IPv6"),
    }
}

/// Put the first rule of each base chain of `rs` (a one-family iptables
/// dump) in charge of the other family's packets: let them pass when
/// another file covers that family, else make them unknown.
fn cover_other_family(rs: &mut Ruleset, other_v6: bool, covered: bool, by: Option<&str>) {
    let (what, tool) = if other_v6 {
        ("IPv6", "ip6tables-save")
    } else {
        ("IPv4", "iptables-save")
    };
    let addrs = if other_v6 {
        AddrSet::all_v6()
    } else {
        AddrSet::all_v4()
    };
    let source = rs.source.clone();
    if !covered {
        rs.notes.push(ParseNote {
            location: source.clone(),
            message: format!(
                "{what} is not covered: no {tool} output was given, so every result about {what} packets is unknown (give it as another --ruleset)"
            ),
        });
    }
    // Packets of a family no file covers go to a synthesized `?` chain: an
    // unknown target, whose fate is unknown (never read as "may not match").
    let unknown = (!covered).then(|| {
        rs.chains.push(Chain {
            name: uncovered_chain(what),
            base: None,
            rules: vec![Rule {
                matches: Match {
                    opaque: vec![Opaque {
                        text: format!("{what} not covered: no {tool} output given"),
                    }],
                    ..Match::any()
                },
                action: Action::Drop,
                origin: RuleRef::Policy {
                    chain: format!("{what} not covered: no {tool} output given"),
                },
                comment: None,
            }],
        });
        ChainId(rs.chains.len() - 1)
    });
    for c in rs.chains.iter_mut().filter(|c| c.base.is_some()) {
        // The file's rules never match the other family; only a drop
        // policy would catch it, so only such chains need the pass rule.
        let drops = c.base.as_ref().is_some_and(|b| b.policy == Policy::Drop);
        if unknown.is_none() && !drops {
            continue;
        }
        let (action, origin, comment) = match unknown {
            None => (
                Action::Accept,
                RuleRef::Policy {
                    chain: format!(
                        "{} (not applied: {what} packets are filtered by {})",
                        c.name,
                        by.unwrap_or("the other rulesets given")
                    ),
                },
                format!("synthesized: {source} does not see {what} packets"),
            ),
            Some(target) => (
                Action::Jump { target },
                RuleRef::Policy {
                    chain: format!("{} ({what} not covered: no {tool} output given)", c.name),
                },
                format!("synthesized: {what} is not covered by the files given"),
            ),
        };
        c.rules.insert(
            0,
            Rule {
                matches: Match {
                    src: addrs.clone(),
                    ..Match::any()
                },
                action,
                origin,
                comment: Some(comment),
            },
        );
    }
}

/// The parts side by side in one ruleset.
fn merge(parts: Vec<Ruleset>) -> Ruleset {
    let mut it = parts.into_iter();
    let mut out = it.next().expect("at least one part");
    if it.len() == 0 {
        return out;
    }
    let mut sources = vec![out.source.clone()];
    for mut rs in it {
        let offset = out.chains.len();
        for c in &mut rs.chains {
            if out.chains.iter().any(|o| o.name == c.name) {
                c.name = format!("{} ({})", c.name, rs.source);
            }
            for r in &mut c.rules {
                if let Action::Jump { target } | Action::Goto { target } = &mut r.action {
                    *target = ChainId(target.0 + offset);
                }
            }
        }
        out.chains.extend(rs.chains);
        out.notes.extend(rs.notes);
        // A packet meets the rules of every part: the whole is enforced
        // wherever one part is, so everywhere as soon as one part is.
        out.enforced_at = match (out.enforced_at.take(), rs.enforced_at) {
            (Some(a), Some(b)) => Some(EnforcedAt {
                what: if a.what == b.what {
                    a.what
                } else {
                    format!("{}; {}", a.what, b.what)
                },
                addrs: a.addrs.union(&b.addrs),
            }),
            _ => None,
        };
        sources.push(rs.source);
    }
    out.source = sources.join(", ");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An NSX export whose one DROP rule is applied to a group of `cidr`.
    fn nsx_scoped(group: &str, cidr: &str) -> String {
        serde_json::json!([
            {"resource_type": "Group", "id": group, "expression": [
                {"resource_type": "IPAddressExpression", "ip_addresses": [cidr]}]},
            {"resource_type": "SecurityPolicy", "id": format!("p-{group}"), "rules": [
                {"resource_type": "Rule", "id": "deny", "source_groups": ["ANY"],
                 "destination_groups": ["ANY"], "services": ["ANY"], "action": "DROP",
                 "scope": [format!("/infra/domains/default/groups/{group}")]}]},
        ])
        .to_string()
    }

    #[test]
    fn merged_scoped_files_are_enforced_at_the_union_and_any_unscoped_file_widens_to_everywhere() {
        let a = nsx_scoped("a", "198.18.1.0/24");
        let b = nsx_scoped("b", "198.18.2.0/24");
        let both =
            parse_rulesets(&[(&a, "a.json"), (&b, "b.json")], RulesetFormat::Auto).expect("parses");
        let e = both.enforced_at.expect("both files scoped");
        assert_eq!(e.what, "vNICs in group a; vNICs in group b");
        assert!(e.addrs.v4.contains(u32::from_be_bytes([198, 18, 1, 7])));
        assert!(e.addrs.v4.contains(u32::from_be_bytes([198, 18, 2, 7])));
        assert!(!e.addrs.v4.contains(u32::from_be_bytes([198, 18, 3, 7])));
        let ipt =
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
        let mixed = parse_rulesets(&[(&a, "a.json"), (ipt, "rules.v4")], RulesetFormat::Auto)
            .expect("parses");
        assert!(mixed.enforced_at.is_none());
    }
}
