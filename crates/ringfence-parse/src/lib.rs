//! Parsers from iptables-save, nft JSON and text, and NSX DFW exports into the normalized firewall model.
//!
//! [`parse_ruleset`] reads one file: it detects the format (or takes it from
//! the caller) and returns a [`Ruleset`] or every input error found, each
//! with its location. [`parse_rulesets`] reads several files as the one
//! ruleset a host runs: iptables-save with ip6tables-save (each for its own
//! family), rules with the `ipset save` output their `-m set` matches name,
//! nft text split over files.

pub mod ipset;
pub mod iptables;
mod multi;
pub mod nft;
pub mod nft_text;
pub mod nsx;
mod values;

pub use ipset::Sets;
pub use multi::{parse_rulesets, parse_rulesets_for, uncovered_families, Families};

use ringfence_diag::{InputError, InputErrors};
use ringfence_model::Ruleset;

/// The ruleset formats ringfence reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulesetFormat {
    /// Decide from the content.
    Auto,
    /// `iptables-save` or `ip6tables-save` output.
    IptablesSave,
    /// `nft -j list ruleset`.
    NftJson,
    /// nft's text language: `nft list ruleset` output or an `nft -f` script.
    NftText,
    /// NSX Policy API JSON.
    NsxJson,
}

impl RulesetFormat {
    /// Parse the CLI spelling (`auto`, `iptables`, `nft`, `nsx`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "auto" => Some(Self::Auto),
            "iptables" | "iptables-save" | "ip6tables" | "ip6tables-save" => {
                Some(Self::IptablesSave)
            }
            "nft" | "nft-json" | "nftables" => Some(Self::NftJson),
            "nft-text" | "nft-script" => Some(Self::NftText),
            "nsx" | "nsx-json" => Some(Self::NsxJson),
            _ => None,
        }
    }
}

/// Decide the format of `text` from its content.
///
/// JSON with a top-level `"nftables"` key is nft JSON; any other JSON is taken
/// as an NSX export; text whose first command is nft's (`table`, `flush
/// ruleset`, `add rule`, ...) is nft text; text with `*table` or `:CHAIN`
/// lines is iptables-save, and `-P`/`-N`/`-A` command lines (`iptables -S`,
/// Aerleon's iptables target) are read as the filter table they build.
pub fn detect_format(text: &str, file: &str) -> Result<RulesetFormat, InputError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text)
        {
            if map.contains_key("nftables") {
                return Ok(RulesetFormat::NftJson);
            }
        }
        return Ok(RulesetFormat::NsxJson);
    }
    if nft_text::looks_like(text) {
        return Ok(RulesetFormat::NftText);
    }
    let looks_iptables = text.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with('*')
            || l.starts_with(':')
            || l.starts_with("-A ")
            || l.starts_with("-P ")
            || l.starts_with("-N ")
    });
    if looks_iptables {
        return Ok(RulesetFormat::IptablesSave);
    }
    Err(InputError::whole(
        file,
        "cannot tell the ruleset format: expected iptables-save text (`*filter`, `:CHAIN` lines), \
         nft text (`table ...`, `flush ruleset`, `add rule ...`), \
         nft JSON (a top-level \"nftables\" key) or an NSX Policy API JSON export",
    )
    .with_help("name the format with --ruleset-format iptables|nft|nft-text|nsx"))
}

/// Parse a ruleset in `format` (or the detected one) into the normalized model.
///
/// `file` is the name used in error messages and rule references.
pub fn parse_ruleset(
    text: &str,
    file: &str,
    format: RulesetFormat,
) -> Result<Ruleset, InputErrors> {
    let format = match format {
        RulesetFormat::Auto => detect_format(text, file)?,
        f => f,
    };
    let rs = match format {
        RulesetFormat::Auto => unreachable!("resolved above"),
        RulesetFormat::IptablesSave => iptables::parse(text, file)?,
        RulesetFormat::NftJson => nft::parse(text, file)?,
        RulesetFormat::NftText => nft_text::parse(text, file)?,
        RulesetFormat::NsxJson => nsx::parse(text, file)?,
    };
    match jump_loop(&rs) {
        Some((rule, path)) => Err(loop_error(text, file, rule, &path).into()),
        None => Ok(rs),
    }
}

/// The first jump/goto loop, as the rule that closes it and the chain names
/// along it. Both kernels refuse to load a ruleset with a loop, so a file
/// holding one was not dumped from a kernel: it is reported, not analysed.
/// Iterative, so that thousands of nested chains cannot exhaust the stack.
pub(crate) fn jump_loop(rs: &Ruleset) -> Option<(&ringfence_model::Rule, Vec<String>)> {
    use ringfence_model::Action;
    let target = |r: &ringfence_model::Rule| match r.action {
        Action::Jump { target } | Action::Goto { target } => Some(target.0),
        _ => None,
    };
    // 0: unvisited, 1: on the current path, 2: done.
    let mut state = vec![0u8; rs.chains.len()];
    for start in 0..rs.chains.len() {
        if state[start] != 0 {
            continue;
        }
        // (chain, next rule index to look at)
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (chain, ref mut next)) = stack.last_mut() {
            let rules = &rs.chains[chain].rules;
            let Some(rule) = rules.get(*next) else {
                state[chain] = 2;
                stack.pop();
                continue;
            };
            *next += 1;
            let Some(t) = target(rule).filter(|t| *t < rs.chains.len()) else {
                continue;
            };
            match state[t] {
                0 => {
                    state[t] = 1;
                    stack.push((t, 0));
                }
                1 => {
                    let from = stack.iter().position(|(c, _)| *c == t).unwrap_or(0);
                    let mut path: Vec<String> = stack[from..]
                        .iter()
                        .map(|(c, _)| rs.chains[*c].name.clone())
                        .collect();
                    path.push(rs.chains[t].name.clone());
                    return Some((rule, path));
                }
                _ => {}
            }
        }
    }
    None
}

pub(crate) fn loop_error(
    text: &str,
    file: &str,
    rule: &ringfence_model::Rule,
    path: &[String],
) -> InputError {
    use ringfence_model::RuleRef;
    let message = format!(
        "jump loop: {}; expected chains that never lead back to themselves (the kernel refuses to load a loop)",
        path.join(" -> ")
    );
    let e = match &rule.origin {
        RuleRef::Line { line, .. } => InputError::at_line(file, *line, message),
        RuleRef::NftHandle {
            family,
            table,
            chain,
            handle,
        } => match nft_rule_pointer(text, family, table, chain, *handle) {
            Some(p) => InputError::at_pointer(file, p, message),
            None => InputError::whole(file, format!("{message} (rule handle {handle})")),
        },
        other => InputError::whole(file, format!("{message} (at {other})")),
    };
    e.with_help(
        "this file was not dumped from a running kernel; check how it was produced or edited",
    )
}

/// The JSON pointer of the nft rule with this handle.
fn nft_rule_pointer(
    text: &str,
    family: &str,
    table: &str,
    chain: &str,
    handle: u64,
) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let items = v.get("nftables")?.as_array()?;
    items.iter().enumerate().find_map(|(i, item)| {
        let r = item.get("rule")?;
        (r.get("family")?.as_str()? == family
            && r.get("table")?.as_str()? == table
            && r.get("chain")?.as_str()? == chain
            && r.get("handle")?.as_u64()? == handle)
            .then(|| format!("/nftables/{i}/rule"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_format_from_content() {
        assert_eq!(
            detect_format("{\"nftables\": []}", "f").unwrap(),
            RulesetFormat::NftJson
        );
        assert_eq!(
            detect_format("{\"children\": []}", "f").unwrap(),
            RulesetFormat::NsxJson
        );
        assert_eq!(
            detect_format("# x\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", "f").unwrap(),
            RulesetFormat::IptablesSave
        );
        let e = detect_format("hello world\n", "r.txt").unwrap_err();
        assert_eq!(e.position(), "r.txt");
        assert!(e.message.contains("cannot tell"));
    }
}
