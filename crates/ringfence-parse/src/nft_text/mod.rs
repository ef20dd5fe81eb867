//! nft's text language (`nft list ruleset` output and `nft -f` scripts)
//! into the normalized model.
//!
//! The text is read into the items `nft -j list ruleset` would print for the
//! same ruleset (tables, sets, maps, chains, rules with their statements as
//! libnftables JSON) and handed to the JSON reader's lowering
//! ([`crate::nft`]), so a text file and the JSON dump of the same ruleset
//! give the same model and the same verdicts. What differs is only where
//! things come from: each rule's origin is its `file:line`
//! ([`RuleRef::Line`]), and everything the lowering reports at a JSON
//! pointer is reported at the line and column of the text it came from.
//!
//! Several files are read in order into one ruleset, as consecutive
//! `nft -f` runs would build it (`flush ruleset` in a later file clears what
//! the earlier ones made). `include` is refused: give each file instead.

mod expr;
mod lexer;
mod parser;

use ringfence_diag::{InputError, InputErrors, Locus};
use ringfence_model::{RuleRef, Ruleset};

/// The name the lowering sees; every location it reports is mapped back.
const LOWERED: &str = "<nft text>";

/// Whether `text` reads as nft's text language: its first command is one
/// of nft's (`table`, `flush ruleset`, `add table`, `define`, ...).
pub fn looks_like(text: &str) -> bool {
    let Some(first) = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
    else {
        return false;
    };
    let mut words = first.split_whitespace();
    let (a, b) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    match a {
        "table" | "define" | "redefine" | "include" | "insert" => true,
        "flush" => matches!(b, "ruleset" | "table" | "chain" | "set" | "map"),
        "add" | "create" | "delete" | "destroy" => {
            matches!(b, "table" | "chain" | "rule" | "set" | "map" | "element")
        }
        _ => false,
    }
}

/// Parse one file of nft text; `file` names it in errors and rule references.
pub fn parse(text: &str, file: &str) -> Result<Ruleset, InputErrors> {
    parse_files(&[(text, file)])
}

/// Parse several files of nft text, in order, into one ruleset.
pub fn parse_files(sources: &[(&str, &str)]) -> Result<Ruleset, InputErrors> {
    let mut state = parser::State::default();
    for (src, &(text, file)) in sources.iter().enumerate() {
        if text.trim().is_empty() {
            return Err(InputError::whole(
                file,
                "the file is empty; expected an nft script or the output of `nft list ruleset`",
            )
            .into());
        }
        let toks = lexer::lex(text, src, file)?;
        parser::Script::new(toks, file).run(&mut state)?;
    }
    let (items, where_, rule_pos) = state.to_json();
    let names: Vec<&str> = sources.iter().map(|(_, f)| *f).collect();
    let locate = |ptr: &str| locate(ptr, &where_, &names);
    let mut rs = crate::nft::lower(items, LOWERED).map_err(|errs| {
        InputErrors(
            errs.0
                .into_iter()
                .map(|mut e| {
                    if let Locus::Pointer(p) = &e.locus {
                        if let Some((file, line, col)) = locate(p) {
                            e.file = file.to_string();
                            e.locus = Locus::LineColumn { line, column: col };
                        }
                    }
                    if e.file == LOWERED {
                        e.file = names.first().copied().unwrap_or_default().to_string();
                    }
                    if e.help.as_deref().is_some_and(|h| h.contains("nft -j")) {
                        e.help = Some(
                            "check the file with `nft -c -f FILE`; if nft accepts it, this is a limit of ringfence's reader: give the output of `nft -j list ruleset` instead".into(),
                        );
                    }
                    e
                })
                .collect(),
        )
    })?;
    for chain in &mut rs.chains {
        for rule in &mut chain.rules {
            if let RuleRef::NftHandle { handle, .. } = rule.origin {
                if let Some(p) = usize::try_from(handle)
                    .ok()
                    .and_then(|h| rule_pos.get(h.wrapping_sub(1)))
                {
                    rule.origin = RuleRef::Line {
                        file: names[p.src].to_string(),
                        line: p.line,
                    };
                }
            }
        }
    }
    for note in &mut rs.notes {
        if let Some(ptr) = note.location.strip_prefix(&format!("{LOWERED}#")) {
            note.location = match locate(ptr) {
                Some((file, line, col)) => format!("{file}:{line}:{col}"),
                None => names.first().copied().unwrap_or_default().to_string(),
            };
        }
    }
    rs.source = names.join(",");
    Ok(rs)
}

/// The text position of a JSON pointer into the printed items:
/// `/nftables/I/rule/expr/K...` is statement K of that rule,
/// `/nftables/I/set/elem/K...` element K of that set, anything else the
/// item's declaration.
fn locate<'n>(
    ptr: &str,
    where_: &[parser::ItemPos],
    names: &[&'n str],
) -> Option<(&'n str, u64, u64)> {
    let mut parts = ptr.trim_start_matches('/').split('/');
    if parts.next()? != "nftables" {
        return None;
    }
    let item = where_.get(parts.next()?.parse::<usize>().ok()?)?;
    let _kind = parts.next();
    let sub = parts.next();
    let k = parts.next().and_then(|k| k.parse::<usize>().ok());
    let pos = match (sub, k) {
        (Some("expr" | "elem"), Some(k)) => item.parts.get(k).copied().unwrap_or(item.pos),
        _ => item.pos,
    };
    Some((names.get(pos.src)?, pos.line, pos.col))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_nft_scripts_and_listings() {
        assert!(looks_like("#!/usr/sbin/nft -f\n\nflush ruleset\n"));
        assert!(looks_like("table inet filter {\n}\n"));
        assert!(looks_like("add rule ip filter input accept\n"));
        assert!(!looks_like("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"));
        assert!(!looks_like("create myset hash:ip family inet\n"));
        assert!(!looks_like("add myset 198.18.0.1\n"));
    }

    #[test]
    fn rules_reference_their_file_and_line() {
        let rs = parse(
            "table inet t {\n  chain fw {\n    type filter hook forward priority 0; policy drop;\n    tcp dport 22 accept\n  }\n}\n",
            "fw.nft",
        )
        .unwrap();
        let fw = rs.chains.iter().find(|c| c.name == "inet t fw").unwrap();
        assert_eq!(fw.rules.len(), 1);
        assert_eq!(fw.rules[0].origin.to_string(), "fw.nft:4");
    }

    #[test]
    fn lowering_errors_point_at_the_statement() {
        let e = parse(
            "table inet t {\n  chain fw {\n    type filter hook forward priority 0;\n    tcp dport 22 jump nowhere\n  }\n}\n",
            "fw.nft",
        )
        .unwrap_err();
        assert_eq!(e.0[0].position(), "fw.nft:4:18", "{}", e.0[0]);
        assert!(e.0[0].message.contains("nowhere"));
    }

    #[test]
    fn include_is_refused_at_its_line() {
        let e = parse("flush ruleset\ninclude \"other.nft\"\n", "main.nft").unwrap_err();
        assert_eq!(e.0[0].position(), "main.nft:2:1");
        assert!(e.0[0].help.as_deref().unwrap().contains("--ruleset"));
    }

    #[test]
    fn later_files_add_to_earlier_ones() {
        let rs = parse_files(&[
            (
                "flush ruleset\ntable ip f {\n chain c { type filter hook input priority 0; policy drop; }\n}\n",
                "a.nft",
            ),
            ("define P = { 22, 443 }\nadd rule ip f c tcp dport $P accept\n", "b.nft"),
        ])
        .unwrap();
        let c = rs.chains.iter().find(|c| c.name == "ip f c").unwrap();
        let real: Vec<_> = c
            .rules
            .iter()
            .filter(|r| matches!(r.origin, RuleRef::Line { .. }))
            .collect();
        assert_eq!(real.len(), 1);
        assert_eq!(real[0].origin.to_string(), "b.nft:2");
    }
}
