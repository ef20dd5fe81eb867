//! iptables targets (`-j`, `-g`) and their options: verdicts, mark
//! rewrites (`MARK`, `CONNMARK`), address translations (read in `nat`), the
//! targets that only continue, and those whose effect the model does not
//! follow (their packets get an unknown fate).

use super::tables::PendingRule;
use super::tokens::{Tok, Words};
use super::{nat, Ctx};
use ringfence_diag::InputError;
use ringfence_model::{names, Action, MarkField, MarkRewrite, ParseNote};
use std::borrow::Cow;

/// What a `-j` or `-g` comes to once its options are read.
pub(super) enum Outcome<'t> {
    /// The rule's action.
    Action(Action),
    /// A jump or goto to the chain the target names; `unknown` when the
    /// target is not a chain but changes what the model does not follow
    /// (then, if no chain has its name, a synthesized chain stands for it).
    Chain {
        /// `-g` rather than `-j`.
        goto: bool,
        /// The target word.
        tok: Tok<'t>,
        /// Whether the target's effect is unknown.
        unknown: bool,
    },
}

/// Read the target option `t` at index `i` of `w` (preceded by `!` when
/// `neg`) and its options, which run to the end of the line, for rule `p`;
/// `several` says the rule becomes several model rules whose matches may
/// overlap. Returns the outcome and the index past the last word read.
pub(super) fn read<'t>(
    ctx: &mut Ctx<'_>,
    w: &Words<'_, 't>,
    mut i: usize,
    t: &Tok<'t>,
    neg: bool,
    p: &PendingRule<'_>,
    several: bool,
) -> Result<(Outcome<'t>, usize), InputError> {
    let (file, line, toks) = (w.file, w.line, w.toks);
    let err = |t: &Tok, msg: String| w.err(t, msg);
    if neg {
        return Err(err(
            t,
            format!("`!` before `{}`: a target cannot be negated", t.text),
        ));
    }
    let v = w.value(i, t)?;
    let goto = t.text == "-g" || t.text == "--goto";
    let target = v.text.as_ref();
    i += 2;
    // Target options run to the end of the line.
    let mut opts: Vec<(Cow<str>, Option<Tok>)> = Vec::new();
    while i < toks.len() {
        let o = &toks[i];
        if !o.text.starts_with("--") {
            return Err(err(
                o,
                format!("unexpected `{}` after the target: expected target options (`--name value`) or the end of the rule", o.text),
            ));
        }
        let val = toks
            .get(i + 1)
            .filter(|n| !n.text.starts_with("--"))
            .cloned();
        i += if val.is_some() { 2 } else { 1 };
        opts.push((o.text.clone(), val));
    }
    let effect = if goto {
        None
    } else if matches!(target, "MARK" | "CONNMARK") {
        let rw = mark_target(target, &opts, &v, file, line)?;
        if rw.is_idempotent() || !several {
            Some(TargetEffect::Verdict(Action::Mark(rw)))
        } else {
            // The rule becomes several model rules whose matches
            // may overlap: a packet could be rewritten twice.
            Some(TargetEffect::Unknown)
        }
    } else if p.table == "nat" && matches!(target, "DNAT" | "SNAT" | "MASQUERADE" | "REDIRECT") {
        match nat::nat_target(target, &opts, &v, ctx.family)
            .map_err(|(col, m)| InputError::at(file, line, col, m))?
        {
            nat::NatTarget::Rewrite(rw, note) => {
                if let Some(message) = note {
                    ctx.notes.push(ParseNote {
                        location: format!("{file}:{line}:{}", v.col),
                        message,
                    });
                }
                Some(TargetEffect::Verdict(Action::Nat(rw)))
            }
            nat::NatTarget::Unfollowed(why) => {
                ctx.notes.push(ParseNote {
                    location: format!("{file}:{line}:{}", v.col),
                    message: format!("{why}; packets reaching it have an unknown verdict"),
                });
                Some(TargetEffect::Unknown)
            }
        }
    } else {
        target_effect(p.table, &p.chain, target, &opts)
    };
    let outcome = match (goto, effect) {
        (false, Some(TargetEffect::Verdict(a))) => Outcome::Action(a),
        (false, Some(TargetEffect::Continue { note })) => {
            if note {
                ctx.notes.push(ParseNote {
                    location: format!("{file}:{line}:{}", v.col),
                    message: format!(
                        "target {target} changes packet or connection state that this analysis does not model; treated as continuing to the next rule"
                    ),
                });
            }
            Outcome::Action(Action::Continue)
        }
        (_, effect) => Outcome::Chain {
            goto,
            unknown: matches!(effect, Some(TargetEffect::Unknown)),
            tok: v,
        },
    };
    Ok((outcome, i))
}

/// What a `-j` target does, for the model.
enum TargetEffect {
    /// A verdict or a translation that ends the base chain like ACCEPT.
    Verdict(Action),
    /// No verdict, and no effect on any field the model reads: the packet
    /// goes on to the next rule.
    Continue {
        /// Whether to say so in a note (targets that change packet or
        /// connection state; logging targets need no note).
        note: bool,
    },
    /// The target changes what later rules or routing see (addresses,
    /// ports, conntrack tracking) or is not known: the packets it matches
    /// have an unknown fate.
    Unknown,
}

/// The effect of target `target` with options `opts` in chain `chain` of
/// `table`.
///
/// (MARK and CONNMARK are mark rewrites, read by `mark_target`.)
/// Continuing targets (TOS, DSCP, TTL, HL, CLASSIFY, TCPMSS,
/// LOG, NFLOG, TRACE, CHECKSUM, ...) change only fields the model never reads
/// exactly: every match on DSCP/TOS, TTL and the like is
/// opaque ("may match"), so treating them as no-ops cannot make a result
/// certain that depends on them. Source translations (SNAT, MASQUERADE, and
/// NETMAP in POSTROUTING or INPUT) continue too: no later iptables base
/// chain on those hooks reads the rewritten source, and the rest of the nat
/// chain they end can hold no filtering verdict (the kernel refuses DROP and
/// destination translations there), so skipping it or not decides the same;
/// as a continuing rule, a MASQUERADE is never reported as "redundant" next
/// to an accepting policy. Destination translations
/// (DNAT, REDIRECT, NETMAP elsewhere), TPROXY, NOTRACK, `CT --notrack` and
/// `CT --zone`, queueing and unknown extension targets change what later
/// rules or the routing decision see, so their packets are unknown.
fn target_effect(
    table: &str,
    chain: &str,
    target: &str,
    opts: &[(Cow<str>, Option<Tok>)],
) -> Option<TargetEffect> {
    let has = |name: &str| opts.iter().any(|(n, _)| n.as_ref() == name);
    Some(match target {
        "ACCEPT" => TargetEffect::Verdict(Action::Accept),
        "DROP" => TargetEffect::Verdict(Action::Drop),
        "RETURN" => TargetEffect::Verdict(Action::Return),
        "REJECT" => TargetEffect::Verdict(Action::Reject {
            with: opts
                .iter()
                .find(|(n, _)| n == "--reject-with")
                .and_then(|(_, v)| v.as_ref().map(|v| v.text.to_string())),
        }),
        "LOG" | "NFLOG" | "ULOG" | "AUDIT" | "TRACE" => TargetEffect::Continue { note: false },
        "CT" if has("--notrack") || has("--zone") || has("--zone-orig") || has("--zone-reply") => {
            TargetEffect::Unknown
        }
        "CLASSIFY" | "DSCP" | "TOS" | "TCPMSS" | "CHECKSUM" | "CT" | "TEE" | "SECMARK"
        | "CONNSECMARK" | "IDLETIMER" | "LED" | "SET" | "TTL" | "HL" | "ECN" | "HMARK"
        | "TCPOPTSTRIP" | "IPV4OPTSSTRIP" | "RATEEST" => TargetEffect::Continue { note: true },
        "SNAT" | "MASQUERADE" if table == "nat" => TargetEffect::Continue { note: false },
        "NETMAP" if table == "nat" && matches!(chain, "POSTROUTING" | "INPUT") => {
            TargetEffect::Continue { note: false }
        }
        name if is_extension_target(name) => TargetEffect::Unknown,
        _ => return None,
    })
}

/// A mark as iptables writes it: `VALUE[/MASK]`, each decimal or `0x` hex;
/// the mask defaults to every bit.
pub(super) fn parse_mark(v: &Tok, file: &str, line: u64) -> Result<(u32, u32), InputError> {
    let num = |s: &str| names::number(s).and_then(|n| u32::try_from(n).ok());
    let (a, b) = match v.text.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (v.text.as_ref(), None),
    };
    let value = num(a);
    let mask = b.map(num).unwrap_or(Some(u32::MAX));
    match (value, mask) {
        (Some(value), Some(mask)) => Ok((value, mask)),
        _ => Err(InputError::at(
            file,
            line,
            v.col,
            format!(
                "mark `{}`: expected VALUE or VALUE/MASK, each a 32-bit number in decimal or 0x hex (e.g. 0x4000/0x4000)",
                v.text
            ),
        )),
    }
}

/// The rewrite of `-j MARK` or `-j CONNMARK` with options `opts` (iptables
/// semantics: `--set-mark V/M` clears M|V then sets V; `--set-xmark V/M`
/// clears M then flips V; CONNMARK `--save-mark` and `--restore-mark` copy
/// between the marks under `--nfmask`/`--ctmask`, or `--mask` for both).
fn mark_target(
    target: &str,
    opts: &[(Cow<str>, Option<Tok>)],
    at: &Tok,
    file: &str,
    line: u64,
) -> Result<MarkRewrite, InputError> {
    let field = if target == "CONNMARK" {
        MarkField::Conn
    } else {
        MarkField::Packet
    };
    let opt_value = |name: &str| -> Result<Option<(u32, u32)>, InputError> {
        match opts.iter().find(|(n, _)| n == name) {
            None => Ok(None),
            Some((_, Some(v))) => parse_mark(v, file, line).map(Some),
            Some((_, None)) => Err(InputError::at(
                file,
                line,
                at.col,
                format!("`-j {target} {name}` needs a value: expected VALUE or VALUE/MASK"),
            )),
        }
    };
    let mut rewrite = None;
    let mut ops = 0;
    for (name, _) in opts {
        let r = match name.as_ref() {
            "--set-xmark" => {
                let (v, m) = opt_value(name)?.expect("present");
                MarkRewrite {
                    field,
                    clear: m,
                    xor: v,
                    copy: 0,
                }
            }
            "--set-mark" => {
                let (v, m) = opt_value(name)?.expect("present");
                MarkRewrite::set(field, v, m)
            }
            "--and-mark" => {
                let (v, _) = opt_value(name)?.expect("present");
                MarkRewrite {
                    field,
                    clear: !v,
                    xor: 0,
                    copy: 0,
                }
            }
            "--or-mark" => {
                let (v, _) = opt_value(name)?.expect("present");
                MarkRewrite {
                    field,
                    clear: v,
                    xor: v,
                    copy: 0,
                }
            }
            "--xor-mark" => {
                let (v, _) = opt_value(name)?.expect("present");
                MarkRewrite {
                    field,
                    clear: 0,
                    xor: v,
                    copy: 0,
                }
            }
            "--save-mark" | "--restore-mark" if target == "CONNMARK" => {
                let both = opt_value("--mask")?.map(|(v, _)| v);
                let nf = opt_value("--nfmask")?
                    .map(|(v, _)| v)
                    .or(both)
                    .unwrap_or(u32::MAX);
                let ct = opt_value("--ctmask")?
                    .map(|(v, _)| v)
                    .or(both)
                    .unwrap_or(u32::MAX);
                if name == "--save-mark" {
                    MarkRewrite {
                        field: MarkField::Conn,
                        clear: ct,
                        xor: 0,
                        copy: nf,
                    }
                } else {
                    MarkRewrite {
                        field: MarkField::Packet,
                        clear: nf,
                        xor: 0,
                        copy: ct,
                    }
                }
            }
            "--mask" | "--nfmask" | "--ctmask" if target == "CONNMARK" => continue,
            other => {
                return Err(InputError::at(
                    file,
                    line,
                    at.col,
                    format!(
                        "`-j {target}` option `{other}`: expected {}",
                        if target == "CONNMARK" {
                            "--set-xmark, --set-mark, --and-mark, --or-mark, --xor-mark, --save-mark or --restore-mark (with --nfmask, --ctmask or --mask)"
                        } else {
                            "--set-xmark, --set-mark, --and-mark, --or-mark or --xor-mark"
                        }
                    ),
                ))
            }
        };
        ops += 1;
        rewrite = Some(r);
    }
    match (rewrite, ops) {
        (Some(r), 1) => Ok(r),
        _ => Err(InputError::at(
            file,
            line,
            at.col,
            format!("`-j {target}` needs exactly one operation: expected for example `--set-xmark 0x4000/0x4000`"),
        )),
    }
}

/// Extension targets that decide or divert packets in ways this analysis does not model.
fn is_extension_target(name: &str) -> bool {
    matches!(
        name,
        "DNAT"
            | "NOTRACK"
            | "SNAT"
            | "MASQUERADE"
            | "REDIRECT"
            | "NETMAP"
            | "NFQUEUE"
            | "QUEUE"
            | "TPROXY"
            | "SYNPROXY"
            | "CLUSTERIP"
            | "HMARK"
            | "TCPOPTSTRIP"
            | "RATEEST"
            | "DSCP"
            | "ECN"
            | "HL"
            | "TTL"
            | "IPV4OPTSSTRIP"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(text: &str) -> Result<(u32, u32), String> {
        let tok = Tok {
            text: Cow::Borrowed(text),
            col: 7,
        };
        parse_mark(&tok, "m.rules", 3).map_err(|e| e.to_string())
    }

    #[test]
    fn marks_are_32_bit_decimal_or_hex_values_with_an_optional_mask() {
        assert_eq!(mark("42"), Ok((42, u32::MAX)));
        assert_eq!(mark("0x4000/0x4000"), Ok((0x4000, 0x4000)));
        assert_eq!(mark("0X10/0XFF"), Ok((0x10, 0xff)));
        assert_eq!(mark("4294967295/0"), Ok((u32::MAX, 0)));
        for bad in [
            "4294967296",
            "0x100000000",
            "1/0x1ffffffff",
            "0xzz",
            "-1",
            "1/",
        ] {
            let e = mark(bad).expect_err(bad);
            assert!(e.contains("m.rules:3:7"), "{bad}: {e}");
            assert!(e.contains(&format!("mark `{bad}`")), "{bad}: {e}");
        }
    }
}
