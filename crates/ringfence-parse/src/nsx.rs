//! NSX distributed firewall (Policy API JSON) into the normalized model.
//!
//! Accepted shapes: the hierarchical export of `/policy/api/v1/infra`
//! (`children` of `ChildDomain`, `ChildSecurityPolicy`, `ChildRule`,
//! `ChildGroup`, `ChildService` wrappers, security policies possibly carrying
//! their `rules` inline), a JSON array of the same objects, or an object with a
//! `results` array (a list API answer). Objects are recognised by
//! `resource_type`.
//!
//! How the DFW becomes chains:
//! - The DFW is modelled as base chains on the forward hook, priority 0,
//!   whose policy is **accept**: NSX's own default layer-3 rule allows
//!   unless the export contains an explicit default rule (which then
//!   appears, like any rule, at the end of its category). Every address is
//!   taken to be a VM on the DFW, each vNIC running the rules whose scope
//!   holds it.
//! - With no `scope` other than ANY, every vNIC runs the same list, so one
//!   chain `nsx dfw` stands for both ends of a connection.
//! - Otherwise the source VM's vNIC and the destination VM's vNIC are two
//!   chains, `nsx dfw at source vNIC` and `nsx dfw at destination vNIC`, and a
//!   packet must pass both. A scoped rule is in the source chain only for
//!   sources in its scope groups' addresses, and in the destination chain only
//!   for destinations in them; a policy's scope takes precedence over its
//!   rules'. `direction` OUT rules run in the source chain only, IN in the
//!   destination chain only. A scope whose members the export cannot tell
//!   (dynamic membership, a group missing from the export, a segment) makes
//!   the rule opaque, naming the group.
//! - Categories run in the order Ethernet, Emergency, Infrastructure,
//!   Environment, Application; policies by `sequence_number` inside a category,
//!   rules by `sequence_number` inside a policy (ties keep document order).
//! - Environment rules live in a regular chain `nsx Environment` (one per
//!   vNIC chain) that the base chain jumps to, so `JUMP_TO_APPLICATION` is
//!   exactly a return: it skips the rest of Environment and goes on with
//!   Application.
//! - A rule's `services` and `service_entries` are a union; the parser splits
//!   the rule into consecutive model rules, one per service entry, sharing one
//!   [`RuleRef::NsxPath`]. `source_groups` / `destination_groups` are unions of
//!   groups, IP addresses, CIDRs and ranges; `sources_excluded` /
//!   `destinations_excluded` negate them; `ip_protocol` restricts the family.
//! - Group membership: `IPAddressExpression` and `PathExpression` (nested
//!   groups, cycles are an error) joined by `OR`. Dynamic membership
//!   (`Condition`, tags, VMs, segments, `AND` conjunctions) cannot be known
//!   from the export: the addresses become "any" and the rule opaque.
//! - Stateful policies (the default) pass the packets of allowed connections
//!   without rule evaluation: a synthesized first rule accepts conntrack
//!   states established and related.
//! - With the single chain, `direction` other than `IN_OUT` makes the rule
//!   opaque (it may or may not match, depending on the vNIC), with a note.
//!   Context `profiles` always make it opaque.
//! - Disabled rules are skipped.

use ringfence_diag::{InputError, InputErrors};
use ringfence_model::{
    proto, Action, AddrSet, BaseChain, Chain, ChainId, CtStates, EnforcedAt, Hook, IntervalSet,
    Match, Opaque, ParseNote, Policy, Rule, RuleRef, Ruleset, SourceFormat,
};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::net::IpAddr;

/// Parse an NSX Policy API export; `file` names it in errors and notes.
pub fn parse(text: &str, file: &str) -> Result<Ruleset, InputErrors> {
    if text.trim().is_empty() {
        return Err(InputError::whole(
            file,
            "the file is empty; expected an NSX Policy API JSON export",
        )
        .into());
    }
    let doc: Value =
        serde_json::from_str(text).map_err(|e| ringfence_diag::json_error(file, &e))?;
    let mut p = Parser {
        file,
        errors: Vec::new(),
        notes: Vec::new(),
        policies: Vec::new(),
        rules: Vec::new(),
        groups: HashMap::new(),
        services: HashMap::new(),
        group_cache: HashMap::new(),
        seen_any: false,
    };
    p.walk(&doc, "", None, "default");
    if !p.seen_any && p.errors.is_empty() {
        p.errors.push(
            InputError::whole(file, "no NSX objects found: expected objects with a `resource_type` such as SecurityPolicy, Rule, Group or Service")
                .with_help("export with GET /policy/api/v1/infra?filter=Type-Domain|SecurityPolicy|Rule|Group|Service"),
        );
    }
    let rs = p.build();
    if !p.errors.is_empty() {
        return Err(InputErrors(p.errors));
    }
    Ok(rs)
}

/// The DFW categories in evaluation order.
pub const CATEGORIES: [&str; 5] = [
    "Ethernet",
    "Emergency",
    "Infrastructure",
    "Environment",
    "Application",
];

struct PolicyObj<'a> {
    obj: &'a Map<String, Value>,
    ptr: String,
    path: String,
    order: usize,
}

struct RuleObj<'a> {
    obj: &'a Map<String, Value>,
    ptr: String,
    policy_path: Option<String>,
    order: usize,
}

/// A set of addresses, and whether membership is only partly known.
#[derive(Clone)]
struct Addrs {
    set: AddrSet,
    unknown: Option<String>,
}

/// A resolved `scope` ("Applied To"): the VMs' addresses and the scope
/// entries as written (group paths), in order.
#[derive(Clone)]
struct Scope {
    addrs: Addrs,
    groups: Vec<String>,
}

/// One service entry as a box.
#[derive(Clone)]
struct Svc {
    protocol: IntervalSet<u8>,
    sport: IntervalSet<u16>,
    dport: IntervalSet<u16>,
    opaque: Option<String>,
}

impl Svc {
    fn any() -> Self {
        Self {
            protocol: IntervalSet::full(),
            sport: IntervalSet::full(),
            dport: IntervalSet::full(),
            opaque: None,
        }
    }
}

/// The vNIC a chain of the model stands for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Vnic {
    /// Every vNIC runs the same rules (no rule has a scope).
    Both,
    /// The source VM's vNIC: the packet leaves the VM (`OUT`).
    Source,
    /// The destination VM's vNIC: the packet enters the VM (`IN`).
    Destination,
}

impl Vnic {
    fn suffix(self) -> &'static str {
        match self {
            Vnic::Both => "",
            Vnic::Source => " at source vNIC",
            Vnic::Destination => " at destination vNIC",
        }
    }
}

/// A rule's `direction`, seen from the VM whose vNIC runs it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    InOut,
    In,
    Out,
}

/// One NSX rule, read: its model rules and where the DFW runs it.
struct Prepared {
    /// One model rule per service entry, without scope or direction.
    rules: Vec<Rule>,
    direction: Direction,
    direction_ptr: String,
    /// The addresses of the VMs whose vNICs run the rule; `None` is ANY.
    scope: Option<Scope>,
    /// Whether the rule is in the Environment category's chain.
    environment: bool,
}

impl Prepared {
    /// The model rules as the chain of `side` holds them.
    fn at(&self, side: Vnic) -> Vec<Rule> {
        let runs = match (side, self.direction) {
            (Vnic::Both, _) | (_, Direction::InOut) => true,
            (Vnic::Source, d) => d == Direction::Out,
            (Vnic::Destination, d) => d == Direction::In,
        };
        if !runs {
            return Vec::new();
        }
        let Some(Scope { addrs: scope, .. }) = &self.scope else {
            return self.rules.clone();
        };
        let mut out = Vec::new();
        for r in &self.rules {
            let mut r = r.clone();
            let end = match side {
                Vnic::Source => &mut r.matches.src,
                _ => &mut r.matches.dst,
            };
            *end = end.intersect(&scope.set);
            if end.is_empty() {
                continue;
            }
            if let Some(u) = &scope.unknown {
                r.matches.opaque.push(Opaque {
                    text: format!("applied-to scope: {u}"),
                });
            }
            out.push(r);
        }
        out
    }
}

struct Parser<'a> {
    file: &'a str,
    errors: Vec<InputError>,
    notes: Vec<ParseNote>,
    policies: Vec<PolicyObj<'a>>,
    rules: Vec<RuleObj<'a>>,
    groups: HashMap<String, (&'a Map<String, Value>, String)>,
    services: HashMap<String, (&'a Map<String, Value>, String)>,
    group_cache: HashMap<String, Addrs>,
    seen_any: bool,
}

/// How an error names a JSON value's type: "a string", "a number".
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn ptr_join(base: &str, key: &str) -> String {
    format!("{base}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn str_of<'v>(o: &'v Map<String, Value>, k: &str) -> Option<&'v str> {
    o.get(k).and_then(Value::as_str)
}

fn seq(o: &Map<String, Value>) -> i64 {
    o.get("sequence_number")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn is_any_list(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => {
            a.is_empty()
                || a.iter()
                    .any(|x| x.as_str().is_some_and(|s| s.eq_ignore_ascii_case("ANY")))
        }
        Some(Value::String(s)) => s.eq_ignore_ascii_case("ANY"),
        _ => false,
    }
}

/// An address, CIDR or range as NSX writes them.
fn parse_ip_item(s: &str) -> Option<AddrSet> {
    let s = s.trim();
    if let Some((a, b)) = s.split_once('-') {
        return match (
            a.trim().parse::<IpAddr>().ok()?,
            b.trim().parse::<IpAddr>().ok()?,
        ) {
            (IpAddr::V4(a), IpAddr::V4(b)) => Some(AddrSet {
                v4: IntervalSet::range(u32::from(a), u32::from(b)),
                v6: IntervalSet::empty(),
            }),
            (IpAddr::V6(a), IpAddr::V6(b)) => Some(AddrSet {
                v4: IntervalSet::empty(),
                v6: IntervalSet::range(u128::from(a), u128::from(b)),
            }),
            _ => None,
        };
    }
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, Some(l.parse::<u8>().ok()?)),
        None => (s.parse::<IpAddr>().ok()?, None),
    };
    match addr {
        IpAddr::V4(a) => {
            let len = len.unwrap_or(32);
            (len <= 32).then(|| AddrSet::v4_prefix(a, len))
        }
        IpAddr::V6(a) => {
            let len = len.unwrap_or(128);
            (len <= 128).then(|| AddrSet::v6_prefix(a, len))
        }
    }
}

impl<'a> Parser<'a> {
    fn error(&mut self, ptr: &str, msg: impl Into<String>) -> InputError {
        let e = InputError::at_pointer(self.file, ptr, msg);
        self.errors.push(e.clone());
        e
    }

    fn note(&mut self, ptr: &str, msg: impl Into<String>) {
        self.notes.push(ParseNote {
            location: format!("{}#{}", self.file, ptr),
            message: msg.into(),
        });
    }

    fn walk(&mut self, v: &'a Value, ptr: &str, policy: Option<&str>, domain: &str) {
        match v {
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    self.walk(x, &format!("{ptr}/{i}"), policy, domain);
                }
            }
            Value::Object(o) => {
                if o.get("marked_for_delete").and_then(Value::as_bool) == Some(true) {
                    return;
                }
                let rt = str_of(o, "resource_type");
                match rt {
                    Some("ChildResourceReference") => {
                        // A reference to an existing object (usually a Domain)
                        // that only carries children.
                        let d = match str_of(o, "target_type") {
                            Some("Domain") => str_of(o, "id").unwrap_or(domain),
                            _ => domain,
                        };
                        if let Some(c) = o.get("children") {
                            self.walk(c, &ptr_join(ptr, "children"), policy, d);
                        }
                    }
                    Some(rt) if rt.starts_with("Child") => {
                        let inner = &rt[5..];
                        if let Some(x) = o.get(inner) {
                            self.walk(x, &ptr_join(ptr, inner), policy, domain);
                        }
                    }
                    Some("Infra") | None => {
                        for key in ["children", "results"] {
                            match o.get(key) {
                                Some(c @ (Value::Array(_) | Value::Object(_))) => {
                                    self.walk(c, &ptr_join(ptr, key), policy, domain);
                                }
                                // `null` is how some exports say "none".
                                Some(Value::Null) | None => {}
                                Some(other) => self.errors.push(
                                    InputError::at_pointer(
                                        self.file,
                                        ptr_join(ptr, key),
                                        format!(
                                            "`{key}` must be a list of NSX objects, found {}",
                                            json_kind(other)
                                        ),
                                    )
                                    .with_help("export with GET /policy/api/v1/infra?filter=Type-Domain|SecurityPolicy|Rule|Group|Service"),
                                ),
                            }
                        }
                    }
                    Some("Domain") => {
                        self.seen_any = true;
                        let d = str_of(o, "id").unwrap_or(domain);
                        if let Some(c) = o.get("children") {
                            self.walk(c, &ptr_join(ptr, "children"), policy, d);
                        }
                    }
                    Some("SecurityPolicy") => {
                        self.seen_any = true;
                        let path = match (str_of(o, "path"), str_of(o, "id")) {
                            (Some(p), _) => p.to_string(),
                            (None, Some(id)) => {
                                format!("/infra/domains/{domain}/security-policies/{id}")
                            }
                            (None, None) => {
                                self.error(ptr, "a SecurityPolicy needs a `path` or an `id`");
                                return;
                            }
                        };
                        let order = self.policies.len();
                        self.policies.push(PolicyObj {
                            obj: o,
                            ptr: ptr.to_string(),
                            path: path.clone(),
                            order,
                        });
                        for key in ["rules", "children"] {
                            if let Some(c) = o.get(key) {
                                self.walk(c, &ptr_join(ptr, key), Some(&path), domain);
                            }
                        }
                    }
                    Some("Rule") => {
                        self.seen_any = true;
                        let parent = str_of(o, "parent_path")
                            .map(str::to_string)
                            .or_else(|| policy.map(str::to_string))
                            .or_else(|| {
                                str_of(o, "path")
                                    .and_then(|p| p.rsplit_once("/rules/"))
                                    .map(|(a, _)| a.to_string())
                            });
                        let order = self.rules.len();
                        self.rules.push(RuleObj {
                            obj: o,
                            ptr: ptr.to_string(),
                            policy_path: parent,
                            order,
                        });
                    }
                    Some("Group") => {
                        self.seen_any = true;
                        let path = match (str_of(o, "path"), str_of(o, "id")) {
                            (Some(p), _) => p.to_string(),
                            (None, Some(id)) => format!("/infra/domains/{domain}/groups/{id}"),
                            (None, None) => {
                                self.error(ptr, "a Group needs a `path` or an `id`");
                                return;
                            }
                        };
                        self.groups.insert(path, (o, ptr.to_string()));
                    }
                    Some("Service") => {
                        self.seen_any = true;
                        let path = match (str_of(o, "path"), str_of(o, "id")) {
                            (Some(p), _) => p.to_string(),
                            (None, Some(id)) => format!("/infra/services/{id}"),
                            (None, None) => {
                                self.error(ptr, "a Service needs a `path` or an `id`");
                                return;
                            }
                        };
                        self.services.insert(path, (o, ptr.to_string()));
                    }
                    Some(other @ ("GatewayPolicy" | "RedirectionPolicy" | "IdsSecurityPolicy")) => {
                        self.seen_any = true;
                        self.note(ptr, format!("{other} skipped: only the distributed firewall (SecurityPolicy) is modelled"));
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
    }

    fn build(&mut self) -> Ruleset {
        // Policies per category, in order.
        let mut by_cat: Vec<Vec<usize>> = vec![Vec::new(); CATEGORIES.len()];
        let mut stateless = Vec::new();
        for (i, p) in self.policies.iter().enumerate() {
            let cat = str_of(p.obj, "category").unwrap_or("Application");
            match CATEGORIES.iter().position(|c| c.eq_ignore_ascii_case(cat)) {
                Some(ci) => by_cat[ci].push(i),
                None => {
                    let mut e = InputError::at_pointer(
                        self.file,
                        ptr_join(&p.ptr, "category"),
                        format!(
                            "unknown DFW category `{cat}`; expected one of {}",
                            CATEGORIES.join(", ")
                        ),
                    );
                    if let Some(c) = ringfence_diag::closest(cat, CATEGORIES) {
                        e = e.with_help(format!("did you mean `{c}`?"));
                    }
                    self.errors.push(e);
                }
            }
            if p.obj.get("stateful").and_then(Value::as_bool) == Some(false) {
                stateless.push(p.ptr.clone());
            }
        }
        for list in &mut by_cat {
            list.sort_by_key(|&i| (seq(self.policies[i].obj), self.policies[i].order));
        }
        // Rules per policy path.
        let mut by_policy: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, r) in self.rules.iter().enumerate() {
            match &r.policy_path {
                Some(p) if self.policies.iter().any(|x| &x.path == p) => {
                    by_policy.entry(p.clone()).or_default().push(i)
                }
                _ => {
                    let msg = match &r.policy_path {
                        Some(p) => format!("rule belongs to security policy {p}, which the export does not contain"),
                        None => "rule without a security policy: give it a `parent_path` or a `path` under /security-policies/".into(),
                    };
                    self.errors
                        .push(InputError::at_pointer(self.file, &r.ptr, msg));
                }
            }
        }
        for list in by_policy.values_mut() {
            list.sort_by_key(|&i| (seq(self.rules[i].obj), self.rules[i].order));
        }

        for p in stateless {
            self.note(
                &p,
                "stateless policy: its replies are modelled as if it were stateful",
            );
        }
        // Every rule in evaluation order, with `None` standing for the jump
        // into the Environment category.
        let mut items: Vec<Option<Prepared>> = Vec::new();
        for (ci, cat) in CATEGORIES.iter().enumerate() {
            if *cat == "Environment" {
                items.push(None);
            }
            for &pi in &by_cat[ci].clone() {
                let path = self.policies[pi].path.clone();
                let policy_ptr = self.policies[pi].ptr.clone();
                let policy_obj = self.policies[pi].obj;
                let Some(policy_scope) =
                    self.scope_addrs(policy_obj.get("scope"), &ptr_join(&policy_ptr, "scope"))
                else {
                    continue;
                };
                for ri in by_policy.get(&path).cloned().unwrap_or_default() {
                    if let Some(mut r) = self.rule(ri, &path, cat, &policy_scope) {
                        r.environment = *cat == "Environment";
                        items.push(Some(r));
                    }
                }
            }
        }
        // Where the DFW runs each rule: with no scoped rule, every vNIC runs
        // the same list, so one chain stands for both ends of a connection.
        // Otherwise the source VM's vNIC and the destination VM's vNIC get a
        // chain each, and a packet must pass both.
        let scoped = items.iter().flatten().any(|r| r.scope.is_some());
        let sides: &[Vnic] = if scoped {
            &[Vnic::Source, Vnic::Destination]
        } else {
            &[Vnic::Both]
        };
        if !scoped {
            // One chain for both vNICs: a rule for one direction runs at one
            // of them only, which that chain cannot say.
            for r in items.iter_mut().flatten() {
                if r.direction != Direction::InOut {
                    let d = if r.direction == Direction::In {
                        "IN"
                    } else {
                        "OUT"
                    };
                    let ptr = r.direction_ptr.clone();
                    self.note(&ptr, format!("direction {d}: whether the rule applies depends on which workload's vNIC enforces it; the rule is opaque"));
                    for m in &mut r.rules {
                        m.matches.opaque.push(Opaque {
                            text: format!("direction {d}"),
                        });
                    }
                }
            }
        }
        let mut chains = Vec::new();
        for &side in sides {
            let base_name = format!("nsx dfw{}", side.suffix());
            let env_name = format!("nsx Environment{}", side.suffix());
            let env_id = ChainId(chains.len() + 1);
            let mut base = Chain {
                name: base_name.clone(),
                base: Some(BaseChain {
                    hook: Hook::Forward,
                    priority: 0,
                    policy: Policy::Accept,
                    nat: false,
                }),
                rules: vec![Rule {
                    matches: Match {
                        ct_state: CtStates(CtStates::ESTABLISHED | CtStates::RELATED),
                        ..Match::any()
                    },
                    action: Action::Accept,
                    origin: RuleRef::Policy {
                        chain: base_name.clone(),
                    },
                    comment: Some(
                        "synthesized: the DFW is stateful, packets of allowed connections pass"
                            .into(),
                    ),
                }],
            };
            let mut env = Chain {
                name: env_name.clone(),
                base: None,
                rules: Vec::new(),
            };
            for item in &items {
                match item {
                    None => base.rules.push(Rule {
                        matches: Match::any(),
                        action: Action::Jump { target: env_id },
                        origin: RuleRef::Policy {
                            chain: env_name.clone(),
                        },
                        comment: Some("synthesized: the Environment category".into()),
                    }),
                    Some(r) => {
                        let out = r.at(side);
                        if r.environment {
                            env.rules.extend(out);
                        } else {
                            base.rules.extend(out);
                        }
                    }
                }
            }
            chains.push(base);
            chains.push(env);
        }
        Ruleset {
            format: SourceFormat::NsxJson,
            source: self.file.to_string(),
            chains,
            notes: std::mem::take(&mut self.notes),
            enforced_at: if scoped { enforced_at(&items) } else { None },
        }
    }

    /// One rule's model rules (one per service entry) with where it runs;
    /// `None` for a disabled rule or after an error.
    fn rule(
        &mut self,
        ri: usize,
        policy_path: &str,
        category: &str,
        policy_scope: &Option<Scope>,
    ) -> Option<Prepared> {
        let o = self.rules[ri].obj;
        let ptr = self.rules[ri].ptr.clone();
        if o.get("disabled").and_then(Value::as_bool) == Some(true) {
            return None;
        }
        let path = match (str_of(o, "path"), str_of(o, "id")) {
            (Some(p), _) => p.to_string(),
            (None, Some(id)) => format!("{policy_path}/rules/{id}"),
            (None, None) => {
                self.error(&ptr, "a Rule needs a `path` or an `id`");
                return None;
            }
        };
        let action = match str_of(o, "action") {
            Some("ALLOW") => Action::Accept,
            Some("DROP") => Action::Drop,
            Some("REJECT") | Some("REJECT_WITH_RESPONSE") => Action::Reject { with: None },
            Some("JUMP_TO_APPLICATION") if category == "Environment" => Action::Return,
            Some("JUMP_TO_APPLICATION") => {
                self.error(
                    &ptr_join(&ptr, "action"),
                    "JUMP_TO_APPLICATION is only valid in the Environment category",
                );
                return None;
            }
            Some(other) => {
                self.errors.push(
                    InputError::at_pointer(
                        self.file,
                        ptr_join(&ptr, "action"),
                        format!("unknown rule action `{other}`"),
                    )
                    .with_help("expected ALLOW, DROP, REJECT or JUMP_TO_APPLICATION"),
                );
                return None;
            }
            None => {
                self.error(
                    &ptr,
                    "a Rule needs an `action` (ALLOW, DROP, REJECT or JUMP_TO_APPLICATION)",
                );
                return None;
            }
        };
        let mut base = Match::any();
        let mut opaque: Vec<String> = Vec::new();
        for (key, excl, dst) in [
            ("source_groups", "sources_excluded", false),
            ("destination_groups", "destinations_excluded", true),
        ] {
            let a = self.endpoint(o.get(key), &ptr_join(&ptr, key))?;
            let mut set = a.set;
            if o.get(excl).and_then(Value::as_bool) == Some(true) {
                set = if a.unknown.is_some() {
                    AddrSet::any()
                } else {
                    set.complement()
                };
            }
            if let Some(u) = a.unknown {
                opaque.push(u);
            }
            if dst {
                base.dst = set;
            } else {
                base.src = set;
            }
        }
        match str_of(o, "ip_protocol") {
            Some("IPV4") => {
                base.src = base.src.intersect(&AddrSet::all_v4());
                base.dst = base.dst.intersect(&AddrSet::all_v4());
            }
            Some("IPV6") => {
                base.src = base.src.intersect(&AddrSet::all_v6());
                base.dst = base.dst.intersect(&AddrSet::all_v6());
            }
            _ => {}
        }
        let direction = match str_of(o, "direction") {
            None | Some("IN_OUT") => Direction::InOut,
            Some("IN") => Direction::In,
            Some("OUT") => Direction::Out,
            Some(d) => {
                self.error(
                    &ptr_join(&ptr, "direction"),
                    format!("unknown direction `{d}`; expected IN, OUT or IN_OUT"),
                );
                return None;
            }
        };
        // A policy's scope takes precedence over its rules' scopes.
        let scope = match policy_scope {
            Some(p) => Some(p.clone()),
            None => self.scope_addrs(o.get("scope"), &ptr_join(&ptr, "scope"))?,
        };
        if !is_any_list(o.get("profiles")) {
            self.note(
                &ptr_join(&ptr, "profiles"),
                "context profiles (layer 7) are not modelled; the rule is opaque",
            );
            opaque.push("context profiles".into());
        }
        base.opaque = opaque.into_iter().map(|text| Opaque { text }).collect();
        let svcs = self.rule_services(o, &ptr)?;
        let comment = str_of(o, "display_name").map(str::to_string);
        let rules = svcs
            .into_iter()
            .map(|s| {
                let mut m = base.clone();
                m.protocol = s.protocol;
                m.sport = s.sport;
                m.dport = s.dport;
                if let Some(t) = s.opaque {
                    m.opaque.push(Opaque { text: t });
                }
                Rule {
                    matches: m,
                    action: action.clone(),
                    origin: RuleRef::NsxPath { path: path.clone() },
                    comment: comment.clone(),
                }
            })
            .collect();
        Some(Prepared {
            rules,
            direction,
            direction_ptr: ptr_join(&ptr, "direction"),
            scope,
            environment: false,
        })
    }

    /// The addresses of the VMs a `scope` ("Applied To") covers; `Some(None)`
    /// for ANY, `None` after an error. A scope entry that is not a group, or
    /// a group the export does not hold, covers VMs the export does not name.
    fn scope_addrs(&mut self, v: Option<&'a Value>, ptr: &str) -> Option<Option<Scope>> {
        if is_any_list(v) {
            return Some(None);
        }
        let Some(Value::Array(items)) = v else {
            self.error(ptr, "expected an array of group paths or \"ANY\"");
            return None;
        };
        let mut out = Addrs {
            set: AddrSet::empty(),
            unknown: None,
        };
        let mut groups = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let iptr = format!("{ptr}/{i}");
            let Some(s) = it.as_str() else {
                self.error(&iptr, "expected a group path");
                return None;
            };
            let a = if s.contains("/groups/") && self.groups.contains_key(s) {
                self.group(s, &iptr, &mut Vec::new())?
            } else {
                let why = if s.contains("/groups/") {
                    format!("group {s} is not in the export")
                } else {
                    format!("{s} is not a group")
                };
                self.note(
                    &iptr,
                    format!("scope {why}: which VMs run the rule is unknown; the rule is opaque"),
                );
                Addrs {
                    set: AddrSet::any(),
                    unknown: Some(why),
                }
            };
            merge(&mut out, a);
            groups.push(s.to_string());
        }
        Some(Some(Scope { addrs: out, groups }))
    }

    /// Union of groups / addresses; `None` after an error.
    fn endpoint(&mut self, v: Option<&'a Value>, ptr: &str) -> Option<Addrs> {
        if is_any_list(v) {
            return Some(Addrs {
                set: AddrSet::any(),
                unknown: None,
            });
        }
        let Some(Value::Array(items)) = v else {
            self.error(
                ptr,
                "expected an array of group paths, addresses or \"ANY\"",
            );
            return None;
        };
        let mut out = Addrs {
            set: AddrSet::empty(),
            unknown: None,
        };
        for (i, it) in items.iter().enumerate() {
            let iptr = format!("{ptr}/{i}");
            let Some(s) = it.as_str() else {
                self.error(&iptr, "expected a group path or an address");
                return None;
            };
            let a = if s.starts_with('/') {
                self.group(s, &iptr, &mut Vec::new())?
            } else {
                match parse_ip_item(s) {
                    Some(set) => Addrs { set, unknown: None },
                    None => {
                        self.error(
                            &iptr,
                            format!(
                                "`{s}` is neither a group path nor an IP address, CIDR or range"
                            ),
                        );
                        return None;
                    }
                }
            };
            merge(&mut out, a);
        }
        Some(out)
    }

    fn group(&mut self, path: &str, ptr: &str, stack: &mut Vec<String>) -> Option<Addrs> {
        if let Some(a) = self.group_cache.get(path) {
            return Some(a.clone());
        }
        if stack.iter().any(|p| p == path) {
            stack.push(path.to_string());
            let e = InputError::at_pointer(
                self.file,
                ptr,
                format!("group membership cycle: {}", stack.join(" -> ")),
            )
            .with_help("remove one of the nested group references");
            self.errors.push(e);
            return None;
        }
        let Some(&(g, ref gptr)) = self.groups.get(path) else {
            let names: Vec<&str> = self.groups.keys().map(String::as_str).collect();
            let mut e = InputError::at_pointer(
                self.file,
                ptr,
                format!("group {path} is not in the export"),
            );
            if let Some(c) = ringfence_diag::closest(path, names) {
                e = e.with_help(format!("did you mean {c}?"));
            } else {
                e = e.with_help(
                    "export groups too: filter=Type-Domain|SecurityPolicy|Rule|Group|Service",
                );
            }
            self.errors.push(e);
            return None;
        };
        let gptr = gptr.clone();
        stack.push(path.to_string());
        let r = self.expressions(
            g.get("expression"),
            &ptr_join(&gptr, "expression"),
            path,
            stack,
        );
        stack.pop();
        let r = r?;
        self.group_cache.insert(path.to_string(), r.clone());
        Some(r)
    }

    fn expressions(
        &mut self,
        v: Option<&'a Value>,
        ptr: &str,
        group: &str,
        stack: &mut Vec<String>,
    ) -> Option<Addrs> {
        let mut out = Addrs {
            set: AddrSet::empty(),
            unknown: None,
        };
        let items = match v {
            None | Some(Value::Null) => return Some(out),
            Some(Value::Array(a)) => a,
            Some(_) => {
                self.error(ptr, "`expression` must be an array");
                return None;
            }
        };
        let dynamic = |why: String| Addrs {
            set: AddrSet::any(),
            unknown: Some(format!("group {group}: {why}")),
        };
        for (i, e) in items.iter().enumerate() {
            let eptr = format!("{ptr}/{i}");
            let Some(eo) = e.as_object() else {
                self.error(
                    &eptr,
                    "an expression must be an object with a `resource_type`",
                );
                return None;
            };
            let part = match str_of(eo, "resource_type") {
                Some("IPAddressExpression") => {
                    let Some(Value::Array(ips)) = eo.get("ip_addresses") else {
                        self.error(&eptr, "IPAddressExpression needs an `ip_addresses` array");
                        return None;
                    };
                    let mut set = AddrSet::empty();
                    for (j, ip) in ips.iter().enumerate() {
                        match ip.as_str().and_then(parse_ip_item) {
                            Some(s) => set = set.union(&s),
                            None => {
                                self.error(
                                    &format!("{eptr}/ip_addresses/{j}"),
                                    format!("expected an IP address, CIDR or range, found {ip}"),
                                );
                                return None;
                            }
                        }
                    }
                    Addrs { set, unknown: None }
                }
                Some("PathExpression") => {
                    let Some(Value::Array(paths)) = eo.get("paths") else {
                        self.error(&eptr, "PathExpression needs a `paths` array");
                        return None;
                    };
                    let mut acc = Addrs {
                        set: AddrSet::empty(),
                        unknown: None,
                    };
                    for (j, p) in paths.iter().enumerate() {
                        let pptr = format!("{eptr}/paths/{j}");
                        let Some(p) = p.as_str() else {
                            self.error(&pptr, "expected a path string");
                            return None;
                        };
                        let a = if p.contains("/groups/") {
                            self.group(p, &pptr, stack)?
                        } else {
                            dynamic(format!("member {p} is not a group"))
                        };
                        merge(&mut acc, a);
                    }
                    acc
                }
                Some("ConjunctionOperator") => {
                    match str_of(eo, "conjunction_operator") {
                        Some("OR") => {}
                        Some("AND") => merge(&mut out, dynamic("an AND conjunction".into())),
                        _ => {
                            self.error(&eptr, "`conjunction_operator` must be OR or AND");
                            return None;
                        }
                    }
                    continue;
                }
                Some("NestedExpression") => self.expressions(
                    eo.get("expressions"),
                    &ptr_join(&eptr, "expressions"),
                    group,
                    stack,
                )?,
                Some(other) => dynamic(format!("{other} membership is dynamic")),
                None => {
                    self.error(&eptr, "an expression needs a `resource_type`");
                    return None;
                }
            };
            merge(&mut out, part);
        }
        Some(out)
    }

    /// The union of a rule's services and service entries, as boxes.
    fn rule_services(&mut self, o: &'a Map<String, Value>, ptr: &str) -> Option<Vec<Svc>> {
        let services = o.get("services");
        let entries = o
            .get("service_entries")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty());
        if is_any_list(services) && entries.is_none() {
            return Some(vec![Svc::any()]);
        }
        let mut out = Vec::new();
        if !is_any_list(services) {
            let Some(Value::Array(list)) = services else {
                self.error(
                    &ptr_join(ptr, "services"),
                    "expected an array of service paths or \"ANY\"",
                );
                return None;
            };
            for (i, s) in list.iter().enumerate() {
                let sptr = format!("{}/{i}", ptr_join(ptr, "services"));
                let Some(s) = s.as_str() else {
                    self.error(&sptr, "expected a service path");
                    return None;
                };
                out.extend(self.service(s, &sptr, &mut Vec::new())?);
            }
        }
        if let Some(es) = entries {
            for (i, e) in es.iter().enumerate() {
                out.extend(self.entry(
                    e,
                    &format!("{}/{i}", ptr_join(ptr, "service_entries")),
                    &mut Vec::new(),
                )?);
            }
        }
        Some(out)
    }

    fn service(&mut self, path: &str, ptr: &str, stack: &mut Vec<String>) -> Option<Vec<Svc>> {
        if stack.iter().any(|p| p == path) {
            self.error(ptr, format!("service nesting cycle through {path}"));
            return None;
        }
        let Some(&(s, ref sptr)) = self.services.get(path) else {
            let names: Vec<&str> = self.services.keys().map(String::as_str).collect();
            let mut e = InputError::at_pointer(
                self.file,
                ptr,
                format!("service {path} is not in the export"),
            );
            if let Some(c) = ringfence_diag::closest(path, names) {
                e = e.with_help(format!("did you mean {c}?"));
            } else {
                e = e.with_help(
                    "export services too: filter=Type-Domain|SecurityPolicy|Rule|Group|Service",
                );
            }
            self.errors.push(e);
            return None;
        };
        let sptr = sptr.clone();
        let Some(Value::Array(es)) = s.get("service_entries") else {
            self.error(&sptr, "a Service needs a `service_entries` array");
            return None;
        };
        stack.push(path.to_string());
        let mut out = Vec::new();
        for (i, e) in es.iter().enumerate() {
            let r = self.entry(e, &format!("{sptr}/service_entries/{i}"), stack);
            match r {
                Some(v) => out.extend(v),
                None => {
                    stack.pop();
                    return None;
                }
            }
        }
        stack.pop();
        Some(out)
    }

    fn ports(&mut self, v: Option<&Value>, ptr: &str) -> Option<IntervalSet<u16>> {
        let items = match v {
            None | Some(Value::Null) => return Some(IntervalSet::full()),
            Some(Value::Array(a)) if a.is_empty() => return Some(IntervalSet::full()),
            Some(Value::Array(a)) => a,
            Some(_) => {
                self.error(
                    ptr,
                    "expected an array of ports such as \"443\" or \"30000-32767\"",
                );
                return None;
            }
        };
        let mut ranges = Vec::new();
        for (i, p) in items.iter().enumerate() {
            let text = match p {
                Value::String(s) => s.trim().to_string(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            let parsed = match text.split_once('-') {
                Some((a, b)) => a
                    .trim()
                    .parse::<u16>()
                    .ok()
                    .zip(b.trim().parse::<u16>().ok()),
                None => text.parse::<u16>().ok().map(|x| (x, x)),
            };
            match parsed {
                Some((a, b)) if a <= b => ranges.push((a, b)),
                _ => {
                    self.error(
                        &format!("{ptr}/{i}"),
                        format!("expected a port 0-65535 or a range \"a-b\", found {p}"),
                    );
                    return None;
                }
            }
        }
        Some(IntervalSet::from_ranges(ranges))
    }

    fn entry(&mut self, e: &'a Value, ptr: &str, stack: &mut Vec<String>) -> Option<Vec<Svc>> {
        let Some(o) = e.as_object() else {
            self.error(
                ptr,
                "a service entry must be an object with a `resource_type`",
            );
            return None;
        };
        match str_of(o, "resource_type") {
            Some("L4PortSetServiceEntry") => {
                let protocol = match str_of(o, "l4_protocol") {
                    Some("TCP") => proto::TCP,
                    Some("UDP") => proto::UDP,
                    other => {
                        self.error(
                            &ptr_join(ptr, "l4_protocol"),
                            format!(
                                "`l4_protocol` must be TCP or UDP, found {}",
                                other.unwrap_or("nothing")
                            ),
                        );
                        return None;
                    }
                };
                let sport = self.ports(o.get("source_ports"), &ptr_join(ptr, "source_ports"))?;
                let dport = self.ports(
                    o.get("destination_ports"),
                    &ptr_join(ptr, "destination_ports"),
                )?;
                Some(vec![Svc {
                    protocol: IntervalSet::single(protocol),
                    sport,
                    dport,
                    opaque: None,
                }])
            }
            Some("IPProtocolServiceEntry") => {
                match o.get("protocol_number").and_then(Value::as_u64) {
                    Some(n) if n <= 255 => Some(vec![Svc {
                        protocol: IntervalSet::single(n as u8),
                        ..Svc::any()
                    }]),
                    _ => {
                        self.error(
                            &ptr_join(ptr, "protocol_number"),
                            "`protocol_number` must be 0-255",
                        );
                        None
                    }
                }
            }
            Some("ICMPTypeServiceEntry") => {
                let p = match str_of(o, "protocol") {
                    Some("ICMPv4") => proto::ICMP,
                    Some("ICMPv6") => proto::ICMPV6,
                    _ => {
                        self.error(
                            &ptr_join(ptr, "protocol"),
                            "`protocol` must be ICMPv4 or ICMPv6",
                        );
                        return None;
                    }
                };
                let opaque = o
                    .get("icmp_type")
                    .filter(|t| !t.is_null())
                    .map(|t| format!("icmp type {t}"));
                Some(vec![Svc {
                    protocol: IntervalSet::single(p),
                    opaque,
                    ..Svc::any()
                }])
            }
            Some("NestedServiceServiceEntry") => match str_of(o, "nested_service_path") {
                Some(p) => self.service(p, &ptr_join(ptr, "nested_service_path"), stack),
                None => {
                    self.error(ptr, "NestedServiceServiceEntry needs `nested_service_path`");
                    None
                }
            },
            Some(other) => {
                self.note(
                    ptr,
                    format!("{other} is not modelled; the rule is opaque for it"),
                );
                Some(vec![Svc {
                    opaque: Some(other.to_string()),
                    ..Svc::any()
                }])
            }
            None => {
                self.error(ptr, "a service entry needs a `resource_type`");
                None
            }
        }
    }
}

/// Where the rules run, when every rule is applied to groups the export
/// resolves: the union of their addresses. A rule at scope ANY runs at every
/// vNIC, and a scope whose members are unknown may hold any VM, so either
/// gives `None` (enforced everywhere).
fn enforced_at(items: &[Option<Prepared>]) -> Option<EnforcedAt> {
    let mut addrs = AddrSet::empty();
    let mut names: Vec<&str> = Vec::new();
    for r in items.iter().flatten() {
        let scope = r.scope.as_ref()?;
        if scope.addrs.unknown.is_some() {
            return None;
        }
        addrs = addrs.union(&scope.addrs.set);
        for g in &scope.groups {
            let name = g.rsplit('/').next().unwrap_or(g);
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    let what = match names.as_slice() {
        [one] => format!("vNICs in group {one}"),
        many => format!("vNICs in groups {}", many.join(", ")),
    };
    Some(EnforcedAt { what, addrs })
}

fn merge(acc: &mut Addrs, a: Addrs) {
    acc.set = acc.set.union(&a.set);
    if acc.unknown.is_none() {
        acc.unknown = a.unknown;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_items_accept_addresses_cidrs_and_ranges() {
        let a = parse_ip_item("198.18.0.0/30").unwrap();
        assert_eq!(a.v4.ranges().len(), 1);
        assert!(a.v6.is_empty());
        assert!(parse_ip_item("198.18.0.1-198.18.0.9").is_some());
        assert!(parse_ip_item("2001:db8::/64").unwrap().v4.is_empty());
        assert!(parse_ip_item("198.18.0.1-2001:db8::1").is_none());
        assert!(parse_ip_item("198.18.0.0/33").is_none());
        assert!(parse_ip_item("web-servers").is_none());
    }

    /// A policy with two groups and rules whose `scope` is `rule_scopes[i]`
    /// (the policy itself at scope ANY), parsed.
    fn scoped(rule_scopes: &[serde_json::Value]) -> Ruleset {
        use serde_json::json;
        let rules: Vec<_> = rule_scopes
            .iter()
            .enumerate()
            .map(|(i, sc)| {
                json!({"resource_type": "Rule", "id": format!("r{i}"), "sequence_number": i,
                    "source_groups": ["ANY"], "destination_groups": ["ANY"], "services": ["ANY"],
                    "action": "DROP", "scope": sc})
            })
            .collect();
        let doc = json!([
            {"resource_type": "Group", "id": "site", "expression": [
                {"resource_type": "IPAddressExpression", "ip_addresses": ["198.18.1.0/24"]}]},
            {"resource_type": "Group", "id": "jump", "expression": [
                {"resource_type": "IPAddressExpression", "ip_addresses": ["198.18.9.9"]}]},
            {"resource_type": "Group", "id": "dyn", "expression": [
                {"resource_type": "Condition", "key": "Tag", "member_type": "VirtualMachine",
                 "operator": "EQUALS", "value": "tkg"}]},
            {"resource_type": "SecurityPolicy", "id": "p", "scope": ["ANY"],
             "path": "/infra/domains/default/security-policies/p", "rules": rules},
        ]);
        parse(&doc.to_string(), "t.json").expect("parses")
    }

    #[test]
    fn enforced_at_is_the_union_of_resolved_scope_groups() {
        let g = "/infra/domains/default/groups/";
        let rs = scoped(&[
            serde_json::json!([format!("{g}site")]),
            serde_json::json!([format!("{g}jump"), format!("{g}site")]),
        ]);
        let e = rs.enforced_at.expect("scoped to resolved groups");
        assert_eq!(e.what, "vNICs in groups site, jump");
        let mut want = parse_ip_item("198.18.1.0/24").unwrap();
        want = want.union(&parse_ip_item("198.18.9.9").unwrap());
        assert_eq!(e.addrs, want);
    }

    #[test]
    fn a_rule_at_scope_any_or_an_unresolvable_scope_is_enforced_everywhere() {
        let g = "/infra/domains/default/groups/";
        let site = serde_json::json!([format!("{g}site")]);
        let any = scoped(&[site.clone(), serde_json::json!(["ANY"])]);
        assert!(any.enforced_at.is_none());
        let missing = scoped(&[site.clone(), serde_json::json!([format!("{g}tkg-vms")])]);
        assert!(missing.enforced_at.is_none());
        let dynamic = scoped(&[site.clone(), serde_json::json!([format!("{g}dyn")])]);
        assert!(dynamic.enforced_at.is_none());
        let unscoped = scoped(&[serde_json::json!(["ANY"])]);
        assert!(unscoped.enforced_at.is_none());
    }
}
