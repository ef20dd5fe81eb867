//! `iptables-save` / `ip6tables-save` parser (iptables 1.8.x output).
//!
//! Every table is read. The built-in chains of `raw`, `mangle`, `nat`,
//! `filter` and `security` become base chains on their hooks at the kernel's
//! priorities (see [`table_base`]), so a packet meets them in kernel order.
//! Chains of the `filter` table keep their names; chains of the other tables
//! are named `table:CHAIN` (for example `nat:PREROUTING`), which keeps names
//! unique and filter-only output unchanged. Every option the model can
//! express exactly becomes a field of the rule's [`Match`]; any other match
//! extension becomes an [`Opaque`] part (the rule "may match") with a
//! [`ParseNote`], so analyses report what it touches as unknown instead of
//! guessing. Targets are read by [`target_effect`]: terminal verdicts keep
//! their meaning, targets that only change what the model never reads
//! continue, and targets that change what later rules or routing see make
//! the packets they match unknown.

mod nat;
mod targets;
mod tokens;

use crate::ipset::{Lowered, SetField, Sets, SET_RULE_BUDGET};
use crate::nft::concat::{Part, TBox};
use ringfence_diag::{closest, InputError, InputErrors};
use ringfence_model::{
    proto, Action, AddrSet, BaseChain, Chain, ChainId, CtNat, CtStates, Hook, IfacePattern,
    IfaceSet, IntervalSet, MarkField, MarkTest, Match, Opaque, ParseNote, Policy, Rule, RuleRef,
    Ruleset, SourceFormat,
};
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use tokens::{rule_tokens, tokenize_into, Tok, Words};

mod matches;

/// Files with at least this many rule lines are parsed on two threads.
const PARALLEL_RULES: usize = 4096;

/// Address family of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

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
struct PendingRule<'t> {
    /// The table the line is in (one of [`TABLES`]).
    table: &'static str,
    chain: Cow<'t, str>,
    chain_col: u64,
    line: u64,
    raw: &'t str,
}

struct Ctx<'a> {
    file: &'a str,
    family: Family,
    notes: Vec<ParseNote>,
    /// The sets of the `ipset save` files given with the ruleset, if any.
    sets: Option<&'a Sets>,
}

/// Parse iptables-save or ip6tables-save output.
pub fn parse(text: &str, file: &str) -> Result<Ruleset, InputErrors> {
    parse_with_sets(text, file, None)
}

/// Parse iptables-save or ip6tables-save output whose `-m set` matches name
/// the sets of `sets` (the `ipset save` files given with it). Without sets,
/// such matches stay opaque; with them, a set that is not defined is an error.
pub fn parse_with_sets(
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

/// Options that end an unknown match extension's argument list.
fn is_core_option(s: &str) -> bool {
    matches!(
        s,
        "-m" | "--match"
            | "-j"
            | "--jump"
            | "-g"
            | "--goto"
            | "-s"
            | "--source"
            | "-d"
            | "--destination"
            | "-p"
            | "--protocol"
            | "-i"
            | "--in-interface"
            | "-o"
            | "--out-interface"
            | "-f"
            | "--fragment"
    )
}

struct RuleBuilder {
    m: Match,
    /// `--ctstate` lists naming SNAT/DNAT: disjoint alternatives of
    /// (states, translations), one model rule each.
    ct_alts: Option<Vec<(u8, CtNat)>>,
    /// A conntrack match (`-m conntrack`) named a state that has no
    /// connection (INVALID, UNTRACKED) beside a test on the connection:
    /// the kernel then skips the connection tests for such packets.
    ct_stateless_ok: bool,
    /// `-m multiport --ports`: split into a source-port rule and a destination-port rule.
    either_ports: Option<IntervalSet<u16>>,
    /// `-m set [!] --match-set NAME FLAGS`, read against the ipset files.
    sets: Vec<SetCond>,
    /// `-m conntrack [!] --ctproto P`: applied once the rule is read.
    ctproto: Vec<matches::CtProto>,
    /// The `-m conntrack` instances (numbered from 1) that test `--ctstate`.
    ctstate_in: Vec<u32>,
    /// How many `-m conntrack` the rule has loaded so far.
    conntrack: u32,
}

/// One `--match-set`: the set, its direction flags (true: src), negation,
/// and where the name is (for errors).
struct SetCond {
    name: String,
    flags: Vec<bool>,
    neg: bool,
    col: u64,
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
    let all_addrs = match ctx.family {
        Family::V4 => AddrSet::all_v4(),
        Family::V6 => AddrSet::all_v6(),
    };
    let mut b = RuleBuilder {
        m: Match {
            src: all_addrs.clone(),
            dst: all_addrs,
            ..Match::any()
        },
        either_ports: None,
        sets: Vec::new(),
        ctproto: Vec::new(),
        ctstate_in: Vec::new(),
        conntrack: 0,
        ct_alts: None,
        ct_stateless_ok: false,
    };
    // Connection tests of `-m conntrack` (status, original tuple): they
    // need a connection.
    let mut ct_conn_test = false;
    let mut comment = None;
    let mut action = Action::Continue;
    let mut i = 0;
    let err = |t: &Tok, msg: String| w.err(t, msg);
    let end_col = w.end_col;
    let value = |i: usize, opt: &Tok| w.value(i, opt);
    let mut current_module: Option<Cow<str>> = None;
    // The address types before the current `-m addrtype`, and whether it
    // limits its tests to one interface (then they are not global tests).
    let mut types_before = (b.m.src_type, b.m.dst_type);
    let mut types_limited = false;
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
        match t.text.as_ref() {
            "-s" | "--source" | "-d" | "--destination" => {
                let v = value(i, &t)?;
                let set = parse_addr_list(ctx, &v, line)?;
                let set = if neg { family_complement(ctx.family, &set) } else { set };
                if t.text.starts_with("-s") || t.text == "--source" {
                    b.m.src = b.m.src.intersect(&set);
                } else {
                    b.m.dst = b.m.dst.intersect(&set);
                }
                i += 2;
            }
            "-p" | "--protocol" => {
                let v = value(i, &t)?;
                let set = parse_protocol(&v.text).ok_or_else(|| {
                    err(
                        &v,
                        format!(
                            "unknown protocol `{}`: expected tcp, udp, icmp, icmpv6, sctp, all or a number 0-255",
                            v.text
                        ),
                    )
                })?;
                b.m.protocol = if neg { set.complement() } else { set };
                i += 2;
            }
            "-i" | "--in-interface" | "-o" | "--out-interface" => {
                let v = value(i, &t)?;
                let pat = IfacePattern::from_iptables(&v.text);
                let set = if neg {
                    IfaceSet::except(vec![pat])
                } else {
                    IfaceSet::only(vec![pat])
                };
                if t.text.starts_with("-i") || t.text == "--in-interface" {
                    b.m.iif = set;
                } else {
                    b.m.oif = set;
                }
                i += 2;
            }
            "-f" | "--fragment" => {
                b.m.opaque.push(Opaque {
                    text: format!("{}-f (fragment)", if neg { "! " } else { "" }),
                });
                ctx.notes.push(ParseNote {
                    location: format!("{file}:{line}"),
                    message: "fragment match is not modelled; results for this rule are unknown"
                        .to_string(),
                });
                i += 1;
            }
            "-4" | "--ipv4" | "-6" | "--ipv6" => i += 1,
            "-m" | "--match" => {
                if neg {
                    return Err(err(&t, "`!` before `-m`: expected `!` before a match option".into()));
                }
                let v = value(i, &t)?;
                current_module = Some(v.text.clone());
                types_before = (b.m.src_type, b.m.dst_type);
                types_limited = false;
                i += 2;
                if v.text == "conntrack" {
                    b.conntrack += 1;
                }
                match v.text.as_ref() {
                    "tcp" | "udp" | "sctp" | "udplite" | "multiport" | "iprange" | "state"
                    | "conntrack" | "comment" | "icmp" | "icmp6" | "icmpv6" | "mark" | "connmark"
                    | "length" | "tos" | "dscp" | "pkttype" | "mac"
                    | "addrtype" => {}
                    "set" if ctx.sets.is_some() => {}
                    other => {
                        // Unknown extension: everything up to the next core option is its arguments.
                        let mut words = vec![format!("-m {other}")];
                        while i < toks.len() {
                            let w = &toks[i].text;
                            if is_core_option(w) {
                                break;
                            }
                            if w == "!" && toks.get(i + 1).is_some_and(|n| is_core_option(&n.text)) {
                                break;
                            }
                            words.push(w.to_string());
                            i += 1;
                        }
                        let text = words.join(" ");
                        let hint = if other == "set" {
                            "; give the `ipset save` output as another --ruleset to read the set"
                        } else {
                            ""
                        };
                        let message = match other {
                            // Facts the ruleset cannot tell: two branches by design.
                            "owner" => format!(
                                "match `{text}` tests the local socket that sent the packet, which a ruleset cannot tell: the rule may or may not match (two branches), so results it touches are unknown"
                            ),
                            "physdev" => format!(
                                "match `{text}` tests bridge ports, and whether and how the host bridges is not in the ruleset: the rule may or may not match (two branches), so results it touches are unknown"
                            ),
                            _ => format!(
                                "match `{text}` is not modelled; the rule may or may not match, so results it touches are unknown{hint}"
                            ),
                        };
                        ctx.notes.push(ParseNote {
                            location: format!("{file}:{line}:{}", v.col),
                            message,
                        });
                        b.m.opaque.push(Opaque { text });
                        current_module = None;
                    }
                }
            }
            "--sport" | "--source-port" | "--dport" | "--destination-port" => {
                let v = value(i, &t)?;
                // `-p tcp --dport 80` loads the tcp match implicitly, as iptables does.
                let implicit = b.m.protocol.ranges().len() == 1
                    && b.m.protocol.ranges()[0].0 == b.m.protocol.ranges()[0].1
                    && [proto::TCP, proto::UDP, proto::SCTP, 136].contains(&b.m.protocol.ranges()[0].0);
                if !implicit {
                    require_module(&t, &current_module, &["tcp", "udp", "sctp", "udplite"], file, line)?;
                }
                let set = parse_port_range(&v, file, line)?;
                let set = if neg { set.complement() } else { set };
                if t.text == "--sport" || t.text == "--source-port" {
                    b.m.sport = b.m.sport.intersect(&set);
                } else {
                    b.m.dport = b.m.dport.intersect(&set);
                }
                i += 2;
            }
            "--sports" | "--source-ports" | "--dports" | "--destination-ports" | "--ports" => {
                let v = value(i, &t)?;
                require_module(&t, &current_module, &["multiport"], file, line)?;
                let mut set = IntervalSet::empty();
                let mut col = v.col;
                for part in v.text.split(',') {
                    let pt = Tok {
                        text: Cow::Borrowed(part),
                        col,
                    };
                    set = set.union(&parse_port_range(&pt, file, line)?);
                    col += part.chars().count() as u64 + 1;
                }
                match t.text.as_ref() {
                    "--sports" | "--source-ports" => {
                        let s = if neg { set.complement() } else { set };
                        b.m.sport = b.m.sport.intersect(&s);
                    }
                    "--dports" | "--destination-ports" => {
                        let s = if neg { set.complement() } else { set };
                        b.m.dport = b.m.dport.intersect(&s);
                    }
                    _ => {
                        if neg {
                            // Neither port in the list.
                            let c = set.complement();
                            b.m.sport = b.m.sport.intersect(&c);
                            b.m.dport = b.m.dport.intersect(&c);
                        } else {
                            b.either_ports = Some(set);
                        }
                    }
                }
                i += 2;
            }
            "--src-range" | "--dst-range" => {
                let v = value(i, &t)?;
                require_module(&t, &current_module, &["iprange"], file, line)?;
                let set = parse_ip_range(ctx, &v, line)?;
                let set = if neg { family_complement(ctx.family, &set) } else { set };
                if t.text == "--src-range" {
                    b.m.src = b.m.src.intersect(&set);
                } else {
                    b.m.dst = b.m.dst.intersect(&set);
                }
                i += 2;
            }
            "--state" | "--ctstate" => {
                let v = value(i, &t)?;
                require_module(
                    &t,
                    &current_module,
                    if t.text == "--state" { &["state"] } else { &["conntrack"] },
                    file,
                    line,
                )?;
                let mut bits = 0u8;
                let mut col = v.col;
                // `DNAT`/`SNAT` are a fact about the connection (it was
                // translated), not states: the list matches a packet in one
                // of the named states *or* of a connection translated so.
                let mut nat_named = CtNat(0);
                for name in v.text.split(',') {
                    match CtStates::parse_one(name) {
                        Some(s) => bits |= s,
                        None if name.eq_ignore_ascii_case("SNAT") => {
                            nat_named = nat_named.union(CtNat::snat())
                        }
                        None if name.eq_ignore_ascii_case("DNAT") => {
                            nat_named = nat_named.union(CtNat::dnat())
                        }
                        None => {
                            return Err(InputError::at(
                                file,
                                line,
                                col,
                                format!(
                                    "unknown conntrack state `{name}`: expected NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED, SNAT or DNAT"
                                ),
                            ))
                        }
                    }
                    col += name.chars().count() as u64 + 1;
                }
                let list = nat::StateList {
                    states: bits,
                    nat: nat_named,
                };
                let alts = nat::state_alternatives(&list, neg);
                if t.text == "--ctstate" {
                    b.ctstate_in.push(b.conntrack);
                    // With no connection the kernel decides a conntrack
                    // match by its state test alone.
                    let stateless = CtStates::INVALID | CtStates::UNTRACKED;
                    if alts.iter().any(|(st, _)| st & stateless != 0) {
                        b.ct_stateless_ok = true;
                    }
                }
                match (alts.as_slice(), &mut b.ct_alts) {
                    ([(st, n)], None) if !n.is_test() => {
                        b.m.ct_state = CtStates(b.m.ct_state.0 & st);
                    }
                    (_, slot) => {
                        let prev = slot.take().unwrap_or_else(|| vec![(CtStates::ALL.0, CtNat::ALL)]);
                        let mut next = Vec::new();
                        for &(s1, n1) in &prev {
                            for &(s2, n2) in &alts {
                                if s1 & s2 != 0 && n1.intersect(n2).0 != 0 {
                                    next.push((s1 & s2, n1.intersect(n2)));
                                }
                            }
                        }
                        if next.is_empty() {
                            // Nothing can match: keep one empty alternative.
                            next.push((0, CtNat::ALL));
                        }
                        *slot = Some(next);
                    }
                }
                i += 2;
            }
            "--ctstatus" => {
                let v = value(i, &t)?;
                require_module(&t, &current_module, &["conntrack"], file, line)?;
                let (named, other) = nat::ctstatus(&v.text).map_err(|m| err(&v, m))?;
                if other.is_empty() {
                    b.m.ct_nat = b.m.ct_nat.intersect(if neg { named.complement() } else { named });
                } else {
                    let text = format!("{}--ctstatus {}", if neg { "! " } else { "" }, v.text);
                    ctx.notes.push(ParseNote {
                        location: format!("{file}:{line}:{}", t.col),
                        message: format!(
                            "`{text}`: conntrack status {} is not modelled; the rule may or may not match, so results it touches are unknown",
                            other.join(",")
                        ),
                    });
                    b.m.opaque.push(Opaque { text });
                }
                ct_conn_test = true;
                i += 2;
            }
            "--ctorigsrc" | "--ctorigdst" => {
                let v = value(i, &t)?;
                require_module(&t, &current_module, &["conntrack"], file, line)?;
                let set = parse_addr_list(ctx, &v, line)?;
                let set = if neg { family_complement(ctx.family, &set) } else { set };
                let o = b
                    .m
                    .ct_orig
                    .get_or_insert_with(|| Box::new(ringfence_model::OrigTuple::any()));
                if t.text == "--ctorigsrc" {
                    o.src = o.src.intersect(&set).intersect(&nat::family_all(ctx.family));
                } else {
                    o.dst = o.dst.intersect(&set).intersect(&nat::family_all(ctx.family));
                }
                ct_conn_test = true;
                i += 2;
            }
            "--ctorigsrcport" | "--ctorigdstport" => {
                let v = value(i, &t)?;
                require_module(&t, &current_module, &["conntrack"], file, line)?;
                let set = nat::orig_ports(&v.text).ok_or_else(|| {
                    err(&v, format!("`{} {}`: expected PORT or PORT:PORT (0-65535, first <= last)", t.text, v.text))
                })?;
                let set = if neg { set.complement() } else { set };
                let o = b
                    .m
                    .ct_orig
                    .get_or_insert_with(|| Box::new(ringfence_model::OrigTuple::any()));
                if t.text == "--ctorigsrcport" {
                    o.sport = o.sport.intersect(&set);
                } else {
                    o.dport = o.dport.intersect(&set);
                }
                ct_conn_test = true;
                i += 2;
            }
            "--src-type" | "--dst-type" => {
                let v = value(i, &t)?;
                require_module(&t, &current_module, &["addrtype"], file, line)?;
                let types = nat::addr_types(&v.text).map_err(|m| err(&v, m))?;
                let types = if neg { types.complement() } else { types };
                if types_limited {
                    // Part of the opaque per-interface test (below).
                } else if t.text == "--src-type" {
                    b.m.src_type = ringfence_model::AddrTypes(b.m.src_type.0 & types.0);
                } else {
                    b.m.dst_type = ringfence_model::AddrTypes(b.m.dst_type.0 & types.0);
                }
                i += 2;
            }
            "--limit-iface-in" | "--limit-iface-out" => {
                require_module(&t, &current_module, &["addrtype"], file, line)?;
                let text = format!("{}{}", if neg { "! " } else { "" }, t.text);
                ctx.notes.push(ParseNote {
                    location: format!("{file}:{line}:{}", t.col),
                    message: format!(
                        "`-m addrtype {text}` (address types on one interface only) is not modelled; the rule may or may not match"
                    ),
                });
                b.m.opaque.push(Opaque { text });
                // This module's type tests hold on one interface only: they
                // are part of the opaque test, not global address types.
                (b.m.src_type, b.m.dst_type) = types_before;
                types_limited = true;
                i += 1;
            }
            o if matches::OPTIONS.contains(&o) => {
                let at = matches::At {
                    toks,
                    i,
                    neg,
                    module: current_module.as_deref(),
                    conntrack: b.conntrack,
                    file,
                    line,
                    end_col,
                };
                i += matches::read(&at, &mut b.m, &mut b.ctproto)?;
            }
            "--comment" => {
                let v = value(i, &t)?;
                comment = Some(v.text.to_string());
                i += 2;
            }
            "--mark" => {
                let v = value(i, &t)?;
                require_module(&t, &current_module, &["mark", "connmark"], file, line)?;
                let (value, mask) = targets::parse_mark(&v, file, line)?;
                let field = if current_module.as_deref() == Some("connmark") {
                    MarkField::Conn
                } else {
                    MarkField::Packet
                };
                b.m.marks.push(MarkTest {
                    field,
                    mask,
                    value,
                    invert: neg,
                });
                i += 2;
            }
            "--match-set" | "--set" => {
                let v = value(i, &t)?;
                require_module(&t, &current_module, &["set"], file, line)?;
                let f = toks.get(i + 2).cloned().ok_or_else(|| {
                    InputError::at(
                        file,
                        line,
                        end_col + 1,
                        format!("`{} {}` needs directions: expected for example `src` or `src,dst`", t.text, v.text),
                    )
                })?;
                let mut flags = Vec::new();
                for d in f.text.split(',') {
                    match d {
                        "src" => flags.push(true),
                        "dst" => flags.push(false),
                        other => {
                            return Err(err(
                                &f,
                                format!("direction `{other}`: expected src or dst (comma-separated, one per set dimension)"),
                            ))
                        }
                    }
                }
                let sets = ctx.sets.expect("the set module is read only with sets");
                if !sets.contains(&v.text) {
                    let mut e = err(
                        &v,
                        format!(
                            "set `{}` is not defined in the ipset files given ({})",
                            v.text,
                            sets.files().join(", ")
                        ),
                    );
                    e = match sets.closest(&v.text) {
                        Some(c) => e.with_help(format!("did you mean `{c}`?")),
                        None => e.with_help("give the `ipset save` output that defines it as another --ruleset"),
                    };
                    return Err(e);
                }
                b.sets.push(SetCond {
                    name: v.text.to_string(),
                    flags,
                    neg,
                    col: v.col,
                });
                i += 3;
            }
            "--return-nomatch" | "--update-counters" | "--update-subcounters" => i += 1,
            "--packets-eq" | "--packets-lt" | "--packets-gt" | "--bytes-eq" | "--bytes-lt"
            | "--bytes-gt" => {
                let v = value(i, &t)?;
                let text = format!("{}{} {}", if neg { "! " } else { "" }, t.text, v.text);
                ctx.notes.push(ParseNote {
                    location: format!("{file}:{line}:{}", t.col),
                    message: format!(
                        "`{text}` (set element counters) is not modelled; the rule may or may not match"
                    ),
                });
                b.m.opaque.push(Opaque { text });
                i += 2;
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                let several = b.either_ports.is_some() || !b.sets.is_empty();
                let (outcome, next) = targets::read(ctx, &w, i, &t, neg, p, several)?;
                i = next;
                action = match outcome {
                    targets::Outcome::Action(a) => a,
                    targets::Outcome::Chain { goto, tok: v, unknown } => {
                        let name = v.text.as_ref();
                        if let Some(ci) = lookup(chain_index, p.table, name) {
                            if table_base(p.table, name).is_some() {
                                return Err(err(
                                    &v,
                                    format!("jump to built-in chain `{name}`: expected a user-defined chain"),
                                ));
                            }
                            if goto {
                                Action::Goto { target: ChainId(ci) }
                            } else {
                                Action::Jump { target: ChainId(ci) }
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
                            Action::Jump { target: ChainId(id) }
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
            "--tcp-option" | "--ctreplsrc" | "--ctrepldst" | "--ctreplsrcport"
            | "--ctrepldstport" | "--ctexpire" | "--ctdir" | "--chunk-types" => {
                // Understood options whose field the model does not carry.
                let mut words = vec![format!("{}{}", if neg { "! " } else { "" }, t.text)];
                i += 1;
                while i < toks.len() && !toks[i].text.starts_with('-') && toks[i].text != "!" {
                    words.push(toks[i].text.to_string());
                    i += 1;
                }
                let text = words.join(" ");
                ctx.notes.push(ParseNote {
                    location: format!("{file}:{line}:{}", t.col),
                    message: format!(
                        "`{text}` is not modelled; the rule may or may not match, so results it touches are unknown"
                    ),
                });
                b.m.opaque.push(Opaque { text });
            }
            other => {
                return Err(err(
                    &t,
                    format!(
                        "unknown option `{other}`{}: expected -s, -d, -p, -i, -o, -m MODULE, a module option, -j or -g",
                        current_module
                            .as_ref()
                            .map(|m| format!(" for match `{m}`"))
                            .unwrap_or_default()
                    ),
                ))
            }
        }
    }
    if ct_conn_test {
        if b.ct_stateless_ok {
            // `--ctstate INVALID ... --ctorigsrc X`: a packet without a
            // connection passes on its state alone; with one, the
            // connection tests apply. Not split: the rule may match.
            b.m.opaque.push(Opaque {
                text: "-m conntrack (a stateless state beside connection tests)".into(),
            });
        } else {
            // The connection tests fail for a packet without a connection.
            b.m.ct_state = CtStates(b.m.ct_state.0 & CtStates::TRACKED);
        }
    }
    if p.table == "nat" {
        // The kernel runs the nat chains only for the first packet of a
        // connection (a new one, or an expected one conntrack calls
        // related); later packets take the translation conntrack recorded.
        b.m.ct_state = CtStates(b.m.ct_state.0 & NAT_STATES);
    }
    let split = if b.ctproto.is_empty() {
        None
    } else {
        Some(matches::ctproto_split(
            std::mem::take(&mut b.m),
            &b.ctproto,
            &b.ctstate_in,
        ))
    };
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
    let mut alts = match b.either_ports {
        None => split.unwrap_or_else(|| vec![b.m]),
        Some(ports) => split
            .unwrap_or_else(|| vec![b.m])
            .into_iter()
            .flat_map(|m| {
                let mut by_sport = m.clone();
                by_sport.sport = by_sport.sport.intersect(&ports);
                let mut by_dport = m;
                by_dport.dport = by_dport.dport.intersect(&ports);
                [by_sport, by_dport]
            })
            .collect(),
    };
    if let Some(ct_alts) = &b.ct_alts {
        // Disjoint alternatives (a jump among them runs at most once).
        alts = alts
            .iter()
            .flat_map(|m| {
                ct_alts.iter().map(move |&(st, n)| {
                    let mut m = m.clone();
                    m.ct_state = CtStates(m.ct_state.0 & st);
                    m.ct_nat = m.ct_nat.intersect(n);
                    m
                })
            })
            .collect();
    }
    let may_jump = matches!(action, Action::Jump { .. } | Action::Goto { .. });
    for c in &b.sets {
        let sets = ctx.sets.expect("set conditions are read only with sets");
        let lowered = sets
            .lower(&c.name, &c.flags, ctx.family == Family::V6, c.neg, may_jump)
            .map_err(|why| InputError::at(file, line, c.col, why))?;
        match lowered {
            Lowered::Boxes { fields, boxes } => {
                if alts.len().saturating_mul(boxes.len()) > SET_RULE_BUDGET {
                    set_opaque(
                        ctx,
                        &mut alts,
                        c,
                        file,
                        line,
                        format!(
                            "the match needs more than {SET_RULE_BUDGET} model rules (the budget)"
                        ),
                    );
                    continue;
                }
                let mut next = Vec::with_capacity(alts.len() * boxes.len());
                for m in &alts {
                    for bx in &boxes {
                        if let Some(n) = narrow_by_box(m, &fields, bx, ctx.family) {
                            next.push(n);
                        }
                    }
                }
                if next.is_empty() {
                    // Nothing can match: keep the rule, matching no packet.
                    let mut m = alts[0].clone();
                    m.protocol = IntervalSet::empty();
                    next.push(m);
                }
                alts = next;
            }
            Lowered::Opaque(why) => set_opaque(ctx, &mut alts, c, file, line, why),
        }
    }
    // Rules are appended only here, after every check passed.
    out.extend(alts.into_iter().map(mk));
    Ok(())
}

/// A set match the model cannot read exactly: the rule may or may not match.
fn set_opaque(
    ctx: &mut Ctx<'_>,
    alts: &mut [Match],
    c: &SetCond,
    file: &str,
    line: u64,
    why: String,
) {
    let text = format!("{}--match-set {}", if c.neg { "! " } else { "" }, c.name);
    ctx.notes.push(ParseNote {
        location: format!("{file}:{line}:{}", c.col),
        message: format!("{why}; `{text}` may or may not match"),
    });
    for m in alts {
        m.opaque.push(Opaque { text: text.clone() });
    }
}

/// `m` narrowed to one box of a set match; `None` when nothing is left.
fn narrow_by_box(m: &Match, fields: &[SetField], bx: &TBox, family: Family) -> Option<Match> {
    let mut m = m.clone();
    for (f, part) in fields.iter().zip(bx) {
        match (f, part) {
            (SetField::SrcAddr | SetField::DstAddr, Part::Num(set)) => {
                let addrs = match family {
                    Family::V4 => AddrSet {
                        v4: IntervalSet::from_ranges(
                            set.ranges()
                                .iter()
                                .map(|&(a, b)| (a as u32, b.min(u32::MAX as u128) as u32)),
                        ),
                        v6: IntervalSet::empty(),
                    },
                    Family::V6 => AddrSet {
                        v4: IntervalSet::empty(),
                        v6: set.clone(),
                    },
                };
                if *f == SetField::SrcAddr {
                    m.src = m.src.intersect(&addrs);
                } else {
                    m.dst = m.dst.intersect(&addrs);
                }
            }
            (SetField::Proto, Part::Num(set)) => {
                m.protocol = m.protocol.intersect(&IntervalSet::from_ranges(
                    set.ranges()
                        .iter()
                        .map(|&(a, b)| (a as u8, b.min(255) as u8)),
                ));
            }
            (SetField::SrcPort | SetField::DstPort, Part::Num(set)) => {
                let ports = IntervalSet::from_ranges(
                    set.ranges()
                        .iter()
                        .map(|&(a, b)| (a as u16, b.min(65535) as u16)),
                );
                if *f == SetField::SrcPort {
                    m.sport = m.sport.intersect(&ports);
                } else {
                    m.dport = m.dport.intersect(&ports);
                }
            }
            (SetField::Iif | SetField::Oif, Part::Iface(s)) => {
                let cur = if *f == SetField::Iif {
                    &mut m.iif
                } else {
                    &mut m.oif
                };
                match crate::nft::intersect_ifaces(cur, s) {
                    Some(x) => *cur = x,
                    // Not one interface set (a wildcard with a hole): the
                    // rule may or may not match there.
                    None => m.opaque.push(Opaque {
                        text: "interface of a set element".into(),
                    }),
                }
            }
            _ => unreachable!("a set field has one kind"),
        }
    }
    (!m.is_empty()).then_some(m)
}

fn require_module(
    t: &Tok,
    current: &Option<Cow<str>>,
    allowed: &[&str],
    file: &str,
    line: u64,
) -> Result<(), InputError> {
    match current {
        Some(m) if allowed.contains(&m.as_ref()) => Ok(()),
        _ => Err(InputError::at(
            file,
            line,
            t.col,
            format!(
                "`{}` outside its match module: expected it after `-m {}`",
                t.text,
                allowed.join("` or `-m ")
            ),
        )),
    }
}

fn family_complement(f: Family, set: &AddrSet) -> AddrSet {
    let c = set.complement();
    match f {
        Family::V4 => c.intersect(&AddrSet::all_v4()),
        Family::V6 => c.intersect(&AddrSet::all_v6()),
    }
}

fn parse_protocol(s: &str) -> Option<IntervalSet<u8>> {
    let n = match s.to_ascii_lowercase().as_str() {
        "all" | "0" => return Some(IntervalSet::full()),
        "tcp" => proto::TCP,
        "udp" => proto::UDP,
        "icmp" => proto::ICMP,
        "icmpv6" | "ipv6-icmp" | "icmp6" => proto::ICMPV6,
        "sctp" => proto::SCTP,
        "udplite" => 136,
        "esp" => 50,
        "ah" => 51,
        "gre" => 47,
        // /etc/protocols' name for IP-in-IP; Calico writes `-p ipencap`.
        "ipencap" | "ipip" => 4,
        "igmp" => 2,
        "ipv6" => 41,
        "ospf" => 89,
        "vrrp" => 112,
        other => other.parse::<u8>().ok()?,
    };
    Some(IntervalSet::single(n))
}

/// `80`, `1024:65535`, `:1023`, `1024:` (iptables writes `0:1023`).
fn parse_port_range(v: &Tok, file: &str, line: u64) -> Result<IntervalSet<u16>, InputError> {
    let bad = || {
        InputError::at(
            file,
            line,
            v.col,
            format!(
                "port `{}`: expected a number 0-65535 or a range `first:last`",
                v.text
            ),
        )
    };
    let port = |s: &str| -> Result<u16, InputError> {
        s.parse::<u16>()
            .or_else(|_| service_port(s).ok_or_else(bad))
    };
    match v.text.split_once(':') {
        None => Ok(IntervalSet::single(port(&v.text)?)),
        Some((a, b)) => {
            let lo = if a.is_empty() { 0 } else { port(a)? };
            let hi = if b.is_empty() { u16::MAX } else { port(b)? };
            if lo > hi {
                return Err(InputError::at(
                    file,
                    line,
                    v.col,
                    format!(
                        "port range `{}` is reversed: expected first <= last",
                        v.text
                    ),
                ));
            }
            Ok(IntervalSet::range(lo, hi))
        }
    }
}

/// A few well-known service names iptables accepts in place of numbers.
fn service_port(s: &str) -> Option<u16> {
    Some(match s {
        "ssh" => 22,
        "http" | "www" => 80,
        "https" => 443,
        "domain" => 53,
        "ntp" => 123,
        "smtp" => 25,
        "ftp" => 21,
        "telnet" => 23,
        "bgp" => 179,
        _ => return None,
    })
}

fn parse_ip(ctx: &Ctx<'_>, s: &str, tok: &Tok, line: u64) -> Result<IpAddr, InputError> {
    let ip: IpAddr = s.parse().map_err(|_| {
        InputError::at(
            ctx.file,
            line,
            tok.col,
            format!(
                "address `{s}`: expected an {} address",
                if ctx.family == Family::V4 {
                    "IPv4"
                } else {
                    "IPv6"
                }
            ),
        )
    })?;
    match (ctx.family, ip) {
        (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_)) => Ok(ip),
        _ => Err(InputError::at(
            ctx.file,
            line,
            tok.col,
            format!(
                "address `{s}` is of the other family: this file is {} (detected from its header or first address); iptables-save and ip6tables-save output cannot be mixed",
                if ctx.family == Family::V4 { "IPv4" } else { "IPv6" }
            ),
        )),
    }
}

/// `a.b.c.d`, `a.b.c.d/len`, `a.b.c.d/mask`, comma lists; IPv6 likewise.
fn parse_addr_list(ctx: &Ctx<'_>, v: &Tok, line: u64) -> Result<AddrSet, InputError> {
    let mut out = AddrSet::empty();
    let mut col = v.col;
    for part in v.text.split(',') {
        let t = Tok {
            text: Cow::Borrowed(part),
            col,
        };
        let (addr, len) = match part.split_once('/') {
            None => (part, None),
            Some((a, l)) => (a, Some(l)),
        };
        let ip = parse_ip(ctx, addr, &t, line)?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len: u8 = match len {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => mask_len(l).filter(|_| ip.is_ipv4()).ok_or_else(|| {
                    InputError::at(
                        ctx.file,
                        line,
                        col + addr.chars().count() as u64 + 1,
                        format!("prefix length `{l}`: expected 0-{max} or a contiguous netmask"),
                    )
                })?,
            },
        };
        let set = match ip {
            IpAddr::V4(a) => AddrSet::v4_prefix(a, len),
            IpAddr::V6(a) => AddrSet::v6_prefix(a, len),
        };
        out = out.union(&set);
        col += part.chars().count() as u64 + 1;
    }
    Ok(out)
}

/// Length of a contiguous dotted netmask such as `255.255.255.0`.
fn mask_len(s: &str) -> Option<u8> {
    let m = u32::from(s.parse::<Ipv4Addr>().ok()?);
    let len = m.leading_ones();
    (m.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// `a-b` address range (`-m iprange`).
fn parse_ip_range(ctx: &Ctx<'_>, v: &Tok, line: u64) -> Result<AddrSet, InputError> {
    let (a, b) = v.text.split_once('-').unwrap_or((&*v.text, &*v.text));
    let lo = parse_ip(ctx, a, v, line)?;
    let hi = parse_ip(ctx, b, v, line)?;
    let set = match (lo, hi) {
        (IpAddr::V4(l), IpAddr::V4(h)) => AddrSet {
            v4: IntervalSet::range(u32::from(l), u32::from(h)),
            v6: IntervalSet::empty(),
        },
        (IpAddr::V6(l), IpAddr::V6(h)) => AddrSet {
            v4: IntervalSet::empty(),
            v6: IntervalSet::range(u128::from(l), u128::from(h)),
        },
        _ => unreachable!("parse_ip enforces one family"),
    };
    if set.is_empty() {
        return Err(InputError::at(
            ctx.file,
            line,
            v.col,
            format!(
                "address range `{}` is reversed: expected first <= last",
                v.text
            ),
        ));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
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
