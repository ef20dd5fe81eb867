//! nft rule statements: the statement loop of a rule, verdicts (`accept`,
//! `drop`, `reject`, `jump`, `goto`, ...), iptables-nft compat (`xt`)
//! targets, mark and header rewrites (`mangle`), and the synthesized `?what`
//! chains that stand for statements whose effect is unknown. Matches are in
//! `expressions`, verdict maps in `sets`, translations in `nat`.

use super::expressions::{mark_key, mark_number, restrict_family};
use super::{compact, nat, ptr_join, single_key, Fam, Parser, NAT_STATES};
use ringfence_diag::InputError;
use ringfence_model::{
    proto, Action, Chain, ChainId, CtStates, IntervalSet, MarkField, MarkRewrite, Match, Opaque,
    Rule, RuleRef,
};
use serde_json::{Map, Value};

/// What a statement or compat target does, for the model.
enum Effect {
    /// A verdict (or a translation that ends the chain like accept).
    Verdict(Action),
    /// No effect on any field the model reads: on to the next statement.
    Continue,
    /// Changes what later rules or routing see: its packets are unknown.
    Unknown,
}

/// The effect of an iptables-nft compat target named `name`: the same
/// reading as the iptables parser's (see `target_effect` in `iptables/targets.rs`).
fn xt_target_effect(name: &str) -> Effect {
    match name {
        "ACCEPT" => Effect::Verdict(Action::Accept),
        "DROP" => Effect::Verdict(Action::Drop),
        "RETURN" => Effect::Verdict(Action::Return),
        "SNAT" | "MASQUERADE" => Effect::Continue,
        "LOG" | "NFLOG" | "ULOG" | "AUDIT" | "TRACE" | "MARK" | "CONNMARK" | "CLASSIFY"
        | "DSCP" | "TOS" | "TCPMSS" | "CHECKSUM" | "TEE" | "SECMARK" | "CONNSECMARK"
        | "IDLETIMER" | "LED" | "SET" | "TTL" | "HL" | "ECN" | "HMARK" | "TCPOPTSTRIP"
        | "IPV4OPTSSTRIP" | "RATEEST" => Effect::Continue,
        // DNAT, REDIRECT, NETMAP, TPROXY, NOTRACK, CT (whose arguments the
        // dump omits, so `--notrack` cannot be told apart), queues, and
        // anything else.
        _ => Effect::Unknown,
    }
}

/// The mark a `mangle` statement writes, if it writes one.
fn mark_target_of(body: &Value) -> Option<MarkField> {
    mark_key(body.get("key")?)
}

/// `value` as `(field & keep) ^ xor ^ (other & copy)`: numbers, the mark
/// itself, the other mark, and `&`, `|`, `^` with a number.
fn mark_affine(field: MarkField, v: &Value) -> Option<(u32, u32, u32)> {
    if let Some(n) = mark_number(v) {
        return Some((0, n, 0));
    }
    if let Some(f) = mark_key(v) {
        return Some(if f == field {
            (u32::MAX, 0, 0)
        } else {
            (0, 0, u32::MAX)
        });
    }
    let (k, b) = single_key(v)?;
    let arr = b.as_array().filter(|a| a.len() == 2)?;
    let (keep, xor, copy) = mark_affine(field, &arr[0])?;
    let n = mark_number(&arr[1])?;
    match k {
        "&" => Some((keep & n, xor & n, copy & n)),
        "|" => Some((keep & !n, (xor & !n) | n, copy & !n)),
        "^" => Some((keep, xor ^ n, copy)),
        _ => None,
    }
}

/// The rewrite `field set value`, when `value` is one the model follows.
fn mark_rewrite(field: MarkField, value: &Value) -> Option<MarkRewrite> {
    let (keep, xor, copy) = mark_affine(field, value)?;
    Some(MarkRewrite {
        field,
        clear: !keep,
        xor,
        copy,
    })
}

/// Whether a `mangle` statement (`... set ...`) rewrites a field that later
/// rules or the routing decision read exactly: a payload field (addresses,
/// ports, ...) or the conntrack state. Marks, priority, DSCP and the like
/// are read only by opaque matches, so setting them changes nothing the
/// model decides.
fn mangles_header(body: &Value) -> bool {
    let Some(key) = body.get("key") else {
        return true;
    };
    match single_key(key) {
        Some(("meta", m)) => !matches!(
            m.get("key").and_then(Value::as_str),
            Some("mark" | "priority" | "nftrace" | "secmark" | "pkttype")
        ),
        Some(("ct", c)) => !matches!(
            c.get("key").and_then(Value::as_str),
            Some("mark" | "label" | "helper" | "expiration" | "event" | "secmark")
        ),
        Some(("payload", p)) => !matches!(
            p.get("field").and_then(Value::as_str),
            Some("dscp" | "ecn" | "ttl" | "hoplimit" | "tos")
        ),
        _ => true,
    }
}

impl<'a> Parser<'a> {
    pub(super) fn rule(&mut self, o: &Map<String, Value>, ptr: &str) {
        let (Some(family), Some(table), Some(chain)) = (
            self.str_field(o, "family", ptr),
            self.str_field(o, "table", ptr),
            self.str_field(o, "chain", ptr),
        ) else {
            return;
        };
        let Some(&ci) =
            self.chain_ids
                .get(&(family.to_string(), table.to_string(), chain.to_string()))
        else {
            self.error(
                &ptr_join(ptr, "chain"),
                format!("rule of chain {family} {table} {chain}, but no such chain is defined"),
            );
            return;
        };
        let Some(handle) = o.get("handle").and_then(Value::as_u64) else {
            self.error(ptr, "missing or non-integer rule `handle`; list the ruleset with `nft -j list ruleset` (handles are included in JSON output)");
            return;
        };
        let comment = o.get("comment").and_then(Value::as_str).map(str::to_string);
        let Some(exprs) = o.get("expr").and_then(Value::as_array) else {
            self.error(ptr, "missing `expr` array of statements");
            return;
        };
        let origin = RuleRef::NftHandle {
            family: family.into(),
            table: table.into(),
            chain: chain.into(),
            handle,
        };
        let mut first = Match::any();
        match family {
            "ip" => restrict_family(&mut first, Fam::V4),
            "ip6" => restrict_family(&mut first, Fam::V6),
            _ => {}
        }
        let mut alts = vec![first];
        let mut action = Action::Continue;
        self.may_jump = exprs
            .iter()
            .any(|st| matches!(single_key(st), Some(("jump" | "vmap", _))));
        for (i, st) in exprs.iter().enumerate() {
            let sptr = format!("{}/{i}", ptr_join(ptr, "expr"));
            let Some((key, body)) = single_key(st) else {
                self.error(&sptr, "a statement must be an object with exactly one key");
                return;
            };
            let verdict = match key {
                "match" => {
                    if !self.match_stmt(body, &sptr, st, family, table, &mut alts) {
                        return;
                    }
                    None
                }
                "accept" => Some(Action::Accept),
                "drop" => Some(Action::Drop),
                "return" => Some(Action::Return),
                "continue" => Some(Action::Continue),
                "reject" => {
                    let with = body.as_object().map(|r| {
                        let t = r.get("type").and_then(Value::as_str).unwrap_or("");
                        let e = r.get("expr").and_then(Value::as_str).unwrap_or("");
                        format!("{t} {e}").trim().to_string()
                    });
                    // The kernel carries the dependency these reject types need;
                    // the dump may omit it (it did for `meta l4proto tcp`).
                    let kind = body.get("type").and_then(Value::as_str);
                    for m in alts.iter_mut() {
                        match kind {
                            Some("tcp reset") => {
                                m.protocol = m.protocol.intersect(&IntervalSet::single(proto::TCP))
                            }
                            Some("icmp") => restrict_family(m, Fam::V4),
                            Some("icmpv6") => restrict_family(m, Fam::V6),
                            _ => {}
                        }
                    }
                    Some(Action::Reject {
                        with: with.filter(|w| !w.is_empty()),
                    })
                }
                "jump" | "goto" => match self.chain_target(key, body, &sptr, family, table) {
                    Some(a) => Some(a),
                    None => return,
                },
                "vmap" => {
                    let last = i + 1 == exprs.len();
                    if !self.vmap(
                        body, &sptr, family, table, &alts, last, &origin, &comment, ci,
                    ) {
                        return;
                    }
                    // The elements' rules are in; no element matched: next rule.
                    return;
                }
                "counter" | "log" => None,
                "xt" => {
                    // iptables-nft compat expressions: the dump names the
                    // extension but not its arguments.
                    let kind = body.get("type").and_then(Value::as_str).unwrap_or("");
                    let name = body.get("name").and_then(Value::as_str).unwrap_or("");
                    match (kind, name) {
                        ("match", "comment") => None,
                        ("target", "REJECT") => {
                            self.note(
                                &sptr,
                                "iptables-nft REJECT: the reject type is not in the JSON dump",
                            );
                            Some(Action::Reject { with: None })
                        }
                        ("target", name) => match xt_target_effect(name) {
                            Effect::Verdict(a) => Some(a),
                            Effect::Continue => None,
                            Effect::Unknown => {
                                self.note(
                                    &sptr,
                                    format!("iptables-nft compat target `{name}` changes what later rules or routing see (or its arguments are not in the dump): packets reaching it have an unknown verdict"),
                                );
                                Some(self.unknown_jump(&format!("xt {name}"), &origin))
                            }
                        },
                        _ => {
                            let text = compact(st);
                            self.note(
                                &sptr,
                                format!(
                                    "iptables-nft compat {kind} `{name}`: nft -j does not print its arguments, so the rule may or may not match; parse `iptables-save` output instead for an exact answer"
                                ),
                            );
                            for m in &mut alts {
                                m.opaque.push(Opaque { text: text.clone() });
                            }
                            None
                        }
                    }
                }
                // An address translation ends the rule (and, in a nat base
                // chain, that chain) with the packet rewritten.
                "snat" | "dnat" | "masquerade" | "redirect" => {
                    match self.nat_stmt(
                        key, body, &sptr, family, table, &mut alts, &origin, &comment, ci,
                    ) {
                        nat::NatLowered::Action(a) => Some(a),
                        nat::NatLowered::Done | nat::NatLowered::Failed => return,
                    }
                }
                // These change what routing and later rules see: unknown.
                "tproxy" | "queue" | "notrack" | "synproxy" => {
                    self.note(
                        &sptr,
                        format!("`{key}` changes what later rules or routing see and is not modelled: packets reaching it have an unknown verdict"),
                    );
                    Some(self.unknown_jump(key, &origin))
                }
                "mangle" if mark_target_of(body).is_some() => {
                    let field = mark_target_of(body).expect("checked");
                    let rest_has_effect = exprs[i + 1..]
                        .iter()
                        .any(|x| !matches!(single_key(x), Some(("counter" | "log", _))));
                    let reads_field = alts
                        .iter()
                        .any(|m| m.marks.iter().any(|t| t.field == field));
                    match body.get("value").and_then(|v| mark_rewrite(field, v)) {
                        Some(rw) if alts.len() == 1 || rw.is_idempotent() => {
                            if !rest_has_effect {
                                Some(Action::Mark(rw))
                            } else if reads_field {
                                self.note(
                                    &sptr,
                                    "a mark `set` followed by more statements in a rule that tests that mark is not modelled: packets reaching it have an unknown verdict",
                                );
                                Some(self.unknown_jump("mark set", &origin))
                            } else {
                                // The rewrite, then the rest of the rule as a
                                // rule of its own with the same match (which
                                // does not read the rewritten mark).
                                let nat = self.nat_chains.contains(&ci);
                                let rules = &mut self.chains[ci].rules;
                                for m in &alts {
                                    let mut m = m.clone();
                                    if nat {
                                        m.ct_state = CtStates(m.ct_state.0 & NAT_STATES);
                                    }
                                    rules.push(Rule {
                                        matches: m,
                                        action: Action::Mark(rw),
                                        origin: origin.clone(),
                                        comment: comment.clone(),
                                    });
                                }
                                None
                            }
                        }
                        _ => {
                            self.note(
                                &sptr,
                                format!("this mark `set` is not modelled ({}): packets reaching it have an unknown verdict", compact(st)),
                            );
                            Some(self.unknown_jump("mark set", &origin))
                        }
                    }
                }
                "mangle" => {
                    let written = body.get("key").and_then(single_key).and_then(|(k, b)| {
                        let f = b.get(if k == "meta" { "key" } else { "field" })?.as_str()?;
                        match (k, f) {
                            ("payload", "dscp" | "ecn" | "tos") => Some(0),
                            ("meta", "pkttype") => Some(1),
                            _ => None,
                        }
                    });
                    if let Some(i) = written {
                        self.rewrites[i].get_or_insert_with(|| sptr.clone());
                    }
                    if mangles_header(body) {
                        self.note(
                            &sptr,
                            format!("a `set` statement rewrites a header field later rules or routing read ({}): packets reaching it have an unknown verdict", compact(st)),
                        );
                        Some(self.unknown_jump("mangle", &origin))
                    } else {
                        self.note(
                            &sptr,
                            "a `set` statement changes packet metadata; later matches are read as if it had not",
                        );
                        None
                    }
                }
                other => {
                    let text = compact(st);
                    self.note(
                        &sptr,
                        format!("`{other}` statement is not modelled: the rule may or may not match ({text})"),
                    );
                    for m in &mut alts {
                        m.opaque.push(Opaque { text: text.clone() });
                    }
                    None
                }
            };
            if let Some(a) = verdict {
                action = a;
                break;
            }
        }
        if self.nat_chains.contains(&ci) {
            for m in &mut alts {
                m.ct_state = CtStates(m.ct_state.0 & NAT_STATES);
            }
        }
        let rules = &mut self.chains[ci].rules;
        for m in alts {
            rules.push(Rule {
                matches: m,
                action: action.clone(),
                origin: origin.clone(),
                comment: comment.clone(),
            });
        }
    }

    /// A jump to the synthesized chain `?what`, whose one rule may match
    /// anything and decides "unknown" (made on first use; `origin` is that
    /// first use).
    pub(super) fn unknown_jump(&mut self, what: &str, origin: &RuleRef) -> Action {
        let name = format!("?{what}");
        let id = match self.unknown_chains.iter().find(|(n, _)| *n == name) {
            Some(&(_, id)) => id,
            None => {
                let id = self.chains.len();
                self.chains.push(Chain {
                    name: name.clone(),
                    base: None,
                    rules: vec![Rule {
                        matches: Match {
                            opaque: vec![Opaque {
                                text: what.to_string(),
                            }],
                            ..Match::any()
                        },
                        action: Action::Drop,
                        origin: origin.clone(),
                        comment: None,
                    }],
                });
                self.unknown_chains.push((name, id));
                id
            }
        };
        Action::Jump {
            target: ChainId(id),
        }
    }

    /// The action of a `jump`/`goto` statement, or `None` after an error.
    pub(super) fn chain_target(
        &mut self,
        key: &str,
        body: &Value,
        sptr: &str,
        family: &str,
        table: &str,
    ) -> Option<Action> {
        let Some(target) = body.get("target").and_then(Value::as_str) else {
            self.error(sptr, format!("`{key}` needs a `target` chain name"));
            return None;
        };
        let tkey = (family.to_string(), table.to_string(), target.to_string());
        let Some(&ti) = self.chain_ids.get(&tkey) else {
            let names: Vec<&str> = self
                .chain_ids
                .keys()
                .filter(|k| k.0 == family && k.1 == table)
                .map(|k| k.2.as_str())
                .collect();
            let mut e = InputError::at_pointer(
                self.file,
                format!("{}/target", ptr_join(sptr, key)),
                format!("{key} to chain `{target}`, which table {family} {table} does not define"),
            );
            if let Some(c) = ringfence_diag::closest(target, names) {
                e = e.with_help(format!("did you mean `{c}`?"));
            }
            self.errors.push(e);
            return None;
        };
        Some(if key == "jump" {
            Action::Jump {
                target: ChainId(ti),
            }
        } else {
            Action::Goto {
                target: ChainId(ti),
            }
        })
    }
}
