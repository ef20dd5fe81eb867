//! `nft -j list ruleset` (libnftables JSON schema) into the normalized model.
//!
//! The parser walks the JSON as a [`serde_json::Value`] rather than through
//! strongly typed schema structs: every problem must be reported with the JSON
//! pointer of the offending element, and an expression we do not model must
//! become an [`Opaque`] match (with a [`ParseNote`]) instead of failing the
//! whole document, which typed deserialization of the full schema cannot give.
//!
//! What is modelled, and how:
//! - Families `ip`, `ip6` and `inet`. Tables of other families (`arp`,
//!   `bridge`, `netdev`) are skipped with a note. A chain of an `ip` (`ip6`)
//!   table never sees IPv6 (IPv4) packets: every rule of such a table is
//!   restricted to its family, and a base chain with a drop policy gets a
//!   synthesized first rule that accepts the other family, which is what
//!   "this base chain does not look at it" means in the model.
//! - Base chains (`type`, `hook`, `prio` number or standard name such as
//!   `filter`, `policy`) and regular chains; rules in order, each origin is
//!   [`RuleRef::NftHandle`].
//! - Matches on `ip`/`ip6` `saddr`/`daddr`, `ip protocol`, `ip6 nexthdr`
//!   (taken as the transport protocol: packets with IPv6 extension headers are
//!   not modelled), `meta l4proto`, `meta nfproto`, `tcp`/`udp`/`udplite`/
//!   `sctp`/`dccp` ports (which imply the protocol, as the kernel's implicit
//!   dependency does even though the dump omits it), `th` ports (exact for
//!   protocols with ports; for other protocols the bytes read are not ports and
//!   the rule becomes opaque there), `meta iifname`/`oifname` with the `*`
//!   wildcard, `meta iif`/`oif` (by name: the kernel resolved the index at load
//!   time), and `ct state` in all its forms.
//! - Right-hand sides: single values, prefixes, ranges, anonymous sets, named
//!   sets (`@name`, interval sets too) and, for `ct state`, flag lists.
//!   Operators `==`, `!=`, `in`, `<`, `>`, `<=`, `>=` and the implicit one.
//! - `ct state`: a flag list (`"in"` with an array) tests "has any of these
//!   bits"; a plain comparison (`==`/`!=` with `{"|": [...]}`) compares the
//!   whole value, so `ct state != new,established` matches *every* packet
//!   (a packet has exactly one state) while `ct state != { new, established }`
//!   (a set) does not match new or established packets.
//! - Concatenations (`ip saddr . tcp dport @set`, anonymous sets of tuples,
//!   verdict maps with a concatenated key) over address, protocol, port and
//!   interface-name parts. Each element (plain values, prefixes, ranges,
//!   wildcards, `{"elem": {"val": ...}}` wrappers) is a box, one value set per
//!   part; the rule becomes one model rule per box, all with the rule's
//!   handle. A rule that may jump gets pairwise disjoint boxes (a jump that
//!   returns must not run twice); `!=` becomes the disjoint boxes of the
//!   complement. Budgets (per match and per ruleset) bound the expansion; a
//!   match over them stays opaque with a note saying so. See
//!   docs/nft-concatenations.md.
//! - Verdicts accept, drop, reject, jump, goto, return, continue; `counter`,
//!   `log` and named counters have no effect. Base chains of every type
//!   (filter, nat, route) on every hook are base chains at their priority;
//!   the rules of a nat base chain see only a connection's first packet
//!   (state new or related). `dnat`, `snat`, `masquerade` and `redirect`
//!   (addresses, ranges, ports, `dnat to KEY map {...}` as one rule per
//!   element) are [`Action::Nat`] rewrites; `ct status`, `ct original
//!   saddr/daddr/proto-src/proto-dst` and `fib saddr|daddr type` are match
//!   fields (module `nat`). `tproxy`, `queue`, `notrack`, `synproxy`,
//!   a `set` of a header field, and iptables-nft compat targets that
//!   translate or whose arguments the dump omits jump to a synthesized
//!   `?what` chain whose fate is unknown. Setting marks, priority or DSCP
//!   continues: every match on those is opaque. Anything else (`limit`,
//!   `quota`, marks, data maps, raw payloads) becomes an [`Opaque`] match
//!   with a note.
//!
//! Layout: this module reads the document (tables, chains, hooks,
//! priorities) and holds the vocabulary its submodules share; `statements`
//! walks a rule's statements and their verdicts; `expressions` turns
//! `match` statements into model fields; `sets` reads set and map
//! right-hand sides, verdict maps and concatenation lookups (with the box
//! algebra of `concat`); `fields` holds the rarer header fields and `nat`
//! the translations and the matches on what they did.
//!
//! [`Opaque`]: ringfence_model::Opaque

use ringfence_diag::{InputError, InputErrors};
use ringfence_model::{
    Action, AddrSet, BaseChain, Chain, CtStates, Hook, Match, ParseNote, Policy, Rule, RuleRef,
    Ruleset, SourceFormat,
};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

pub(crate) mod concat;
mod expressions;
mod fields;
mod nat;
mod sets;
mod statements;
use concat::TBox;
use fields::XField;
use sets::ConcatKey;

pub(crate) use expressions::intersect_ifaces;

/// Parse the text of `nft -j list ruleset`; `file` names it in errors and notes.
pub fn parse(text: &str, file: &str) -> Result<Ruleset, InputErrors> {
    if text.trim().is_empty() {
        return Err(InputError::whole(
            file,
            "the file is empty; expected the JSON printed by `nft -j list ruleset`",
        )
        .into());
    }
    // Fast path: keep every rule as a slice of the input and build its JSON
    // tree only while that rule is converted, so memory stays near the size
    // of the input plus the model even for 100,000-rule dumps.
    let items = match split_items(text) {
        Some(items) => items,
        None => {
            let doc: Value = serde_json::from_str(text).map_err(|e| json_error(file, &e))?;
            match doc.get("nftables").map(|v| v.as_array()) {
                Some(Some(a)) => a.iter().cloned().map(Item::Parsed).collect(),
                Some(None) => {
                    return Err(InputError::at_pointer(
                        file,
                        "/nftables",
                        "`nftables` must be an array",
                    )
                    .with_help(HELP)
                    .into())
                }
                None => {
                    return Err(InputError::at_pointer(
                        file,
                        "",
                        "expected a JSON object with an `nftables` array at the top",
                    )
                    .with_help(HELP)
                    .into())
                }
            }
        }
    };
    lower_items(&items, file)
}

/// Lower the items of an `nftables` array (already parsed) into the model:
/// the nft text reader prints what it reads as these items, so text and
/// JSON go through the same lowering.
pub(crate) fn lower(items: Vec<Value>, file: &str) -> Result<Ruleset, InputErrors> {
    let items: Vec<Item<'_>> = items.into_iter().map(Item::Parsed).collect();
    lower_items(&items, file)
}

fn lower_items(items: &[Item<'_>], file: &str) -> Result<Ruleset, InputErrors> {
    let mut p = Parser {
        file,
        errors: Vec::new(),
        notes: Vec::new(),
        chains: Vec::new(),
        chain_ids: HashMap::new(),
        sets: HashMap::new(),
        maps: HashMap::new(),
        set_cache: HashMap::new(),
        concat_cache: HashMap::new(),
        concat_rules: 0,
        may_jump: false,
        noted_tables: Vec::new(),
        unknown_chains: Vec::new(),
        nat_chains: Vec::new(),
        rewrites: [None, None],
    };
    p.document(items);
    if !p.errors.is_empty() {
        return Err(InputErrors(p.errors));
    }
    let mut rs = Ruleset {
        format: SourceFormat::NftJson,
        source: file.to_string(),
        chains: p.chains,
        notes: p.notes,
        enforced_at: None,
    };
    use ringfence_model::fields::{tests_made_opaque, Rewritten};
    for (at, field) in p
        .rewrites
        .iter()
        .zip([Rewritten::DsField, Rewritten::PktType])
    {
        if let Some(at) = at {
            tests_made_opaque(&mut rs, field, &format!("{file}#{at}"));
        }
    }
    Ok(rs)
}

const HELP: &str =
    "the file should be the unchanged output of `nft -j list ruleset` (libnftables JSON schema)";

fn json_error(file: &str, e: &serde_json::Error) -> InputError {
    ringfence_diag::json_error(file, e)
        .with_help("give the output of `nft -j list ruleset` unchanged")
}

/// One element of the `nftables` array.
enum Item<'t> {
    /// Parsed (tables, sets, chains, odd elements).
    Parsed(Value),
    /// The body of a `rule`, still as input text.
    Rule(&'t RawValue),
}

/// Split `{"nftables": [...]}` into items without building rule trees;
/// `None` when the text is not of that shape (the caller then parses it fully
/// to report exactly what is wrong).
fn split_items(text: &str) -> Option<Vec<Item<'_>>> {
    let top: BTreeMap<String, &RawValue> = serde_json::from_str(text).ok()?;
    let raw: Vec<&RawValue> = serde_json::from_str(top.get("nftables")?.get()).ok()?;
    raw.into_iter()
        .map(|r| {
            let one: Option<BTreeMap<String, &RawValue>> = serde_json::from_str(r.get()).ok();
            Some(match one {
                Some(m) if m.len() == 1 && m.contains_key("rule") => Item::Rule(m["rule"]),
                _ => Item::Parsed(serde_json::from_str(r.get()).ok()?),
            })
        })
        .collect()
}

/// (family, table, name)
type Key = (String, String, String);

struct Parser<'a> {
    file: &'a str,
    errors: Vec<InputError>,
    notes: Vec<ParseNote>,
    chains: Vec<Chain>,
    chain_ids: HashMap<Key, usize>,
    sets: HashMap<Key, (&'a Value, String)>,
    maps: HashMap<Key, (&'a Value, String)>,
    set_cache: HashMap<(Key, Kind), Vec<(u128, u128)>>,
    /// Boxes of named sets matched by concatenations, per part kinds and use.
    concat_cache: HashMap<ConcatKey, Rc<Vec<TBox>>>,
    /// Model rules made from concatenation elements so far (against the budget).
    concat_rules: usize,
    /// Whether the rule being read may jump (then its copies must be disjoint).
    may_jump: bool,
    noted_tables: Vec<(String, String)>,
    /// Synthesized `?what` chains standing for statements whose effect is
    /// unknown (name, chain index).
    unknown_chains: Vec<(String, usize)>,
    /// Base chains of type nat (the kernel runs them only for a
    /// connection's first packet).
    nat_chains: Vec<usize>,
    /// Where a `set` statement first rewrites the DS field and the packet
    /// type (JSON pointers), which later tests then cannot read exactly.
    rewrites: [Option<String>; 2],
}

/// The conntrack states of the packets nat chains see: a new connection's
/// first packet, or an expected connection's, which conntrack calls related.
const NAT_STATES: u8 = CtStates::NEW | CtStates::RELATED;

/// Why a match could not be turned into model sets.
enum Why {
    /// Bad input: an error.
    Bad(InputError),
    /// Valid but not modelled: the match becomes opaque.
    Unsupported(String),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Fam {
    V4,
    V6,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Src,
    Dst,
}

/// What the left-hand side of a match reads.
#[derive(Clone, Copy)]
enum Field {
    Addr(Side, Fam),
    Proto(Option<Fam>),
    Port(Side, Option<u8>),
    /// `meta iifname`/`oifname`, and `iif`/`oif` (the kernel resolved the
    /// index at load time; the dump prints the name).
    Iface(Side),
    Family,
    CtState(Option<u8>),
    /// TCP flags, ICMP type/code, DSCP, length, packet type, MAC.
    Extra(XField),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Eq,
    Ne,
    In,
    Lt,
    Gt,
    Le,
    Ge,
}

/// The numeric kinds a right-hand side is read as.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Addr(Fam),
    Port,
    Proto,
    Extra(XField),
}

impl Kind {
    fn max(self) -> u128 {
        match self {
            Kind::Addr(Fam::V4) => u32::MAX as u128,
            Kind::Addr(Fam::V6) => u128::MAX,
            Kind::Port => u16::MAX as u128,
            Kind::Proto => u8::MAX as u128,
            Kind::Extra(f) => f.max(),
        }
    }
    fn what(self) -> &'static str {
        match self {
            Kind::Addr(Fam::V4) => "an IPv4 address",
            Kind::Addr(Fam::V6) => "an IPv6 address",
            Kind::Port => "a port number (0-65535)",
            Kind::Proto => "a protocol name or number (0-255)",
            Kind::Extra(f) => f.what(),
        }
    }
}

fn ptr_join(base: &str, key: &str) -> String {
    format!("{base}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn single_key(v: &Value) -> Option<(&str, &Value)> {
    let o = v.as_object()?;
    if o.len() == 1 {
        o.iter().next().map(|(k, v)| (k.as_str(), v))
    } else {
        None
    }
}

impl<'a> Parser<'a> {
    fn error(&mut self, ptr: &str, msg: impl Into<String>) {
        self.errors
            .push(InputError::at_pointer(self.file, ptr, msg).with_help(
                "the file should be the unchanged output of `nft -j list ruleset` (libnftables JSON schema)",
            ));
    }

    fn note(&mut self, ptr: &str, msg: impl Into<String>) {
        self.notes.push(ParseNote {
            location: format!("{}#{}", self.file, ptr),
            message: msg.into(),
        });
    }

    fn bad(&self, ptr: &str, msg: impl Into<String>) -> Why {
        Why::Bad(InputError::at_pointer(self.file, ptr, msg))
    }

    fn str_field<'v>(
        &mut self,
        o: &'v Map<String, Value>,
        key: &str,
        ptr: &str,
    ) -> Option<&'v str> {
        match o.get(key) {
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.error(&ptr_join(ptr, key), format!("`{key}` must be a string"));
                None
            }
            None => {
                self.error(ptr, format!("missing `{key}`"));
                None
            }
        }
    }

    fn supported_family(&mut self, family: &str, table: &str, ptr: &str) -> bool {
        if matches!(family, "ip" | "ip6" | "inet") {
            return true;
        }
        let key = (family.to_string(), table.to_string());
        if !self.noted_tables.contains(&key) {
            self.noted_tables.push(key);
            self.note(
                ptr,
                format!("table {family} {table} skipped: only the ip, ip6 and inet families are modelled"),
            );
        }
        false
    }

    fn document(&mut self, items: &'a [Item<'_>]) {
        let mut rules = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ptr = format!("/nftables/{i}");
            let item = match item {
                Item::Rule(_) => {
                    rules.push(i);
                    continue;
                }
                Item::Parsed(v) => v,
            };
            let Some((kind, body)) = single_key(item) else {
                self.error(&ptr, "each element of `nftables` must be an object with exactly one key such as `table`, `chain` or `rule`");
                continue;
            };
            let bptr = ptr_join(&ptr, kind);
            match kind {
                "metainfo" => {}
                "table" => {
                    if let Some(o) = body.as_object() {
                        if let (Some(f), Some(n)) = (
                            o.get("family").and_then(Value::as_str),
                            o.get("name").and_then(Value::as_str),
                        ) {
                            self.supported_family(f, n, &bptr);
                        }
                    }
                }
                "rule" => rules.push(i),
                "set" | "map" | "chain" => {
                    let Some(o) = body.as_object() else {
                        self.error(&bptr, format!("`{kind}` must be an object"));
                        continue;
                    };
                    let (Some(family), Some(table)) = (
                        self.str_field(o, "family", &bptr),
                        self.str_field(o, "table", &bptr),
                    ) else {
                        continue;
                    };
                    if !self.supported_family(family, table, &bptr) {
                        continue;
                    }
                    match kind {
                        "chain" => self.chain(o, family, table, &bptr),
                        _ => {
                            if let Some(name) = self.str_field(o, "name", &bptr) {
                                let key = (family.into(), table.into(), name.into());
                                if kind == "set" {
                                    self.sets.insert(key, (body, bptr));
                                } else {
                                    self.maps.insert(key, (body, bptr));
                                }
                            }
                        }
                    }
                }
                other => self.note(
                    &bptr,
                    format!("`{other}` object skipped: it does not filter packets"),
                ),
            }
        }
        for i in rules {
            let bptr = format!("/nftables/{i}/rule");
            let owned: Value;
            let body: &Value = match &items[i] {
                Item::Rule(raw) => match serde_json::from_str(raw.get()) {
                    Ok(v) => {
                        owned = v;
                        &owned
                    }
                    Err(e) => {
                        self.error(&bptr, format!("not valid JSON: {e}"));
                        continue;
                    }
                },
                Item::Parsed(v) => &v["rule"],
            };
            let Some(o) = body.as_object() else {
                self.error(&bptr, "`rule` must be an object");
                continue;
            };
            let (Some(family), Some(table)) = (
                self.str_field(o, "family", &bptr),
                self.str_field(o, "table", &bptr),
            ) else {
                continue;
            };
            if !self.supported_family(family, table, &bptr) {
                continue;
            }
            self.rule(o, &bptr);
        }
    }

    fn chain(&mut self, o: &Map<String, Value>, family: &str, table: &str, ptr: &str) {
        let Some(name) = self.str_field(o, "name", ptr) else {
            return;
        };
        let full = format!("{family} {table} {name}");
        let key = (family.to_string(), table.to_string(), name.to_string());
        if self.chain_ids.contains_key(&key) {
            self.error(ptr, format!("chain {full} is defined twice"));
            return;
        }
        let mut base = None;
        if let Some(hook) = o.get("hook") {
            let hook = match hook.as_str() {
                Some("prerouting") => Some(Hook::Prerouting),
                Some("input") => Some(Hook::Input),
                Some("forward") => Some(Hook::Forward),
                Some("output") => Some(Hook::Output),
                Some("postrouting") => Some(Hook::Postrouting),
                Some(h @ ("ingress" | "egress")) => {
                    self.note(
                        &ptr_join(ptr, "hook"),
                        format!("chain {full} on the {h} hook is not modelled: it is kept as a regular chain"),
                    );
                    None
                }
                _ => {
                    self.error(
                        &ptr_join(ptr, "hook"),
                        "`hook` must be one of prerouting, input, forward, output, postrouting, ingress, egress",
                    );
                    return;
                }
            };
            let prio = match o.get("prio") {
                None => Some(0),
                Some(Value::Number(n)) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
                Some(Value::String(s)) => priority_name(s),
                Some(_) => None,
            };
            let Some(priority) = prio else {
                self.error(
                    &ptr_join(ptr, "prio"),
                    "`prio` must be an integer or a standard priority such as `filter` or `filter + 5`",
                );
                return;
            };
            let policy = match o.get("policy").map(|p| p.as_str()) {
                None | Some(Some("accept")) => Policy::Accept,
                Some(Some("drop")) => Policy::Drop,
                _ => {
                    self.error(
                        &ptr_join(ptr, "policy"),
                        "`policy` must be \"accept\" or \"drop\"",
                    );
                    return;
                }
            };
            let mut nat = false;
            match o.get("type").and_then(Value::as_str) {
                // Verdicts of nat and route chains mean what they mean in a
                // filter chain; their translations and reroutes are read
                // statement by statement. A nat base chain is marked as
                // such: the kernel runs it with the hook's other nat chains
                // (see `BaseChain::nat`).
                Some("filter" | "route") | None => {}
                Some("nat") => {
                    if hook.is_some() {
                        self.nat_chains.push(self.chains.len());
                        nat = true;
                    }
                }
                Some(t) => self.note(
                    &ptr_join(ptr, "type"),
                    format!("chain {full} has type {t}: its verdicts are modelled like a filter chain's, its other effects are not"),
                ),
            }
            if let Some(hook) = hook {
                base = Some(BaseChain {
                    hook,
                    priority,
                    policy,
                    nat,
                });
            }
        }
        let mut rules = Vec::new();
        // Rules of ip/ip6 tables are restricted to their family (see `rule`);
        // a drop policy must not catch the other family either.
        if base.as_ref().is_some_and(|b| b.policy == Policy::Drop) && family != "inet" {
            let (other, what) = if family == "ip" {
                (AddrSet::all_v6(), "IPv6")
            } else {
                (AddrSet::all_v4(), "IPv4")
            };
            rules.push(Rule {
                matches: Match {
                    src: other,
                    ..Match::any()
                },
                action: Action::Accept,
                origin: RuleRef::Policy {
                    chain: format!("{full} (not applied: {what} packets do not traverse a table of family {family})"),
                },
                comment: Some(format!(
                    "synthesized: a base chain of family {family} does not see {what} packets"
                )),
            });
        }
        self.chain_ids.insert(key, self.chains.len());
        self.chains.push(Chain {
            name: full,
            base,
            rules,
        });
    }
}

/// Standard priority names (ip, ip6 and inet families), optionally `name + n` / `name - n`.
pub(crate) fn priority_name(s: &str) -> Option<i32> {
    let s = s.trim();
    if let Ok(n) = s.parse() {
        return Some(n);
    }
    let (name, delta) = match s.find(['+', '-']) {
        Some(i) => {
            let d: i32 = s[i + 1..].trim().parse().ok()?;
            (s[..i].trim(), if &s[i..i + 1] == "-" { -d } else { d })
        }
        None => (s, 0),
    };
    let base = match name {
        "raw" => -300,
        "mangle" => -150,
        "dstnat" => -100,
        "filter" => 0,
        "security" => 50,
        "srcnat" => 100,
        _ => return None,
    };
    Some(base + delta)
}

fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &s[..cut])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_names_follow_nft_table() {
        assert_eq!(priority_name("filter"), Some(0));
        assert_eq!(priority_name("filter + 5"), Some(5));
        assert_eq!(priority_name("raw"), Some(-300));
        assert_eq!(priority_name("mangle - 1"), Some(-151));
        assert_eq!(priority_name("-7"), Some(-7));
        assert_eq!(priority_name("bogus"), None);
    }
}
