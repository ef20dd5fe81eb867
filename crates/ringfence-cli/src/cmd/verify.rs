//! `ringfence verify`: does a ruleset open every required flow (with replies),
//! and nothing more? Exit 0 clean, 1 findings, 2 bad input.

use crate::cmd::trace::{FormatArg, HookArg};
use crate::exit::{self, CliError};
use clap::{Args as ClapArgs, ValueEnum};
use quote::RuleQuoter;
use ringfence_analysis::space::format_endpoint;
use ringfence_analysis::verify::{
    verify_host, Checks, DeadReason, FamilyScope, FamilyStatus, Status, VerifyReport,
};
use ringfence_model::Hook;
use std::fmt::Write as _;
use std::path::PathBuf;

pub(crate) mod quote;

/// Output formats of `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyFormat {
    /// Human-readable.
    Text,
    /// The JSON report of docs/verify-json.md.
    Json,
    /// JUnit XML: one test case per flow, one for the excess, one per
    /// address family (failed when not covered, skipped when not analysed).
    Junit,
    /// SARIF 2.1.0 for code-scanning dashboards.
    Sarif,
}

/// Arguments of `ringfence verify`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    pub site: crate::cmd::flows::SiteArgs,
    /// The ruleset: iptables-save, nft text or JSON, or NSX export. Repeat
    /// for one ruleset in several files: ip6tables-save beside
    /// iptables-save (a family with no file is reported as not covered),
    /// `ipset save` output, nft files read in order.
    #[arg(long, value_name = "FILE", required = true)]
    pub ruleset: Vec<PathBuf>,
    /// Format of the ruleset file.
    #[arg(long, value_enum, default_value = "auto")]
    pub ruleset_format: FormatArg,
    /// The path the site's flows take, named by its filter hook: forward
    /// (prerouting, forward, postrouting), input (prerouting, input) or
    /// output (output, postrouting). Every table's base chains on the path
    /// are evaluated in kernel order.
    #[arg(long, value_enum, default_value = "forward")]
    pub hook: HookArg,
    /// The address families the ruleset must be proven for: 4, 6, 4,6, or
    /// auto (the families the site has addresses in). A family in scope
    /// that no --ruleset file covers (an IPv6 site part with only an
    /// iptables-save file) is a finding (exit 1): give the ip6tables-save
    /// (or iptables-save) file, or narrow --families. A family out of scope
    /// is not analysed, and the report says so.
    #[arg(long, value_name = "4|6|4,6|auto", default_value = "auto", value_parser = parse_families)]
    pub families: FamiliesArg,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: VerifyFormat,
    /// The packet mark packets arrive with: `zero` (packets enter the
    /// ruleset with mark 0, and marks set by the ruleset are followed
    /// exactly) or `any` (tc or eBPF may mark packets first: every mark test
    /// may or may not match, and results it touches are unknown).
    #[arg(long, value_enum, default_value = "zero")]
    pub initial_mark: InitialMark,
    /// The host's own addresses (comma-separated, repeatable; loopback is
    /// always included, on `lo`). After prerouting, packets to them (after
    /// any DNAT or REDIRECT) go to input and the others through forward
    /// and postrouting, whatever --hook says for the forward and input
    /// paths; `-m addrtype --dst-type LOCAL` and nft `fib daddr type local`
    /// read them. ADDR%IFACE (e.g. 198.18.0.5%eth0) also says which
    /// interface holds the address, for tests limited to one interface
    /// (`--limit-iface-in/out`, nft `fib daddr . iif type local`); without
    /// it such a test on the address may or may not match. Without
    /// --local, --hook names the path, and a ruleset that translates
    /// destinations is not OK (a translated packet may be routed to the
    /// host instead). The site's `host_zone:` adds its addresses to these,
    /// on the interfaces its `host_interfaces:` names.
    #[arg(long, value_name = "ADDR[%IFACE][,...]", value_delimiter = ',')]
    pub local: Vec<HostAddr>,
    /// Also judge rules dead in context: a rule that no packet reaching it
    /// from the base chains (through the jumps to its chain, after the
    /// earlier tables' drops and rewrites) matches, and a user chain that
    /// no base chain reaches, with the rules responsible. Without it a rule
    /// is shadowed only when earlier rules of its own chain cover it. Off
    /// by default: on the adversarial 100k-rule shapes verify uses
    /// 1.0-3.8 times as much CPU with it as without, and up to about 535 MB
    /// (BENCHMARKS.md).
    #[arg(long)]
    pub dead_in_context: bool,
    /// Write the report here (atomically) instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `--initial-mark`: the packet mark packets arrive with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InitialMark {
    /// Mark 0 (nothing marks packets before the ruleset).
    Zero,
    /// Any mark (tc or eBPF may mark packets first).
    Any,
}

impl InitialMark {
    /// The ruleset as analyses should read it under this assumption.
    pub fn apply(self, rs: ringfence_model::Ruleset) -> ringfence_model::Ruleset {
        match self {
            InitialMark::Zero => rs,
            InitialMark::Any => rs.with_initial_mark_any(),
        }
    }
}

/// `--families`: the families asked for (`[IPv4, IPv6]`), or `None` for auto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamiliesArg(pub Option<[bool; 2]>);

/// Read `--families`: `auto`, `4`, `6`, `4,6` (or `6,4`).
fn parse_families(text: &str) -> Result<FamiliesArg, String> {
    if text == "auto" {
        return Ok(FamiliesArg(None));
    }
    let mut fams = [false, false];
    for part in text.split(',') {
        match part.trim() {
            "4" => fams[0] = true,
            "6" => fams[1] = true,
            other => {
                return Err(format!(
                    "`{other}` is not an address family: expected 4, 6, 4,6 or auto"
                ))
            }
        }
    }
    Ok(FamiliesArg(Some(fams)))
}

/// Which families a run analyses, and why: `asked` from `--families`,
/// `site_has` the families of the site's addresses, `uncovered` those
/// in scope that no ruleset file covers.
fn family_scopes(
    asked: FamiliesArg,
    site_has: [bool; 2],
    uncovered: [bool; 2],
) -> Vec<FamilyScope> {
    let scope = scope_of(asked, site_has);
    let names = ["IPv4", "IPv6"];
    let tools = ["iptables-save", "ip6tables-save"];
    (0..2)
        .map(|i| {
            let name = names[i];
            if !scope[i] {
                let why = match asked.0 {
                    None => format!("the site has no {name} addresses; --families 4,6 to include it"),
                    Some(_) => format!(
                        "--families leaves it out{}; --families 4,6 to include it",
                        if site_has[i] {
                            format!(" although the site has {name} addresses")
                        } else {
                            String::new()
                        }
                    ),
                };
                FamilyScope::new(name, FamilyStatus::NotAnalysed, why)
            } else if uncovered[i] {
                let narrow = if scope[1 - i] {
                    format!(", or leave {name} out with --families {}", 4 + 2 * (1 - i))
                } else {
                    String::new()
                };
                FamilyScope::new(
                    name,
                    FamilyStatus::NotCovered,
                    format!(
                        "no ruleset given covers {name}: give the {} output as another --ruleset{narrow}",
                        tools[i]
                    ),
                )
            } else {
                let why = match asked.0 {
                    None => format!("the site has {name} addresses"),
                    Some(_) => "--families includes it".to_string(),
                };
                FamilyScope::new(name, FamilyStatus::Analysed, why)
            }
        })
        .collect()
}

/// The families in scope: those asked for, or with auto those the site has
/// addresses in (both when it has none).
fn scope_of(asked: FamiliesArg, site_has: [bool; 2]) -> [bool; 2] {
    match asked.0 {
        Some(f) => f,
        None if site_has == [false, false] => [true, true],
        None => site_has,
    }
}

/// A status as the text and JUnit outputs name it.
pub(crate) fn status_str(s: Status) -> &'static str {
    match s {
        Status::Allowed => "allowed",
        Status::Partial => "partial",
        Status::Blocked => "blocked",
        Status::Unknown => "unknown",
        Status::Redirected => "redirected",
    }
}

/// One item of `--local`: an address of the host and, when given as
/// `ADDR%IFACE`, the interface it is assigned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddr {
    /// The address.
    pub addr: std::net::IpAddr,
    /// The interface it is on (`None`: some interface of the host).
    pub iface: Option<String>,
}

impl std::str::FromStr for HostAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (a, iface) = match s.split_once('%') {
            Some((a, i)) => (a, Some(i)),
            None => (s, None),
        };
        let addr = a.parse().map_err(|_| {
            format!("`{a}` is not an IP address; expected ADDR or ADDR%IFACE, e.g. 198.18.0.5 or 198.18.0.5%eth0")
        })?;
        if let Some(problem) = iface.and_then(ringfence_site::interface_name_problem) {
            return Err(format!("{problem} (as in {a}%eth0)"));
        }
        Ok(HostAddr {
            addr,
            iface: iface.map(str::to_string),
        })
    }
}

/// The host's addresses given with `--local` (with their interfaces where
/// given) and by the site's `host_zone:` and `host_interfaces:` (`None`:
/// neither says).
pub(crate) fn local_addrs(
    addrs: &[HostAddr],
    site: Option<&ringfence_site::Site>,
) -> Option<ringfence_model::LocalAddrs> {
    let from_site = site.map(|s| s.host_addresses()).unwrap_or_default();
    if addrs.is_empty() && from_site.is_empty() {
        return None;
    }
    Some(ringfence_model::LocalAddrs::on_ifaces(
        addrs
            .iter()
            .map(|a| (a.addr, a.iface.clone()))
            .chain(from_site),
    ))
}

/// Run `ringfence verify`.
pub fn run(args: Args) -> Result<u8, CliError> {
    let site = args.site.load()?;
    let nets = || site.zones.values().flatten();
    let site_has = [
        nets().any(|n| n.addr().is_ipv4()),
        nets().any(|n| n.addr().is_ipv6()),
    ];
    let scope = scope_of(args.families, site_has);
    let need = ringfence_parse::Families {
        v4: scope[0],
        v6: scope[1],
    };
    let rs = args.initial_mark.apply(crate::rulesets::load_for(
        &args.ruleset,
        args.ruleset_format,
        need,
    )?);
    let uncovered = ringfence_parse::uncovered_families(&rs);
    let families = family_scopes(args.families, site_has, [uncovered.v4, uncovered.v6]);
    let hook: Hook = args.hook.into();
    let locals = local_addrs(&args.local, Some(&site));
    let checks = Checks {
        dead_in_context: args.dead_in_context,
    };
    let report = verify_host(
        &rs,
        &site.resolve(),
        hook,
        families,
        locals.as_ref(),
        checks,
    );
    let out = match args.format {
        VerifyFormat::Json => {
            let mut s = serde_json::to_string_pretty(&report).expect("report serializes");
            s.push('\n');
            s
        }
        VerifyFormat::Text => {
            let q = RuleQuoter::new(&rs, &args.ruleset, report_refs(&report));
            text(&report, &q)
        }
        VerifyFormat::Junit => junit(&report)?,
        VerifyFormat::Sarif => crate::sarif::verify_sarif(&report, &rs),
    };
    // The process ends right after the report: freeing a 100k-rule model rule
    // by rule would only cost time.
    std::mem::forget(rs);
    exit::emit(args.out.as_deref(), out.as_bytes())?;
    Ok(if report.summary.ok {
        exit::SUCCESS
    } else {
        exit::FINDINGS
    })
}

/// Write `lead` and the quoted rules: one on the same line, several one per
/// line below it. Nothing for no rules (callers say what decided instead).
pub(crate) fn write_rules(
    s: &mut String,
    indent: &str,
    lead: &str,
    rules: &[String],
    q: &RuleQuoter,
) {
    match rules {
        [] => {}
        [one] => {
            let _ = writeln!(s, "{indent}{lead} {}", q.quote(one));
        }
        many => {
            let _ = writeln!(s, "{indent}{lead}:");
            for r in many {
                let _ = writeln!(s, "{indent}  {}", q.quote(r));
            }
        }
    }
}

/// Every rule reference a report names, for [`RuleQuoter::new`].
fn report_refs(r: &VerifyReport) -> impl Iterator<Item = &str> {
    let flows = r
        .flows
        .iter()
        .flat_map(|f| f.rules.iter().chain(&f.reply_rules));
    let excess = r
        .excess
        .iter()
        .flat_map(|e| e.rules.iter())
        .chain(r.excess_summary.iter().flat_map(|g| g.rules.iter()));
    let findings = r
        .shadowed
        .iter()
        .chain(&r.redundant)
        .flat_map(|x| std::iter::once(&x.rule).chain(&x.by));
    flows.chain(excess).chain(findings).map(String::as_str)
}

/// At most this many excess regions are listed in the text output.
const TEXT_REGIONS: usize = 50;

/// At most this many groups of the excess summary are shown in the text output.
const TEXT_GROUPS: usize = 30;

fn text(r: &VerifyReport, q: &RuleQuoter) -> String {
    const IN: &str = "           ";
    let mut s = String::new();
    let _ = writeln!(
        s,
        "verify {} against site {} ({}), hook {}",
        r.ruleset, r.site, r.catalog, r.hook
    );
    for f in &r.families {
        match f.status {
            FamilyStatus::Analysed => {}
            FamilyStatus::NotAnalysed => {
                let _ = writeln!(s, "{}: not analysed ({})", f.family, f.reason);
            }
            FamilyStatus::NotCovered => {
                let _ = writeln!(s, "{}: not covered: {}", f.family, f.reason);
            }
        }
    }
    let _ = writeln!(s, "\nflows:");
    // What to say when a status other than allowed names no rule.
    let nameless = |st: Status| {
        if st == Status::Unknown {
            "no deciding rule can be named: the analysis went over its size budget".to_string()
        } else {
            format!(
                "decided by no rule: no base chain on the {} path filters these packets",
                r.hook
            )
        }
    };
    for f in &r.flows {
        let _ = writeln!(
            s,
            "  {:<8} replies {:<8} {}",
            status_str(f.status),
            status_str(f.replies),
            f.id
        );
        if !f.redirected_to.is_empty() {
            let _ = writeln!(s, "{IN}redirected to {}", f.redirected_to.join(", "));
        }
        if let Some(e) = &f.blocked_example {
            let _ = writeln!(
                s,
                "{IN}e.g. {} {} -> {} not accepted",
                e.proto,
                format_endpoint(&e.src, e.sport),
                format_endpoint(&e.dst, e.dport)
            );
        }
        if f.status != Status::Allowed {
            if f.rules.is_empty() {
                let _ = writeln!(s, "{IN}{}", nameless(f.status));
            }
            write_rules(&mut s, IN, "decided by", &f.rules, q);
        }
        if f.replies != Status::Allowed {
            if f.reply_rules.is_empty() {
                let _ = writeln!(s, "{IN}replies: {}", nameless(f.replies));
            }
            write_rules(&mut s, IN, "replies decided by", &f.reply_rules, q);
        }
    }
    let _ = writeln!(
        s,
        "\nexcess ({}{}{}):",
        r.summary.excess,
        if r.summary.possible_excess > 0 {
            format!(", {} possible", r.summary.possible_excess)
        } else {
            String::new()
        },
        if r.summary.excess_complete {
            ""
        } else {
            ", incomplete: the analysis hit its size budget, more may be accepted"
        }
    );
    if !r.excess_summary.is_empty() {
        let _ = writeln!(s, "  by zones and service:");
        for g in r.excess_summary.iter().take(TEXT_GROUPS) {
            let _ = writeln!(
                s,
                "    {} -> {}: {}: {} region{}{}",
                g.from,
                g.to,
                g.service,
                g.regions,
                if g.regions == 1 { "" } else { "s" },
                match (g.certain, g.possible) {
                    (_, 0) => String::new(),
                    (0, _) => ", all possible".to_string(),
                    (_, p) => format!(", {p} possible"),
                }
            );
            let lead = if g.possible == 0 {
                "accepted by"
            } else {
                "accepted or made possible by"
            };
            write_rules(&mut s, "      ", lead, &g.rules, q);
            if g.rule_count > g.rules.len() {
                let _ = writeln!(
                    s,
                    "      and {} more rule(s): see --format json",
                    g.rule_count - g.rules.len()
                );
            }
        }
        if r.excess_summary.len() > TEXT_GROUPS {
            let _ = writeln!(
                s,
                "    {} more groups: see --format json",
                r.excess_summary.len() - TEXT_GROUPS
            );
        }
        let _ = writeln!(s, "  regions:");
    }
    for e in r.excess.iter().take(TEXT_REGIONS) {
        if e.certain {
            let _ = writeln!(s, "  {}", e.describe());
            if e.rules.is_empty() {
                let _ = writeln!(
                    s,
                    "    accepted with no rule deciding: no base chain on the {} path filters it",
                    r.hook
                );
            }
            write_rules(&mut s, "    ", "accepted by", &e.rules, q);
        } else {
            let _ = writeln!(s, "  possible: {}", e.describe());
            if e.rules.is_empty() {
                let _ = writeln!(
                    s,
                    "    may be accepted: the model cannot follow what decides it"
                );
            }
            write_rules(
                &mut s,
                "    ",
                "may be accepted: the model cannot evaluate exactly",
                &e.rules,
                q,
            );
        }
    }
    // The JSON lists up to MAX_REGIONS regions; the summary counts all.
    if r.summary.excess > TEXT_REGIONS.min(r.excess.len()) {
        let _ = writeln!(
            s,
            "  {} more regions: see --format json{}",
            r.summary.excess - TEXT_REGIONS.min(r.excess.len()),
            if r.summary.excess > r.excess.len() {
                format!(
                    " (it lists {}; the summary above counts them all)",
                    r.excess.len()
                )
            } else {
                String::new()
            }
        );
    }
    for (title, why, list) in [
        ("shadowed", "covered by", &r.shadowed),
        ("redundant", "same result via", &r.redundant),
    ] {
        let _ = writeln!(s, "\n{title} rules ({}):", list.len());
        for x in list {
            let _ = writeln!(s, "  {}  (chain {})", q.quote(&x.rule), x.chain);
            let why = match x.reason {
                None => {
                    if x.by.is_empty() {
                        let _ = writeln!(
                            s,
                            "    no packet that enters chain {} can match it",
                            x.chain
                        );
                    }
                    why
                }
                Some(DeadReason::Context) => {
                    let _ = writeln!(
                        s,
                        "    dead in context: no packet that reaches it from the base chains matches it"
                    );
                    why
                }
                Some(DeadReason::NeverReached) => {
                    let _ = writeln!(
                        s,
                        "    chain {} is never reached from a base chain (this stands for all its rules)",
                        x.chain
                    );
                    "jumps to it, none reached"
                }
            };
            write_rules(&mut s, "    ", why, &x.by, q);
        }
    }
    let _ = writeln!(
        s,
        "\ndefault deny: {}",
        if r.default_deny { "yes" } else { "no" }
    );
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    let m = &r.summary;
    let _ = writeln!(
        s,
        "\nsummary: {}{} flows: {} allowed, {} partial, {} blocked, {} unknown; replies not allowed: {}; excess: {}{}{}; shadowed: {}; redundant: {}: {}",
        r.families
            .iter()
            .filter(|f| f.status == FamilyStatus::NotCovered)
            .map(|f| format!("{} not covered; ", f.family))
            .collect::<String>(),
        m.flows, m.allowed, m.partial, m.blocked, m.unknown, m.replies_not_allowed, m.excess,
        if m.possible_excess > 0 { format!(" ({} possible)", m.possible_excess) } else { String::new() },
        if m.excess_complete { "" } else { " (incomplete)" },
        m.shadowed, m.redundant,
        if m.ok { "OK" } else { "FINDINGS" }
    );
    s
}

fn junit(r: &VerifyReport) -> Result<String, CliError> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new("ringfence verify");
    let mut flows = TestSuite::new("flows");
    for f in &r.flows {
        let ok = f.status == Status::Allowed && f.replies == Status::Allowed;
        let status = if ok {
            TestCaseStatus::success()
        } else {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let mut msg = format!(
                "new connections {}, replies {}",
                status_str(f.status),
                status_str(f.replies)
            );
            if !f.redirected_to.is_empty() {
                let _ = write!(msg, "; redirected to {}", f.redirected_to.join(", "));
            }
            if let Some(e) = &f.blocked_example {
                let _ = write!(
                    msg,
                    "; e.g. {} {} -> {}",
                    e.proto,
                    format_endpoint(&e.src, e.sport),
                    format_endpoint(&e.dst, e.dport)
                );
            }
            if !f.rules.is_empty() {
                let _ = write!(msg, "; decided by {}", f.rules.join(", "));
            }
            st.set_message(msg);
            st
        };
        let mut tc = TestCase::new(f.id.clone(), status);
        tc.set_classname("flows");
        flows.add_test_case(tc);
    }
    report.add_test_suite(flows);
    let mut excess = TestSuite::new("excess");
    let mut tc = if r.excess.is_empty() && r.summary.excess_complete {
        TestCase::new("deny-all", TestCaseStatus::success())
    } else {
        let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
        st.set_message(format!(
            "{} region(s) accepted beyond the required flows",
            r.summary.excess
        ));
        st.set_description(
            r.excess
                .iter()
                .map(|e| {
                    format!(
                        "{}{} by {}",
                        if e.certain { "" } else { "possible: " },
                        e.describe(),
                        e.rules.join(", ")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        );
        TestCase::new("deny-all", st)
    };
    tc.set_classname("excess");
    excess.add_test_case(tc);
    report.add_test_suite(excess);
    // A family in scope that no ruleset covers fails; one out of scope is
    // skipped with its reason, so the dashboard says it was not analysed.
    let mut families = TestSuite::new("families");
    for f in &r.families {
        let status = match f.status {
            FamilyStatus::Analysed => TestCaseStatus::success(),
            FamilyStatus::NotAnalysed => {
                let mut st = TestCaseStatus::skipped();
                st.set_message(format!("not analysed: {}", f.reason));
                st
            }
            FamilyStatus::NotCovered => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(format!("not covered: {}", f.reason));
                st
            }
        };
        let mut tc = TestCase::new(f.family.clone(), status);
        tc.set_classname("families");
        families.add_test_case(tc);
    }
    report.add_test_suite(families);
    report
        .to_string()
        .map_err(|e| CliError::Io(format!("rendering JUnit XML: {e}")))
}
