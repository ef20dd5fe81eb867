//! Reading `--ruleset` (given once or more) into one model: every command
//! that analyses a ruleset calls [`load`], so they all accept the same files.
//!
//! Several files make one ruleset (`ringfence_parse::parse_rulesets`):
//! iptables-save with ip6tables-save (each for its own family; a family no
//! file covers is reported as not covered), rules with the `ipset save`
//! output their `-m set` matches name, nft text split over files.

use crate::cmd::trace::FormatArg;
use crate::exit::CliError;
use ringfence_model::Ruleset;
use ringfence_parse::Families;
use ringfence_site::Site;
use std::path::PathBuf;

/// Read and parse the files of one ruleset; every unreadable file and every
/// located parse error is reported (exit 2). A family no file covers is
/// reported as not covered (its packets' fate is unknown).
pub fn load(paths: &[PathBuf], format: FormatArg) -> Result<Ruleset, CliError> {
    load_for(paths, format, Families::BOTH)
}

/// [`load`] for questions about `site`: only the families its networks use
/// must be covered (an IPv4-only site needs no ip6tables-save).
pub fn load_for_site(
    paths: &[PathBuf],
    format: FormatArg,
    site: &Site,
) -> Result<Ruleset, CliError> {
    let nets = || site.zones.values().flatten();
    let need = Families {
        v4: nets().any(|n| n.addr().is_ipv4()),
        v6: nets().any(|n| n.addr().is_ipv6()),
    };
    load_for(paths, format, need)
}

/// [`load`] where only the families in `need` must be covered.
pub(crate) fn load_for(
    paths: &[PathBuf],
    format: FormatArg,
    need: Families,
) -> Result<Ruleset, CliError> {
    let mut errors = Vec::new();
    let mut texts = Vec::with_capacity(paths.len());
    for p in paths {
        let name = p.display().to_string();
        match ringfence_diag::read_input(p, &name, "ruleset") {
            Ok(t) => texts.push((t, name)),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(CliError::Input(ringfence_diag::InputErrors(errors)));
    }
    let inputs: Vec<(&str, &str)> = texts
        .iter()
        .map(|(t, n)| (t.as_str(), n.as_str()))
        .collect();
    Ok(ringfence_parse::parse_rulesets_for(
        &inputs,
        format.into(),
        need,
    )?)
}
