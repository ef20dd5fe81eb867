//! Right-hand sides that are sets or maps in nft matches and statements:
//! elements of anonymous and named sets (values, prefixes, ranges, nested
//! sets, interface names), verdict maps (`vmap`, one model rule per
//! element), and concatenations looked up in sets or maps (`ip saddr . tcp
//! dport @set`), lowered to one model rule per element box with the
//! algebra of `concat` and its budgets.

use super::concat::{self, Part, TBox};
use super::expressions::narrow;
use super::{compact, ptr_join, single_key, Fam, Field, Key, Kind, Op, Parser, Why};
use ringfence_diag::InputError;
use ringfence_model::{Action, IfacePattern, IfaceSet, IntervalSet, Match, Opaque, Rule, RuleRef};
use serde_json::Value;
use std::rc::Rc;

/// A named set, the kinds of the parts it is read as, and the use.
pub(super) type ConcatKey = (Key, Vec<Option<Kind>>, Use);

/// How a concatenation's element boxes are used.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) enum Use {
    /// `==`: any boxes whose union is the set.
    Union,
    /// `==` on a rule that may jump: pairwise disjoint boxes.
    Disjoint,
    /// `!=`: disjoint boxes covering every tuple outside the set.
    Complement,
}

/// At most this many model rules for one concatenation match (elements times
/// the rule's other alternatives); over it the match stays opaque.
const CONCAT_RULE_BUDGET: usize = 20_000;

/// At most this many model rules from concatenations in one ruleset (about
/// 170 MB peak when parsing, measured); later concatenation matches over
/// it stay opaque.
const CONCAT_TOTAL_BUDGET: usize = 250_000;

/// The numeric kind a concatenation part is read as; `None` for interface names.
fn part_kind(f: Field) -> Option<Kind> {
    match f {
        Field::Addr(_, fam) => Some(Kind::Addr(fam)),
        Field::Proto(_) => Some(Kind::Proto),
        Field::Port(..) => Some(Kind::Port),
        _ => None,
    }
}

/// Every alternative intersected with every box (empty results dropped; if
/// nothing is left, one empty match keeps the rule in the model).
fn lower_boxes(alts: &[Match], fields: &[Field], boxes: &[TBox]) -> Result<Vec<Match>, Why> {
    let mut out = Vec::with_capacity(alts.len() * boxes.len());
    for alt in alts {
        for b in boxes {
            let mut one = vec![alt.clone()];
            for (&f, p) in fields.iter().zip(b) {
                narrow(f, p, &mut one)?;
            }
            out.extend(one.into_iter().filter(|m| !m.is_empty()));
        }
    }
    if out.is_empty() {
        let mut m = alts.first().cloned().unwrap_or_else(Match::any);
        m.protocol = IntervalSet::empty();
        out.push(m);
    }
    Ok(out)
}

impl<'a> Parser<'a> {
    /// A verdict map: one model rule per element (map keys are disjoint, so
    /// their order does not matter); false on a hard error.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn vmap<'r>(
        &mut self,
        body: &'r Value,
        sptr: &str,
        family: &str,
        table: &str,
        alts: &[Match],
        last: bool,
        origin: &RuleRef,
        comment: &Option<String>,
        ci: usize,
    ) -> bool
    where
        'a: 'r,
    {
        let vptr = ptr_join(sptr, "vmap");
        let (Some(key), Some(data)) = (body.get("key"), body.get("data")) else {
            self.error(&vptr, "`vmap` needs `key` and `data`");
            return false;
        };
        let (elems, eptr): (&'r Vec<Value>, String) = match data {
            Value::String(s) if s.starts_with('@') => {
                let mkey = (family.to_string(), table.to_string(), s[1..].to_string());
                match self.maps.get(&mkey) {
                    Some((m, mptr)) => match m.get("elem") {
                        Some(Value::Array(a)) => (a, ptr_join(mptr, "elem")),
                        _ => {
                            static EMPTY: Vec<Value> = Vec::new();
                            (&EMPTY, mptr.clone())
                        }
                    },
                    None => {
                        self.error(
                            &ptr_join(&vptr, "data"),
                            format!("map {s} is not defined in table {family} {table}"),
                        );
                        return false;
                    }
                }
            }
            _ => match single_key(data) {
                Some(("set", Value::Array(a))) => (a, format!("{}/set", ptr_join(&vptr, "data"))),
                _ => {
                    self.error(
                        &ptr_join(&vptr, "data"),
                        "`data` must be an anonymous map `{\"set\": [[key, verdict], ...]}` or `@name`",
                    );
                    return false;
                }
            },
        };
        // A concatenated key (`ip saddr . tcp dport vmap { ... }`): each
        // element is one box, so one model rule per element as well.
        let concat_fields = match single_key(key) {
            Some(("concat", parts)) => match self.concat_fields(parts) {
                Ok(f) => Some(f),
                Err(Why::Unsupported(why)) => {
                    self.note(&vptr, format!("{why}; every verdict of this map is opaque"));
                    None
                }
                Err(Why::Bad(e)) => {
                    self.errors.push(e);
                    return false;
                }
            },
            _ => None,
        };
        let field = match self.field(key) {
            Ok(f) => Some(f),
            // Already handled (or noted) above.
            Err(_) if matches!(single_key(key), Some(("concat", _))) => None,
            Err(Why::Unsupported(why)) => {
                self.note(&vptr, format!("{why}; every verdict of this map is opaque"));
                None
            }
            Err(Why::Bad(e)) => {
                self.errors.push(e);
                return false;
            }
        };
        if !last {
            self.note(
                sptr,
                "statements after a verdict map are not modelled; they run only for `continue` elements",
            );
        }
        for (i, el) in elems.iter().enumerate() {
            let elptr = format!("{eptr}/{i}");
            let Some([k, verdict]) = el.as_array().map(Vec::as_slice) else {
                self.error(&elptr, "a map element must be `[key, verdict]`");
                return false;
            };
            let action = match single_key(verdict) {
                Some(("accept", _)) => Action::Accept,
                Some(("drop", _)) => Action::Drop,
                Some(("return", _)) => Action::Return,
                Some(("continue", _)) => Action::Continue,
                Some((j @ ("jump" | "goto"), b)) => {
                    match self.chain_target(j, b, &format!("{elptr}/1"), family, table) {
                        Some(a) => a,
                        None => return false,
                    }
                }
                _ => {
                    self.error(
                        &format!("{elptr}/1"),
                        "expected a verdict: accept, drop, return, continue, jump or goto",
                    );
                    return false;
                }
            };
            let mut el_alts = alts.to_vec();
            let opaque_text = match &field {
                None if concat_fields.is_none() => Some(compact(key)),
                None if !last && action == Action::Continue => {
                    Some("statements after a verdict map".into())
                }
                None => None,
                Some(_) if !last && action == Action::Continue => {
                    Some("statements after a verdict map".into())
                }
                Some(_) => None,
            };
            // The element's key narrows the rule's matches: a concatenation
            // element as boxes, a single key as one field's value.
            let narrowed = if let Some(fields) = &concat_fields {
                self.concat_element(fields, k, &format!("{elptr}/0"), family, table)
                    .and_then(|b| lower_boxes(&el_alts, fields, std::slice::from_ref(&b)))
                    .map(|v| el_alts = v)
            } else if let Ok(f) = self.field(key) {
                self.apply(
                    f,
                    Op::Eq,
                    k,
                    &format!("{elptr}/0"),
                    family,
                    table,
                    &mut el_alts,
                )
            } else {
                Ok(())
            };
            match narrowed {
                Ok(()) => {}
                Err(Why::Bad(e)) => {
                    self.errors.push(e);
                    return false;
                }
                Err(Why::Unsupported(why)) => {
                    self.note(&elptr, format!("{why}; this element's verdict is opaque"));
                    for m in &mut el_alts {
                        m.opaque.push(Opaque { text: compact(el) });
                    }
                }
            }
            if let Some(t) = opaque_text {
                for m in &mut el_alts {
                    m.opaque.push(Opaque { text: t.clone() });
                }
            }
            let rules = &mut self.chains[ci].rules;
            for m in el_alts {
                rules.push(Rule {
                    matches: m,
                    action: action.clone(),
                    origin: origin.clone(),
                    comment: comment.clone(),
                });
            }
        }
        true
    }

    /// The fields a concatenation reads, each an address, protocol, port or
    /// interface field.
    fn concat_fields(&self, parts: &Value) -> Result<Vec<Field>, Why> {
        let Some(parts) = parts.as_array().filter(|p| !p.is_empty()) else {
            return Err(Why::Unsupported(format!(
                "concatenation {} is not modelled",
                compact(parts)
            )));
        };
        parts
            .iter()
            .map(|p| match self.field(p)? {
                f @ (Field::Addr(..) | Field::Proto(_) | Field::Port(..) | Field::Iface(_)) => {
                    Ok(f)
                }
                _ => Err(Why::Unsupported(format!(
                    "{} as part of a concatenation is not modelled",
                    compact(p)
                ))),
            })
            .collect()
    }

    /// `a . b . c` (`==`/`!=`) against a named set, an anonymous set or one
    /// tuple: every alternative is split into one per element box (for `!=`,
    /// per box of the complement), each with the element's value per field.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn concat_match<'r>(
        &mut self,
        parts: &Value,
        negated: bool,
        right: &'r Value,
        rptr: &str,
        family: &str,
        table: &str,
        alts: &mut Vec<Match>,
    ) -> Result<(), Why>
    where
        'a: 'r,
    {
        let fields = self.concat_fields(parts)?;
        let how = if negated {
            Use::Complement
        } else if self.may_jump {
            Use::Disjoint
        } else {
            Use::Union
        };
        let boxes = self.concat_boxes(&fields, right, rptr, family, table, how)?;
        let want = alts.len().saturating_mul(boxes.len());
        if want > CONCAT_RULE_BUDGET {
            return Err(Why::Unsupported(format!(
                "the concatenation needs {want} model rules, more than the budget of {CONCAT_RULE_BUDGET} for one match"
            )));
        }
        if self.concat_rules + want > CONCAT_TOTAL_BUDGET {
            return Err(Why::Unsupported(format!(
                "concatenations in this ruleset need more than {CONCAT_TOTAL_BUDGET} model rules in all (the budget); this one is left out"
            )));
        }
        let out = lower_boxes(alts, &fields, &boxes)?;
        self.concat_rules += out.len();
        *alts = out;
        Ok(())
    }

    /// The element boxes of the right-hand side, prepared for `how`; named
    /// sets are read once per use.
    #[allow(clippy::too_many_arguments)]
    fn concat_boxes<'r>(
        &mut self,
        fields: &[Field],
        right: &'r Value,
        rptr: &str,
        family: &str,
        table: &str,
        how: Use,
    ) -> Result<Rc<Vec<TBox>>, Why>
    where
        'a: 'r,
    {
        let sig: Vec<Option<Kind>> = fields.iter().map(|&f| part_kind(f)).collect();
        let (elems, eptr, ckey): (&'r [Value], String, Option<_>) = match right {
            Value::String(s) if s.starts_with('@') => {
                let key = (family.to_string(), table.to_string(), s[1..].to_string());
                let ckey = (key, sig.clone(), how);
                if let Some(b) = self.concat_cache.get(&ckey) {
                    return Ok(b.clone());
                }
                let (elems, sptr) = self.named_set(&s[1..], rptr, family, table)?;
                (elems.as_slice(), sptr, Some(ckey))
            }
            _ => match single_key(right) {
                Some(("set", Value::Array(a))) => (a.as_slice(), ptr_join(rptr, "set"), None),
                Some(("concat", _)) => (std::slice::from_ref(right), String::new(), None),
                _ => {
                    return Err(self.bad(
                        rptr,
                        format!(
                            "expected a set of {}-part tuples (`{{\"set\": [{{\"concat\": [...]}}, ...]}}`) or a named set `@name`",
                            fields.len()
                        ),
                    ))
                }
            },
        };
        let mut boxes = Vec::with_capacity(elems.len());
        for (i, e) in elems.iter().enumerate() {
            let ptr = if eptr.is_empty() {
                rptr.to_string()
            } else {
                format!("{eptr}/{i}")
            };
            boxes.push(self.concat_element(fields, e, &ptr, family, table)?);
        }
        let n = boxes.len();
        let boxes = concat::merge(boxes);
        let boxes = match how {
            Use::Union => Ok(boxes),
            Use::Disjoint => concat::disjoint(&boxes, CONCAT_RULE_BUDGET),
            Use::Complement => {
                let full: TBox = sig
                    .iter()
                    .map(|k| match k {
                        Some(k) => Part::Num(IntervalSet::range(0, k.max())),
                        None => Part::Iface(IfaceSet::any()),
                    })
                    .collect();
                concat::complement(&full, &boxes, CONCAT_RULE_BUDGET).map(concat::merge)
            }
        }
        .map_err(|f| {
            let what = match how {
                Use::Complement => "`!=` (the tuples outside the set)",
                _ => "a jump (one model rule per element, pairwise disjoint)",
            };
            Why::Unsupported(match f {
                concat::Fail::Budget => format!(
                    "a concatenation set of {n} elements used with {what} needs more than {CONCAT_RULE_BUDGET} model rules (the budget)"
                ),
                concat::Fail::Iface => format!(
                    "a concatenation set of {n} elements used with {what} needs an interface set with a hole in a wildcard, which the model cannot express"
                ),
            })
        })?;
        let boxes = Rc::new(boxes);
        if let Some(k) = ckey {
            self.concat_cache.insert(k, boxes.clone());
        }
        Ok(boxes)
    }

    /// One element of a concatenation set (possibly wrapped as
    /// `{"elem": {"val": ...}}`) as a box: a value set per field.
    fn concat_element<'r>(
        &mut self,
        fields: &[Field],
        e: &'r Value,
        ptr: &str,
        family: &str,
        table: &str,
    ) -> Result<TBox, Why>
    where
        'a: 'r,
    {
        let (e, ptr) = match single_key(e) {
            Some(("elem", b)) => match b.get("val") {
                Some(v) => (v, format!("{}/val", ptr_join(ptr, "elem"))),
                None => return Err(self.bad(&ptr_join(ptr, "elem"), "`elem` needs a `val`")),
            },
            _ => (e, ptr.to_string()),
        };
        let Some(("concat", Value::Array(parts))) = single_key(e) else {
            return Err(self.bad(
                &ptr,
                format!(
                    "expected a {}-part tuple `{{\"concat\": [...]}}`, found {}",
                    fields.len(),
                    compact(e)
                ),
            ));
        };
        if parts.len() != fields.len() {
            return Err(self.bad(
                &ptr,
                format!(
                    "this element has {} parts, but the match concatenates {} fields",
                    parts.len(),
                    fields.len()
                ),
            ));
        }
        let cptr = ptr_join(&ptr, "concat");
        let mut b = Vec::with_capacity(parts.len());
        for (j, (f, v)) in fields.iter().zip(parts).enumerate() {
            let pptr = format!("{cptr}/{j}");
            b.push(match part_kind(*f) {
                None => Part::Iface(IfaceSet::only(self.ifaces(v, &pptr, family, table)?)),
                Some(kind) => {
                    let mut ranges = Vec::new();
                    self.collect(v, &pptr, kind, family, table, &mut ranges, 0)?;
                    Part::Num(IntervalSet::from_ranges(ranges))
                }
            });
        }
        Ok(b)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn collect<'r>(
        &mut self,
        v: &'r Value,
        ptr: &str,
        kind: Kind,
        family: &str,
        table: &str,
        out: &mut Vec<(u128, u128)>,
        depth: u8,
    ) -> Result<(), Why>
    where
        'a: 'r,
    {
        if depth > 4 {
            return Err(self.bad(ptr, "set elements nest too deeply"));
        }
        match v {
            Value::String(s) if s.starts_with('@') => {
                // Large sets are referenced by many rules: read each once per kind.
                let ckey = (
                    (family.to_string(), table.to_string(), s[1..].to_string()),
                    kind,
                );
                if let Some(r) = self.set_cache.get(&ckey) {
                    out.extend_from_slice(r);
                    return Ok(());
                }
                let (elems, sptr) = self.named_set(&s[1..], ptr, family, table)?;
                let mut mine = Vec::with_capacity(elems.len());
                for (i, e) in elems.iter().enumerate() {
                    self.collect(
                        e,
                        &format!("{sptr}/{i}"),
                        kind,
                        family,
                        table,
                        &mut mine,
                        depth + 1,
                    )?;
                }
                out.extend_from_slice(&mine);
                self.set_cache.insert(ckey, mine);
                Ok(())
            }
            Value::Array(a) => {
                for (i, e) in a.iter().enumerate() {
                    self.collect(
                        e,
                        &format!("{ptr}/{i}"),
                        kind,
                        family,
                        table,
                        out,
                        depth + 1,
                    )?;
                }
                Ok(())
            }
            Value::Object(_) => {
                let Some((k, body)) = single_key(v) else {
                    return Err(self.bad(
                        ptr,
                        format!("expected {}, a prefix, a range or a set", kind.what()),
                    ));
                };
                let kptr = ptr_join(ptr, k);
                match k {
                    "set" => self.collect(body, &kptr, kind, family, table, out, depth + 1),
                    "elem" => match body.get("val") {
                        Some(val) => self.collect(
                            val,
                            &ptr_join(&kptr, "val"),
                            kind,
                            family,
                            table,
                            out,
                            depth + 1,
                        ),
                        None => Err(self.bad(&kptr, "`elem` needs a `val`")),
                    },
                    "range" => {
                        let r = body.as_array().filter(|a| a.len() == 2).ok_or_else(|| {
                            self.bad(&kptr, "`range` must be an array of two values")
                        })?;
                        let lo = self.scalar(&r[0], &format!("{kptr}/0"), kind)?;
                        let hi = self.scalar(&r[1], &format!("{kptr}/1"), kind)?;
                        out.push((lo, hi));
                        Ok(())
                    }
                    "prefix" => {
                        let Kind::Addr(fam) = kind else {
                            return Err(self.bad(
                                &kptr,
                                format!("a prefix where {} was expected", kind.what()),
                            ));
                        };
                        let addr = body
                            .get("addr")
                            .ok_or_else(|| self.bad(&kptr, "`prefix` needs `addr`"))?;
                        let len = body
                            .get("len")
                            .and_then(Value::as_u64)
                            .ok_or_else(|| self.bad(&kptr, "`prefix` needs an integer `len`"))?;
                        let a = self.scalar(addr, &ptr_join(&kptr, "addr"), kind)?;
                        let bits = if fam == Fam::V4 { 32 } else { 128 };
                        if len > bits {
                            return Err(self.bad(
                                &ptr_join(&kptr, "len"),
                                format!("prefix length {len} is longer than {bits}"),
                            ));
                        }
                        let host = if len == bits { 0 } else { kind.max() >> len };
                        out.push((a & !host, (a & !host) | host));
                        Ok(())
                    }
                    _ => Err(Why::Unsupported(format!(
                        "value {} is not modelled",
                        compact(v)
                    ))),
                }
            }
            _ => {
                let x = self.scalar(v, ptr, kind)?;
                out.push((x, x));
                Ok(())
            }
        }
    }

    fn named_set(
        &mut self,
        name: &str,
        ptr: &str,
        family: &str,
        table: &str,
    ) -> Result<(&'a Vec<Value>, String), Why> {
        let key = (family.to_string(), table.to_string(), name.to_string());
        let Some(&(set, ref sptr)) = self.sets.get(&key) else {
            let names: Vec<&str> = self
                .sets
                .keys()
                .filter(|k| k.0 == family && k.1 == table)
                .map(|k| k.2.as_str())
                .collect();
            let mut e = InputError::at_pointer(
                self.file,
                ptr,
                format!("set @{name} is not defined in table {family} {table}"),
            );
            if let Some(c) = ringfence_diag::closest(name, names) {
                e = e.with_help(format!("did you mean @{c}?"));
            }
            return Err(Why::Bad(e));
        };
        let sptr = sptr.clone();
        if let Some(flags) = set.get("flags").and_then(Value::as_array) {
            if flags
                .iter()
                .any(|f| matches!(f.as_str(), Some("dynamic" | "timeout")))
            {
                self.note(
                    &sptr,
                    format!("set @{name} is dynamic or has timeouts: its contents at dump time are used"),
                );
            }
        }
        static EMPTY: Vec<Value> = Vec::new();
        match set.get("elem") {
            None => Ok((&EMPTY, ptr_join(&sptr, "elem"))),
            Some(Value::Array(a)) => Ok((a, ptr_join(&sptr, "elem"))),
            Some(_) => Err(self.bad(&ptr_join(&sptr, "elem"), "`elem` must be an array")),
        }
    }

    pub(super) fn ifaces<'r>(
        &mut self,
        v: &'r Value,
        ptr: &str,
        family: &str,
        table: &str,
    ) -> Result<Vec<IfacePattern>, Why>
    where
        'a: 'r,
    {
        let mut out = Vec::new();
        self.iface_collect(v, ptr, family, table, &mut out, 0)?;
        Ok(out)
    }

    fn iface_collect<'r>(
        &mut self,
        v: &'r Value,
        ptr: &str,
        family: &str,
        table: &str,
        out: &mut Vec<IfacePattern>,
        depth: u8,
    ) -> Result<(), Why>
    where
        'a: 'r,
    {
        if depth > 4 {
            return Err(self.bad(ptr, "set elements nest too deeply"));
        }
        match v {
            Value::String(s) if s.starts_with('@') => {
                let (elems, sptr) = self.named_set(&s[1..], ptr, family, table)?;
                for (i, e) in elems.iter().enumerate() {
                    self.iface_collect(e, &format!("{sptr}/{i}"), family, table, out, depth + 1)?;
                }
                Ok(())
            }
            Value::String(s) => {
                if s.contains('\\') {
                    return Err(Why::Unsupported(format!("escaped interface name `{s}` is not modelled")));
                }
                out.push(IfacePattern::from_nft(s));
                Ok(())
            }
            Value::Array(a) => {
                for (i, e) in a.iter().enumerate() {
                    self.iface_collect(e, &format!("{ptr}/{i}"), family, table, out, depth + 1)?;
                }
                Ok(())
            }
            Value::Number(n) => Err(Why::Unsupported(format!(
                "interface index {n} (the interface no longer exists, so its name is unknown)"
            ))),
            _ => match single_key(v) {
                Some(("set", b)) => self.iface_collect(b, &ptr_join(ptr, "set"), family, table, out, depth + 1),
                Some(("elem", b)) => match b.get("val") {
                    Some(val) => self.iface_collect(val, &ptr_join(ptr, "elem"), family, table, out, depth + 1),
                    None => Err(self.bad(ptr, "`elem` needs a `val`")),
                },
                Some(("range", _)) => Err(Why::Unsupported(
                    "a range of interface names (nft 1.0.x prints wildcard set elements this way and loses them)".into(),
                )),
                _ => Err(self.bad(ptr, format!("expected an interface name or a set of names, found {}", compact(v)))),
            },
        }
    }
}
