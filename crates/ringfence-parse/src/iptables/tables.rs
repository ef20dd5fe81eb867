//! iptables tables and chains: the `*table` ... `COMMIT` blocks, `:CHAIN
//! POLICY` declarations and the command form's `-P`/`-N` lines, the base
//! chain each built-in chain is (hook and priority), the two-pass reading of
//! a file (declarations first, then rule lines, large files on two threads)
//! and the assembly of the rules into the ruleset's chains.

use super::matches::RuleBuilder;
use super::tokens::{rule_tokens, tokenize_into, Tok, Words};
use super::{targets, Ctx, Family};
use crate::ipset::Sets;
use ringfence_diag::{closest, InputError, InputErrors};
use ringfence_model::{
    Action, BaseChain, Chain, ChainId, CtStates, Hook, Match, Opaque, ParseNote, Policy, Rule,
    RuleRef, Ruleset, SourceFormat,
};
use std::borrow::Cow;
use std::collections::HashMap;

/// Files with at least this many rule lines are parsed on two threads.
const PARALLEL_RULES: usize = 4096;

/// The iptables tables, in the order the kernel's hooks meet them.
const TABLES: [&str; 5] = ["raw", "mangle", "nat", "filter", "security"];

/// The base chain a built-in chain of a table is: its hook and the kernel's
/// priority for that table on that hook (`NF_IP_PRI_RAW` -300,
/// `NF_IP_PRI_MANGLE` -150, `NF_IP_PRI_NAT_DST` -100 on PREROUTING and
/// OUTPUT, `NF_IP_PRI_FILTER` 0, `NF_IP_PRI_SECURITY` 50,
/// `NF_IP_PRI_NAT_SRC` 100 on POSTROUTING and INPUT). `None` for a name that
/// is not a built-in chain of that table (a user chain).
pub fn table_base(table: &str, chain: &str) -> Option<(Hook, i32)> {
    let hook = match chain {
        "PREROUTING" => Hook::Prerouting,
        "INPUT" => Hook::Input,
        "FORWARD" => Hook::Forward,
        "OUTPUT" => Hook::Output,
        "POSTROUTING" => Hook::Postrouting,
        _ => return None,
    };
    let priority = match (table, hook) {
        ("raw", Hook::Prerouting | Hook::Output) => -300,
        ("mangle", _) => -150,
        ("nat", Hook::Prerouting | Hook::Output) => -100,
        ("nat", Hook::Input | Hook::Postrouting) => 100,
        ("filter", Hook::Input | Hook::Forward | Hook::Output) => 0,
        ("security", Hook::Input | Hook::Forward | Hook::Output) => 50,
        _ => return None,
    };
    Some((hook, priority))
}

/// The conntrack states of the packets the nat table's chains see.
const NAT_STATES: u8 = CtStates::NEW | CtStates::RELATED;

/// The model name of a chain of a table: filter chains keep their name,
/// the others get the table as a prefix (`nat:PREROUTING`).
fn model_name(table: &str, chain: &str) -> String {
    if table == "filter" {
        chain.to_string()
    } else {
        format!("{table}:{chain}")
    }
}

/// A rule line kept until every chain is declared; re-tokenized when parsed
/// (holding every token of a 100k-rule file at once costs more memory than
/// splitting the line twice costs time).
pub(super) struct PendingRule<'t> {
    /// The table the line is in (one of [`TABLES`]).
    pub table: &'static str,
    /// The chain named after `-A`.
    pub chain: Cow<'t, str>,
    chain_col: u64,
    line: u64,
    raw: &'t str,
}

/// Read iptables-save or ip6tables-save output (or its command form) with
/// the `ipset save` sets its `-m set` matches name, if given.
pub(super) fn parse_file(
    text: &str,
    file: &str,
    sets: Option<&Sets>,
) -> Result<Ruleset, InputErrors> {
    let mut errors = Vec::new();
    let mut chains: Vec<Chain> = Vec::new();
    let mut chain_index: HashMap<String, usize> = HashMap::new();
    let mut pending: Vec<PendingRule> = Vec::new();
    let mut notes = Vec::new();
    let mut table: Option<(String, u64)> = None;
    let mut saw_filter = false;
    // Per declared chain: its table and its name in that table.
    let mut declared_in: Vec<(&'static str, String)> = Vec::new();
    let mut family_hint: Option<(Family, u64)> = None;
    // One token buffer for every line of the first pass.
    let mut toks: Vec<Tok> = Vec::with_capacity(32);
    // `iptables -S` output and Aerleon/Capirca's iptables target: `-P`,
    // `-N` and `-A` command lines with no `*table`, building the filter
    // table from a fresh one (built-in chains accepting until `-P`).
    let commands = is_command_form(text);
    if commands {
        table = Some(("filter".to_string(), 0));
        saw_filter = true;
        for name in ["INPUT", "FORWARD", "OUTPUT"] {
            let (hook, priority) = table_base("filter", name).expect("built-in chain");
            chain_index.insert(name.to_string(), chains.len());
            chains.push(Chain {
                name: name.to_string(),
                base: Some(BaseChain {
                    hook,
                    priority,
                    policy: Policy::Accept,
                }),
                rules: Vec::new(),
            });
            declared_in.push(("filter", name.to_string()));
        }
    }

    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx as u64 + 1;
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(c) = trimmed.strip_prefix('#') {
            // Aerleon/Capirca name the family in a comment of its own.
            let aerleon = commands && matches!(c.trim(), "inet" | "inet6");
            // `ip6tables-restore` in a header: how ringfence's own output
            // names its family.
            let names_v6 = c.contains("ip6tables-save") || c.contains("ip6tables-restore");
            let names_v4 = c.contains("iptables-save") || c.contains("iptables-restore");
            if (names_v6 || aerleon && c.trim() == "inet6") && family_hint.is_none() {
                family_hint = Some((Family::V6, lineno));
            } else if (names_v4 || aerleon) && family_hint.is_none() {
                family_hint = Some((Family::V4, lineno));
            }
            continue;
        }
        let indent = (line.len() - trimmed.len()) as u64;
        if let Some(name) = trimmed.strip_prefix('*') {
            if let Some((open, at)) = &table {
                errors.push(InputError::at(
                    file,
                    lineno,
                    indent + 1,
                    format!("table `{name}` starts before table `{open}` (line {at}) was closed: expected COMMIT"),
                ));
            }
            let name = name.trim().to_string();
            if name == "filter" {
                saw_filter = true;
            } else if !TABLES.contains(&name.as_str()) {
                notes.push(ParseNote {
                    location: format!("{file}:{lineno}"),
                    message: format!(
                        "table `{name}` ignored: iptables has the tables raw, mangle, nat, filter and security"
                    ),
                });
            }
            table = Some((name, lineno));
            continue;
        }
        if trimmed == "COMMIT" {
            if table.is_none() {
                errors.push(InputError::at(
                    file,
                    lineno,
                    indent + 1,
                    "COMMIT without an open table: expected a `*table` line before it",
                ));
            }
            table = None;
            continue;
        }
        let Some((tname, _)) = &table else {
            errors.push(
                InputError::at(
                    file,
                    lineno,
                    indent + 1,
                    format!(
                        "`{}` outside a table: expected `*filter` before chain and rule lines",
                        trimmed.split_whitespace().next().unwrap_or("")
                    ),
                )
                .with_help("iptables-save output starts each table with a line like `*filter`"),
            );
            continue;
        };
        let known = TABLES.iter().copied().find(|t| t == tname);
        if let Some(rest) = trimmed.strip_prefix(':') {
            let Some(tname) = known else {
                continue;
            };
            let parts: Vec<&str> = rest.split_whitespace().collect();
            if parts.len() < 2 {
                errors.push(InputError::at(
                    file,
                    lineno,
                    indent + 1,
                    "chain line: expected `:NAME POLICY [packets:bytes]`",
                ));
                continue;
            }
            let name = parts[0].to_string();
            let policy_col = indent + 2 + rest.find(parts[1]).unwrap_or(0) as u64;
            let base = match table_base(tname, &name) {
                Some((hook, priority)) => {
                    let policy = match parts[1] {
                        "ACCEPT" => Policy::Accept,
                        "DROP" => Policy::Drop,
                        other => {
                            errors.push(InputError::at(
                                file,
                                lineno,
                                policy_col,
                                format!("chain policy `{other}`: expected ACCEPT or DROP"),
                            ));
                            continue;
                        }
                    };
                    Some(BaseChain {
                        hook,
                        priority,
                        policy,
                    })
                }
                None => {
                    if parts[1] != "-" {
                        errors.push(InputError::at(
                            file,
                            lineno,
                            policy_col,
                            format!(
                                "user chain `{name}` has policy `{}`: expected `-` (only built-in chains have policies)",
                                parts[1]
                            ),
                        ));
                    }
                    None
                }
            };
            let full = model_name(tname, &name);
            if chain_index.contains_key(&full) {
                errors.push(InputError::at(
                    file,
                    lineno,
                    indent + 2,
                    format!(
                        "chain `{name}` is declared twice: expected each `:NAME` once per table"
                    ),
                ));
                continue;
            }
            chain_index.insert(full.clone(), chains.len());
            chains.push(Chain {
                name: full,
                base,
                rules: Vec::new(),
            });
            declared_in.push((tname, name));
            continue;
        }
        // A rule line, possibly with a `[packets:bytes]` counter prefix (iptables-save -c).
        if let Err(e) = tokenize_into(line, file, lineno, &mut toks) {
            errors.push(e);
            continue;
        }
        if toks
            .first()
            .is_some_and(|t| t.text.starts_with('[') && t.text.ends_with(']'))
        {
            toks.remove(0);
        }
        let Some(tname) = known else {
            continue;
        };
        let Some(first) = toks.first().cloned() else {
            // Only `[packets:bytes]` counters on the line, no rule after them.
            errors.push(InputError::at_line(
                file,
                lineno,
                "packet counters with no rule: expected `[packets:bytes] -A CHAIN ...`",
            ));
            continue;
        };
        if commands
            && matches!(
                first.text.as_ref(),
                "-P" | "--policy" | "-N" | "--new-chain"
            )
        {
            if let Err(e) = command_line(
                &toks,
                file,
                lineno,
                &mut chains,
                &mut chain_index,
                &mut declared_in,
            ) {
                errors.push(e);
            }
            continue;
        }
        if first.text != "-A" && first.text != "--append" {
            errors.push(InputError::at(
                file,
                lineno,
                first.col,
                format!(
                    "unexpected `{}`: expected `-A CHAIN ...`, `:CHAIN POLICY`, `*table` or COMMIT",
                    first.text
                ),
            ));
            continue;
        }
        let Some(chain) = toks.get(1) else {
            errors.push(InputError::at(
                file,
                lineno,
                first.col + first.text.len() as u64 + 1,
                "`-A` without a chain name: expected `-A CHAIN`",
            ));
            continue;
        };
        pending.push(PendingRule {
            table: tname,
            chain: chain.text.clone(),
            chain_col: chain.col,
            line: lineno,
            raw: line,
        });
    }
    if let Some((name, at)) = table.as_ref().filter(|_| !commands) {
        errors.push(InputError::at_line(
            file,
            *at,
            format!("table `{name}` is never closed: expected COMMIT before the end of the file"),
        ));
    }

    // Family: from the header comment, else from the first address seen.
    let family = match family_hint {
        Some((f, _)) => f,
        None => {
            let mut fam = Family::V4;
            'outer: for p in &pending {
                for w in rule_tokens(p.raw, file, p.line).windows(2) {
                    if matches!(
                        w[0].text.as_ref(),
                        "-s" | "-d" | "--source" | "--destination" | "--src-range" | "--dst-range"
                    ) {
                        if w[1].text.contains(':') {
                            fam = Family::V6;
                        }
                        break 'outer;
                    }
                }
            }
            fam
        }
    };

    let declared_in = &declared_in;
    let declared = chains.len();
    // Once every chain is declared, rule lines are independent: large files
    // are parsed in two halves on two threads, and the results are put back
    // in file order, so rules, notes, errors and synthesized chains come out
    // exactly as a sequential parse gives them.
    let work = |part: &[PendingRule<'_>]| {
        let mut ctx = Ctx {
            file,
            family,
            notes: Vec::new(),
            sets,
        };
        let mut extra: Vec<Chain> = Vec::new();
        // Per rule line: its chain and how many model rules it gave, in file
        // order; the rules themselves go to one vector (no allocation per rule).
        let mut out: Vec<Result<(usize, usize), InputError>> = Vec::with_capacity(part.len());
        let mut rules: Vec<Rule> = Vec::with_capacity(part.len());
        for p in part {
            let Some(ci) = lookup(&chain_index, p.table, &p.chain) else {
                let mut e = InputError::at(
                    file,
                    p.line,
                    p.chain_col,
                    format!(
                        "rule appended to chain `{}`, which is not declared: expected a `:{} - [0:0]` line in this table",
                        p.chain, p.chain
                    ),
                );
                if let Some(s) = closest(&p.chain, chains_of(declared_in, p.table)) {
                    e = e.with_help(format!("did you mean `{s}`?"));
                }
                out.push(Err(e));
                continue;
            };
            let before = rules.len();
            out.push(
                parse_rule(
                    &mut ctx,
                    p,
                    &chain_index,
                    declared_in,
                    &mut extra,
                    declared,
                    &mut rules,
                )
                .map(|()| (ci, rules.len() - before)),
            );
        }
        (out, rules, ctx.notes, extra)
    };
    let parts = if pending.len() >= PARALLEL_RULES {
        let (first, second) = pending.split_at(pending.len() / 2);
        std::thread::scope(|sc| {
            let h = sc.spawn(|| work(second));
            let a = work(first);
            vec![a, h.join().expect("rule parser thread panicked")]
        })
    } else {
        vec![work(&pending)]
    };
    let mut ctx = Ctx {
        file,
        family,
        notes,
        sets,
    };
    let mut extra_chains: Vec<Chain> = Vec::new();
    for (results, part_rules, part_notes, part_extra) in parts {
        // This part's synthesized chains were numbered from `declared` on its
        // own; renumber them into the file-order list (first use wins).
        let remap: Vec<usize> = part_extra
            .into_iter()
            .map(
                |c| match extra_chains.iter().position(|e| e.name == c.name) {
                    Some(k) => declared + k,
                    None => {
                        extra_chains.push(c);
                        declared + extra_chains.len() - 1
                    }
                },
            )
            .collect();
        ctx.notes.extend(part_notes);
        let mut part_rules = part_rules.into_iter();
        for r in results {
            match r {
                Ok((ci, n)) => {
                    for mut rule in part_rules.by_ref().take(n) {
                        if let Action::Jump { target } = &mut rule.action {
                            if target.0 >= declared {
                                target.0 = remap[target.0 - declared];
                            }
                        }
                        chains[ci].rules.push(rule);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
    }
    chains.extend(extra_chains);
    if !errors.is_empty() {
        return Err(InputErrors(errors));
    }
    if !saw_filter {
        ctx.notes.push(ParseNote {
            location: file.to_string(),
            message: "no filter table: only the other tables' rules (if any) stop packets"
                .to_string(),
        });
    }
    let mut rs = Ruleset {
        format: match family {
            Family::V4 => SourceFormat::IptablesSave,
            Family::V6 => SourceFormat::Ip6tablesSave,
        },
        source: file.to_string(),
        chains,
        notes: ctx.notes,
        enforced_at: None,
    };
    // DSCP, TOS and ECN rewrite the DS field, which the model reads but
    // does not follow through a rewrite: tests of it become two branches.
    if let Some(n) = text.lines().position(|l| {
        let l = l.trim_start();
        l.starts_with("-A ")
            && [" -j DSCP", " -j TOS", " -j ECN"].iter().any(|t| {
                l.find(t).is_some_and(|i| {
                    l[i + t.len()..].starts_with([' ', '\n']) || l.len() == i + t.len()
                })
            })
    }) {
        ringfence_model::fields::tests_made_opaque(
            &mut rs,
            ringfence_model::fields::Rewritten::DsField,
            &format!("{file}:{}", n + 1),
        );
    }
    Ok(rs)
}

/// Whether `text` is in command form (`iptables -S`, Aerleon's iptables
/// target): no `*table` line, and its first rule-like line is `-P`, `-N`
/// or `-A`.
fn is_command_form(text: &str) -> bool {
    let mut lines = text
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    if text.lines().any(|l| l.trim_start().starts_with('*')) {
        return false;
    }
    lines.next().is_some_and(|l| {
        [
            "-P ",
            "-N ",
            "-A ",
            "--policy ",
            "--new-chain ",
            "--append ",
        ]
        .iter()
        .any(|p| l.starts_with(p))
    })
}

/// `-P CHAIN POLICY` or `-N CHAIN` in command form (filter table).
fn command_line(
    toks: &[Tok],
    file: &str,
    line: u64,
    chains: &mut Vec<Chain>,
    index: &mut HashMap<String, usize>,
    declared_in: &mut Vec<(&'static str, String)>,
) -> Result<(), InputError> {
    let op = &toks[0];
    let Some(name) = toks.get(1) else {
        return Err(InputError::at(
            file,
            line,
            op.col,
            format!("`{}` without a chain name", op.text),
        ));
    };
    if matches!(op.text.as_ref(), "-N" | "--new-chain") {
        if index.contains_key(name.text.as_ref()) {
            return Err(InputError::at(
                file,
                line,
                name.col,
                format!(
                    "chain `{}` is created twice: expected each `-N NAME` once",
                    name.text
                ),
            ));
        }
        if table_base("filter", &name.text).is_some() {
            return Err(InputError::at(
                file,
                line,
                name.col,
                format!(
                    "`-N {}`: {} is a built-in chain of the filter table",
                    name.text, name.text
                ),
            ));
        }
        index.insert(name.text.to_string(), chains.len());
        chains.push(Chain {
            name: name.text.to_string(),
            base: None,
            rules: Vec::new(),
        });
        declared_in.push(("filter", name.text.to_string()));
        return Ok(());
    }
    let Some(policy) = toks.get(2) else {
        return Err(InputError::at(
            file,
            line,
            name.col,
            format!(
                "`-P {}` without a policy: expected ACCEPT or DROP",
                name.text
            ),
        ));
    };
    let pol = match policy.text.as_ref() {
        "ACCEPT" => Policy::Accept,
        "DROP" => Policy::Drop,
        other => {
            return Err(InputError::at(
                file,
                line,
                policy.col,
                format!("chain policy `{other}`: expected ACCEPT or DROP"),
            ))
        }
    };
    match index
        .get(name.text.as_ref())
        .and_then(|&i| chains[i].base.as_mut())
    {
        Some(b) => {
            b.policy = pol;
            Ok(())
        }
        None => Err(InputError::at(
            file,
            line,
            name.col,
            format!(
                "`-P {}`: only the built-in chains INPUT, FORWARD and OUTPUT have policies",
                name.text
            ),
        )),
    }
}

/// The index of chain `chain` of `table` (filter names are looked up as
/// they are, without building the prefixed name).
fn lookup(index: &HashMap<String, usize>, table: &str, chain: &str) -> Option<usize> {
    if table == "filter" {
        index.get(chain).copied()
    } else {
        index.get(&model_name(table, chain)).copied()
    }
}

/// The names (inside the table) of the chains declared in `table`.
fn chains_of<'n>(
    declared_in: &'n [(&'static str, String)],
    table: &'n str,
) -> impl Iterator<Item = &'n str> + 'n {
    declared_in
        .iter()
        .filter(move |(t, _)| *t == table)
        .map(|(_, n)| n.as_str())
}

fn parse_rule(
    ctx: &mut Ctx<'_>,
    p: &PendingRule<'_>,
    chain_index: &HashMap<String, usize>,
    declared_in: &[(&'static str, String)],
    extra_chains: &mut Vec<Chain>,
    declared: usize,
    out: &mut Vec<Rule>,
) -> Result<(), InputError> {
    let file = ctx.file;
    let line = p.line;
    let all_toks = rule_tokens(p.raw, file, line);
    let w = Words::of_rule(&all_toks, file, line);
    let toks = w.toks;
    let mut b = RuleBuilder::new(ctx.family);
    let mut action = Action::Continue;
    let mut i = 0;
    let err = |t: &Tok, msg: String| w.err(t, msg);
    let end_col = w.end_col;
    while i < toks.len() {
        let mut neg = false;
        let mut t = toks[i].clone();
        if t.text == "!" {
            neg = true;
            i += 1;
            t = toks.get(i).cloned().ok_or_else(|| {
                InputError::at(
                    file,
                    line,
                    end_col + 1,
                    "`!` at the end of the line: expected an option after it",
                )
            })?;
        }
        if !matches!(t.text.as_ref(), "-j" | "--jump" | "-g" | "--goto") {
            i = b.option(ctx, &w, i, t, neg)?;
            continue;
        }
        let several = b.either_ports.is_some() || !b.sets.is_empty();
        let (outcome, next) = targets::read(ctx, &w, i, &t, neg, p, several)?;
        i = next;
        action = match outcome {
            targets::Outcome::Action(a) => a,
            targets::Outcome::Chain {
                goto,
                tok: v,
                unknown,
            } => {
                let name = v.text.as_ref();
                if let Some(ci) = lookup(chain_index, p.table, name) {
                    if table_base(p.table, name).is_some() {
                        return Err(err(
                            &v,
                            format!(
                                "jump to built-in chain `{name}`: expected a user-defined chain"
                            ),
                        ));
                    }
                    if goto {
                        Action::Goto {
                            target: ChainId(ci),
                        }
                    } else {
                        Action::Jump {
                            target: ChainId(ci),
                        }
                    }
                } else if unknown {
                    // A target that changes what later rules or routing
                    // see: the packets it matches have an unknown fate.
                    let synth = format!("?{name}");
                    let id = match extra_chains.iter().position(|c| c.name == synth) {
                        Some(k) => declared + k,
                        None => {
                            extra_chains.push(Chain {
                                name: synth.clone(),
                                base: None,
                                rules: vec![Rule {
                                    matches: Match {
                                        opaque: vec![Opaque {
                                            text: format!("-j {name}"),
                                        }],
                                        ..Match::any()
                                    },
                                    action: Action::Drop,
                                    origin: RuleRef::Line {
                                        file: file.to_string(),
                                        line,
                                    },
                                    comment: None,
                                }],
                            });
                            declared + extra_chains.len() - 1
                        }
                    };
                    ctx.notes.push(ParseNote {
                                location: format!("{file}:{line}:{}", v.col),
                                message: format!(
                                    "target {name} changes what later rules or routing see and is not modelled; packets reaching it have an unknown verdict"
                                ),
                            });
                    Action::Jump {
                        target: ChainId(id),
                    }
                } else {
                    let mut e = err(
                                &v,
                                format!(
                                    "{} target `{name}` is not a declared chain: expected ACCEPT, DROP, REJECT, RETURN, LOG or a chain declared with `:{name} - [0:0]`",
                                    if goto { "goto" } else { "jump" }
                                ),
                            );
                    if let Some(s) = closest(name, chains_of(declared_in, p.table)) {
                        e = e.with_help(format!("did you mean `{s}`?"));
                    }
                    return Err(e);
                }
            }
        };
    }
    b.close_conntrack();
    let comment = b.comment.take();
    if p.table == "nat" {
        // The kernel runs the nat chains only for the first packet of a
        // connection (a new one, or an expected one conntrack calls
        // related); later packets take the translation conntrack recorded.
        b.m.ct_state = CtStates(b.m.ct_state.0 & NAT_STATES);
    }
    let origin = RuleRef::Line {
        file: file.to_string(),
        line,
    };
    let mk = |m: Match| Rule {
        matches: m,
        action: action.clone(),
        origin: origin.clone(),
        comment: comment.clone(),
    };
    let may_jump = matches!(action, Action::Jump { .. } | Action::Goto { .. });
    let alts = b.alternatives(ctx, line, may_jump)?;
    // Rules are appended only here, after every check passed.
    out.extend(alts.into_iter().map(mk));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    #[test]
    fn large_files_parse_in_parallel_with_file_order_results() {
        // Extension targets first used in either half: their synthesized
        // chains are numbered in file order and every jump lands on its own.
        let n = 2 * PARALLEL_RULES + 10;
        let mut text = String::from("*filter\n:FORWARD DROP [0:0]\n:A - [0:0]\n");
        let target = |i: usize| match i {
            7 | 6000 => "SNAT",
            5000 | 8100 => "DNAT",
            8000 => "NFQUEUE",
            _ if i.is_multiple_of(3) => "A",
            _ => "ACCEPT",
        };
        for i in 0..n {
            text.push_str(&format!(
                "-A FORWARD -d 10.0.{}.{}/32 -j {}\n",
                i / 256 % 256,
                i % 256,
                target(i)
            ));
        }
        text.push_str("COMMIT\n");
        let rs = parse(&text, "big.rules").unwrap();
        let names: Vec<&str> = rs.chains.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["FORWARD", "A", "?SNAT", "?DNAT", "?NFQUEUE"]);
        let fwd = &rs.chains[0];
        assert_eq!(fwd.rules.len(), n);
        for (i, r) in fwd.rules.iter().enumerate() {
            let want = target(i);
            match &r.action {
                Action::Jump { target } => {
                    let got = &rs.chains[target.0].name;
                    assert!(
                        got == want || got == &format!("?{want}"),
                        "rule {i}: {got} for {want}"
                    );
                }
                Action::Accept => assert_eq!(want, "ACCEPT", "rule {i}"),
                other => panic!("rule {i}: {other:?}"),
            }
            assert_eq!(
                r.origin,
                RuleRef::Line {
                    file: "big.rules".into(),
                    line: i as u64 + 4
                }
            );
        }
        // The synthesized chain's rule points at the first use.
        assert_eq!(
            rs.chains[3].rules[0].origin,
            RuleRef::Line {
                file: "big.rules".into(),
                line: 5004
            }
        );
        let lines: Vec<u64> = rs
            .notes
            .iter()
            .map(|n| n.location.split(':').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(lines, [11, 5004, 6004, 8004, 8104]);
    }

    #[test]
    fn large_files_report_errors_from_both_halves_in_file_order() {
        let mut text = String::from("*filter\n:FORWARD DROP [0:0]\n");
        for i in 0..2 * PARALLEL_RULES {
            let chain = if i == 10 || i == 7000 {
                "FORWARDD"
            } else {
                "FORWARD"
            };
            text.push_str(&format!("-A {chain} -j ACCEPT\n"));
        }
        text.push_str("COMMIT\n");
        let e = parse(&text, "big.rules").unwrap_err();
        let at: Vec<String> = e.0.iter().map(|e| e.position()).collect();
        assert_eq!(at, ["big.rules:13:4", "big.rules:7003:4"]);
    }
}
