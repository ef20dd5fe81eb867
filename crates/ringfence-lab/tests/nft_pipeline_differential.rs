//! Kernel differential test of the nft pipeline: random rulesets of several
//! base chains (types filter, nat and route; hooks prerouting, input,
//! forward, output and postrouting; different priorities; `ip` and `inet`
//! tables) are loaded into a router namespace with `nft -f`, dumped with
//! `nft -j list ruleset` and parsed (the dump, not our input); TCP
//! connections and UDP exchanges go through the router, to it and from it,
//! and where the kernel delivers each one (the server's or the router's own
//! stack, or nowhere) must be one of the outcomes `trace` computes (with a
//! single outcome: that outcome). Zero disagreements are allowed.
//!
//! Rules: addresses, ports, protocols, interface names, conntrack states,
//! `numgen ... mod 1` (deterministic in the kernel, an opaque match to the
//! model: two branches, so the kernel's fate must be among the outcomes);
//! verdicts accept, drop, reject, jump, goto, return, continue, and user
//! chains. nat chains also rewrite addresses (`dnat`, `snat`,
//! `masquerade`, `redirect`; [`NAT_REWRITES`]), and trace is given the
//! router's addresses; TCP flags
//! ([`TCP_FLAGS`]), ICMP types ([`ICMP`]), packet lengths ([`LENGTHS`]) and
//! marks ([`MARKS`]) are exact fields and generated; ICMP echo and timestamp
//! requests are probes beside TCP connections and UDP exchanges.
//!
//! The numgen matches are also settled (always or never, as the kernel
//! decides them) in a copy of the ruleset: traced there a probe has one
//! outcome, which the kernel must meet and which must be among the outcomes
//! on the original (so the branches really contain the kernel's path).
//!
//! Safety: namespaces `rf-np<pid>-*` made by `ringfence_testkit`, addresses
//! in 198.18.0.0/15 only, agents and namespaces removed on every exit path.
//! Needs root, `ip`, `nft` and `python3`. `RF_KERNEL_RULESETS` (default 30),
//! `RF_KERNEL_PROBES` (default 150) and `RF_KERNEL_SEED` override the sample;
//! `RF_DIFF_SHOW_REFUSED=1` prints why nft refused a generated ruleset (it is
//! drawn again).

#[path = "../../ringfence-analysis/tests/kernel/pipeline_lab.rs"]
mod pipeline_lab;

use pipeline_lab::{env_num, random_probes, PipeLab, Rng, Tally, HOSTS, PORTS};
use ringfence_analysis::Tracer;
use ringfence_testkit::Need;
use std::fmt::Write as _;

/// Generate `dnat`, `snat`, `masquerade` and `redirect` in nat chains: the
/// model follows address rewrites, `trace` reports `dnat`/`snat` in its
/// outcomes, and the harness compares them with the rewritten destination
/// and source the agents record (trace knows the router's addresses).
const NAT_REWRITES: bool = true;
/// Generate `meta mark set`, `ct mark set` and mark matches in chains of
/// every priority (below -200 on prerouting and output there is no
/// connection yet: `ct mark` breaks the rule and `ct mark set` does nothing):
/// marks are exact fields of the model.
const MARKS: bool = true;
/// Generate `tcp flags` matches: TCP flags are exact fields, and every TCP
/// probe is a SYN, which `trace` is told.
const TCP_FLAGS: bool = true;
/// Generate `meta length` matches: the packet length is an exact field, and
/// every probe's length is known (a Linux SYN, or a UDP datagram of a chosen
/// payload size).
const LENGTHS: bool = true;
/// Generate ICMP matches (`icmp type`, `icmp code`, `meta l4proto icmp`)
/// and ICMP probes (echo and timestamp requests, told to trace with their
/// type and code).
const ICMP: bool = true;
/// `ct state` in base chains of priority below -200 (before conntrack) and
/// their user chains: there the kernel sees every packet as invalid (no
/// conntrack entry yet), which the model's stages follow (issue 15).
const RAW_CTSTATE: bool = true;
/// `oifname` on prerouting and input, `iifname` on output and postrouting:
/// the kernel has no output interface before routing and no input interface
/// on a packet the host sends, and compares the missing one as the empty
/// name (`oifname != "rfs0"` matches on prerouting), which the model's
/// stages follow (issue 15).
const IFACE_ABSENT: bool = true;

/// Conntrack's priority on prerouting and output.
const CONNTRACK_PRIORITY: i32 = -200;

/// Where a rule sits.
#[derive(Clone, Copy)]
struct Ctx {
    family: &'static str,
    kind: &'static str,
    hook: &'static str,
    priority: i32,
}

impl Ctx {
    fn has_in(&self) -> bool {
        matches!(self.hook, "prerouting" | "input" | "forward")
    }
    fn has_out(&self) -> bool {
        matches!(self.hook, "forward" | "output" | "postrouting")
    }
}

fn op(rng: &mut Rng) -> &'static str {
    if rng.chance(25) {
        "!= "
    } else {
        ""
    }
}

fn host(rng: &mut Rng, client_side: bool) -> String {
    match rng.below(6) {
        0 => if client_side {
            "198.18.0.1"
        } else {
            "198.18.1.1"
        }
        .to_string(),
        1 => rng.one(&["198.18.0.1", "198.18.1.1"]).to_string(),
        _ => format!(
            "198.18.{}.{}",
            u8::from(!client_side),
            10 + rng.below(HOSTS as u64)
        ),
    }
}

fn addr_value(rng: &mut Rng, client_side: bool) -> String {
    let one = |rng: &mut Rng| match rng.below(4) {
        0 => format!(
            "{}/{}",
            host(rng, client_side),
            rng.pick(&[16, 24, 28, 29, 30, 31])
        ),
        1 => {
            let n = u8::from(!client_side);
            let a = 10 + rng.below(HOSTS as u64);
            let b = 10 + rng.below(HOSTS as u64);
            format!("198.18.{n}.{}-198.18.{n}.{}", a.min(b), a.max(b))
        }
        _ => host(rng, client_side),
    };
    if rng.chance(25) {
        // Disjoint elements: nft refuses overlapping ones in an anonymous set
        // without auto-merge, so only single hosts of one side.
        let n = u8::from(!client_side);
        let mut hosts: Vec<u64> = (0..HOSTS as u64).collect();
        let k = 1 + rng.below(3) as usize;
        let items: Vec<String> = (0..k)
            .map(|_| {
                let h = hosts.swap_remove(rng.below(hosts.len() as u64) as usize);
                format!("198.18.{n}.{}", 10 + h)
            })
            .collect();
        format!("{{ {} }}", items.join(", "))
    } else {
        one(rng)
    }
}

fn port_value(rng: &mut Rng) -> String {
    let a = *rng.pick(&PORTS);
    match rng.below(4) {
        0 => {
            let b = *rng.pick(&PORTS);
            if a == b {
                a.to_string()
            } else {
                format!("{}-{}", a.min(b), a.max(b))
            }
        }
        1 => {
            let mut ports = PORTS.to_vec();
            let k = 1 + rng.below(3) as usize;
            let items: Vec<String> = (0..k)
                .map(|_| {
                    ports
                        .swap_remove(rng.below(ports.len() as u64) as usize)
                        .to_string()
                })
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
        _ => a.to_string(),
    }
}

fn iface_value(rng: &mut Rng) -> &'static str {
    rng.one(&[
        "\"rfc0\"",
        "\"rfs0\"",
        "\"rf*\"",
        "\"rfc*\"",
        "\"eth*\"",
        "{ \"rfc0\", \"rfs0\" }",
    ])
}

/// The matches of one rule; also which transport protocol they pin (for
/// `reject with tcp reset` and port rewrites).
fn random_matches(rng: &mut Rng, cx: Ctx) -> (Vec<String>, Option<&'static str>) {
    let mut m = Vec::new();
    let mut l4 = None;
    // An ICMP match pins (or excludes) the protocol: no TCP flags after it.
    let mut icmp = false;
    if rng.chance(30) {
        m.push(format!("ip saddr {}{}", op(rng), addr_value(rng, true)));
    }
    if rng.chance(30) {
        m.push(format!("ip daddr {}{}", op(rng), addr_value(rng, false)));
    }
    if (cx.has_in() || IFACE_ABSENT) && rng.chance(12) {
        m.push(format!("iifname {}{}", op(rng), iface_value(rng)));
    }
    if (cx.has_out() || IFACE_ABSENT) && rng.chance(12) {
        m.push(format!("oifname {}{}", op(rng), iface_value(rng)));
    }
    match rng.below(10) {
        0..=2 => {
            l4 = Some("tcp");
            match rng.below(3) {
                0 => m.push(format!("tcp sport {}10000-65535", op(rng))),
                _ => m.push(format!("tcp dport {}{}", op(rng), port_value(rng))),
            }
        }
        3 | 4 => {
            l4 = Some("udp");
            m.push(format!("udp dport {}{}", op(rng), port_value(rng)));
        }
        5 => {
            let (text, proto) = *rng.pick(&[
                ("meta l4proto tcp", Some("tcp")),
                ("meta l4proto udp", Some("udp")),
                ("meta l4proto != udp", None),
                ("ip protocol tcp", Some("tcp")),
                ("meta l4proto { tcp, udp }", None),
            ]);
            m.push(text.to_string());
            l4 = proto;
        }
        6 => m.push(format!("th dport {}{}", op(rng), port_value(rng))),
        7 if ICMP => {
            icmp = true;
            m.push(
                rng.one(&[
                    "icmp type echo-request",
                    "icmp type { echo-request, timestamp-request }",
                    "icmp type != echo-request",
                    "icmp type timestamp-request icmp code 0",
                    "meta l4proto icmp",
                    "meta l4proto != icmp",
                ])
                .to_string(),
            );
        }
        _ => {}
    }
    if TCP_FLAGS && !icmp && rng.chance(25) {
        if l4.is_none() {
            m.push("meta l4proto tcp".into());
            l4 = Some("tcp");
        }
        if l4 == Some("tcp") {
            m.push(
                rng.one(&[
                    "tcp flags syn",
                    "tcp flags & (syn | ack) == syn",
                    "tcp flags != syn",
                    "tcp flags & (syn | rst) == rst",
                    "tcp flags syn / syn,ack",
                    "tcp flags == syn",
                    "tcp flags { syn, syn | ack }",
                    "tcp flags ack",
                ])
                .to_string(),
            );
        }
    }
    if rng.chance(12) && (cx.priority > CONNTRACK_PRIORITY || RAW_CTSTATE) {
        m.push(
            rng.one(&[
                "ct state new",
                "ct state established",
                "ct state new,established",
                "ct state != new",
                "ct state != new,established",
                "ct state != { established, related }",
                "ct state { new, related }",
                "ct state invalid",
            ])
            .to_string(),
        );
    }
    if rng.chance(12) {
        // Deterministic in the kernel (a number modulo 1 is 0); opaque to the model.
        m.push(
            rng.one(&[
                "numgen random mod 1 == 0",
                "numgen random mod 1 != 0",
                "numgen inc mod 1 == 0",
                "numgen inc mod 1 != 0",
            ])
            .to_string(),
        );
    }
    if MARKS && rng.chance(20) {
        m.push(
            rng.one(&[
                "meta mark 0x1",
                "meta mark and 0xf == 0x1",
                "meta mark != 0x2",
                "meta mark 0x0",
                "ct mark 0x1",
                "ct mark and 0x4 != 0x4",
            ])
            .to_string(),
        );
    }
    if LENGTHS && rng.chance(12) {
        // Around the probes' lengths: 60 (SYN) and 30, 40, 128, 628 (UDP).
        m.push(
            rng.one(&[
                "meta length 60",
                "meta length 0-59",
                "meta length != 41-200",
                "meta length 30-60",
                "meta length >= 129",
                "meta length { 30, 628 }",
                "meta length != 628",
            ])
            .to_string(),
        );
    }
    if rng.chance(10) {
        m.push("counter".into());
    }
    (m, l4)
}

/// A rule's verdict (or statement) in `cx`; `later` are the user chains it
/// may call, `user` whether the rule is in a user chain.
fn random_verdict(
    rng: &mut Rng,
    cx: Ctx,
    l4: Option<&'static str>,
    later: &[String],
    user: bool,
) -> String {
    let mut choices = vec!["accept", "accept", "continue", "log"];
    if user {
        choices.push("return");
    }
    if cx.kind == "nat" {
        if NAT_REWRITES {
            match cx.hook {
                "prerouting" | "output" => choices.extend(["dnat", "dnat", "redirect"]),
                "input" => choices.push("snat"),
                _ => choices.extend(["snat", "masquerade"]),
            }
        }
    } else {
        choices.extend(["drop", "drop"]);
        // The kernel takes reject on these hooks (not on postrouting).
        if matches!(cx.hook, "prerouting" | "input" | "forward" | "output") {
            choices.extend(["reject", "reject"]);
        }
        if MARKS {
            choices.push("mark");
        }
    }
    if !later.is_empty() {
        choices.extend(["jump", "jump", "goto"]);
    }
    // `dnat ip to` in inet tables, `dnat to` in ip tables.
    let fam = if cx.family == "inet" { " ip" } else { "" };
    match *rng.pick(&choices) {
        "jump" => format!("jump {}", rng.pick(later)),
        "goto" => format!("goto {}", rng.pick(later)),
        "log" => "log prefix \"rf \"".to_string(),
        "reject" if l4 == Some("tcp") && rng.chance(40) => "reject with tcp reset".to_string(),
        "reject" => rng
            .one(&[
                "reject",
                "reject with icmp type host-unreachable",
                "reject with icmp type admin-prohibited",
            ])
            .to_string(),
        "dnat" => {
            let to = pipeline_lab::server(rng.below(HOSTS as u64) as u8);
            if l4.is_some() && rng.chance(50) {
                format!("dnat{fam} to {to}:{}", rng.pick(&PORTS))
            } else {
                format!("dnat{fam} to {to}")
            }
        }
        "redirect" if l4.is_some() => format!("redirect to :{}", rng.pick(&PORTS)),
        "redirect" => "redirect".to_string(),
        // One address, or a range the kernel picks from.
        "snat" => format!(
            "snat{fam} to {}",
            rng.one(&[
                "198.18.1.1",
                "198.18.0.1",
                "198.18.1.1-198.18.1.3",
                "198.18.0.1-198.18.0.3"
            ])
        ),
        "masquerade" => "masquerade".to_string(),
        "mark" => rng
            .one(&[
                "meta mark set 0x1",
                "meta mark set meta mark | 0x4",
                "meta mark set meta mark and 0xfffffffe",
                "ct mark set meta mark",
                "meta mark set ct mark",
                "ct mark set 0x1",
            ])
            .to_string(),
        other => other.to_string(),
    }
}

/// One random ruleset: one to three tables, each with base chains of
/// random type, hook and priority (no two on one hook at one priority:
/// their order would be the order of registration), and user chains.
fn random_ruleset(rng: &mut Rng) -> String {
    let mut s = String::from("flush ruleset\n");
    let mut taken: Vec<(&str, i32)> = Vec::new();
    let tables = 1 + rng.below(3);
    for t in 0..tables {
        let family = rng.one(&["ip", "inet"]);
        let _ = writeln!(s, "table {family} rf{t} {{");
        let mut user_no = 0;
        for b in 0..1 + rng.below(4) {
            let (kind, hook, prio) = loop {
                let (kind, hook, prio) = match rng.below(20) {
                    0..=11 => (
                        "filter",
                        rng.one(&["prerouting", "input", "forward", "output", "postrouting"]),
                        *rng.pick(&[-300, -250, -160, -150, -120, -10, 0, 10, 50, 90, 150, 250]),
                    ),
                    12..=16 => (
                        "nat",
                        rng.one(&["prerouting", "input", "output", "postrouting"]),
                        *rng.pick(&[-150, -100, -50, 0, 100, 150, 250]),
                    ),
                    _ => ("route", "output", *rng.pick(&[-150, -120, 0, 50])),
                };
                if !taken.contains(&(hook, prio)) {
                    taken.push((hook, prio));
                    break (kind, hook, prio);
                }
            };
            let cx = Ctx {
                family,
                kind,
                hook,
                priority: prio,
            };
            let users: Vec<String> = (0..rng.below(3))
                .map(|_| {
                    user_no += 1;
                    format!("u{user_no}")
                })
                .collect();
            let policy = if kind != "nat" && rng.chance(20) {
                "drop"
            } else {
                "accept"
            };
            let _ = writeln!(
                s,
                "  chain b{b} {{\n    type {kind} hook {hook} priority {prio}; policy {policy};"
            );
            for _ in 0..rng.below(6) {
                let (mut m, l4) = random_matches(rng, cx);
                m.push(random_verdict(rng, cx, l4, &users, false));
                let _ = writeln!(s, "    {}", m.join(" "));
            }
            s.push_str("  }\n");
            for (i, u) in users.iter().enumerate() {
                let _ = writeln!(s, "  chain {u} {{");
                for _ in 0..1 + rng.below(4) {
                    let (mut m, l4) = random_matches(rng, cx);
                    m.push(random_verdict(rng, cx, l4, &users[i + 1..], true));
                    let _ = writeln!(s, "    {}", m.join(" "));
                }
                s.push_str("  }\n");
            }
        }
        s.push_str("}\n");
    }
    s
}

/// Whether an opaque match (the compact JSON the parser keeps) compares
/// `numgen ... mod 1` (always its offset, 0 by default) with a number:
/// `Some(true)` when it always holds, `Some(false)` when it never does.
fn numgen_mod_1(text: &str) -> Option<bool> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let m = v.get("match").unwrap_or(&v);
    let ng = m.get("left")?.get("numgen")?;
    if ng.get("mod")?.as_u64()? != 1 {
        return None;
    }
    let value = ng.get("offset").and_then(|o| o.as_u64()).unwrap_or(0);
    let equal = m.get("right")?.as_u64()? == value;
    match m.get("op")?.as_str()? {
        "==" => Some(equal),
        "!=" => Some(!equal),
        _ => None,
    }
}

#[test]
fn kernel_delivers_each_probe_as_one_of_the_nft_pipeline_outcomes_trace_gives() {
    if !ringfence_testkit::require!(
        Need::Root,
        Need::Tool("ip"),
        Need::Tool("nft"),
        Need::Tool("python3")
    ) {
        return;
    }
    let rulesets = env_num("RF_KERNEL_RULESETS", 30);
    let per = env_num("RF_KERNEL_PROBES", 150) as usize;
    let seed = env_num("RF_KERNEL_SEED", 0x5eed_2b7e);
    let show_refused = std::env::var_os("RF_DIFF_SHOW_REFUSED").is_some();
    let started = std::time::Instant::now();
    let mut lab = PipeLab::new("np");
    let mut rng = Rng::new(seed);
    let mut next_sport = 10_000u16;
    let mut tally = Tally::default();
    let mut refused = 0;
    let mut disagreements = Vec::new();
    for k in 0..rulesets {
        // nft refuses some random combinations (conflicting protocol
        // matches, for one); draw again a bounded number of times.
        let mut attempts = 0;
        let text = loop {
            let text = random_ruleset(&mut rng);
            let out = lab.router().run("nft", &["-f", "-"], text.as_bytes());
            if out.status.success() {
                break text;
            }
            attempts += 1;
            refused += 1;
            let why = String::from_utf8_lossy(&out.stderr).into_owned();
            if show_refused {
                eprintln!("refused by nft: {why}");
            }
            assert!(
                attempts < 20,
                "seed {seed} ruleset {k}: nft refused 20 generated rulesets in a row (a generator bug); last: {why}\n{text}"
            );
        };
        // Judge the ruleset the kernel holds, as nft dumps it.
        let dump = lab.router().ok("nft", &["-j", "list", "ruleset"], b"");
        let rs = ringfence_parse::nft::parse(&dump, "dump.json").unwrap_or_else(|e| {
            panic!("seed {seed} ruleset {k}: parsing the dump failed: {e}\n{dump}")
        });
        let tracer = Tracer::new(&rs).with_local(pipeline_lab::router_addrs());
        let settled_rs = pipeline_lab::resolve(&rs, &numgen_mod_1);
        let settled = Tracer::new(&settled_rs).with_local(pipeline_lab::router_addrs());
        let probes = random_probes(&mut rng, per, &mut next_sport);
        let router = lab.router().name.clone();
        let context = || {
            // Rule references are handles: show the ruleset with them.
            let listed = std::process::Command::new("ip")
                .args(["netns", "exec", &router, "nft", "-a", "list", "ruleset"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            format!("seed {seed} (RF_KERNEL_SEED), ruleset {k}\n--- loaded\n{text}--- listed with handles\n{listed}")
        };
        disagreements.extend(pipeline_lab::check(
            &mut lab,
            &tracer,
            Some(&settled),
            &probes,
            &mut tally,
            &context,
        ));
    }
    eprintln!(
        "nft pipeline differential: seed {seed}, {rulesets} rulesets x {per} probes in {:.1?} ({refused} generated rulesets refused by nft and drawn again): {}",
        started.elapsed(),
        tally.line()
    );
    drop(lab);
    tally.assert_sample(&disagreements, rulesets, "numgen", NAT_REWRITES);
}

#[test]
fn each_numgen_mod_1_form_is_settled_from_the_parsers_text() {
    // The expressions as `nft -j list ruleset` prints them.
    let forms = [
        (
            r#"{"op": "==", "left": {"numgen": {"mode": "random", "mod": 1, "offset": 0}}, "right": 0}"#,
            true,
        ),
        (
            r#"{"op": "!=", "left": {"numgen": {"mode": "random", "mod": 1, "offset": 0}}, "right": 0}"#,
            false,
        ),
        (
            r#"{"op": "==", "left": {"numgen": {"mode": "inc", "mod": 1, "offset": 0}}, "right": 0}"#,
            true,
        ),
        (
            r#"{"op": "!=", "left": {"numgen": {"mode": "inc", "mod": 1, "offset": 0}}, "right": 0}"#,
            false,
        ),
    ];
    for (form, holds) in forms {
        let doc = format!(
            r#"{{"nftables": [{{"table": {{"family": "ip", "name": "t", "handle": 1}}}}, {{"chain": {{"family": "ip", "table": "t", "name": "c", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}}}, {{"rule": {{"family": "ip", "table": "t", "chain": "c", "handle": 2, "expr": [{{"match": {form}}}, {{"drop": null}}]}}}}]}}"#
        );
        let rs = ringfence_parse::nft::parse(&doc, "t.json").unwrap();
        let opaque = rs
            .chains
            .iter()
            .flat_map(|c| &c.rules)
            .filter(|r| !r.matches.opaque.is_empty())
            .count();
        assert_eq!(
            opaque, 1,
            "{form}: the parser models numgen now; settle it elsewhere"
        );
        let settled = pipeline_lab::resolve(&rs, &numgen_mod_1);
        let rules: Vec<_> = settled
            .chains
            .iter()
            .flat_map(|c| &c.rules)
            .filter(|r| !r.matches.is_empty())
            .collect();
        assert!(
            rules.iter().all(|r| r.matches.opaque.is_empty()),
            "{form}: left opaque"
        );
        assert_eq!(rules.len(), usize::from(holds), "{form}");
    }
}

/// Hand-written nat layouts the random generator reaches only by chance,
/// each loaded into the router and probed like a random ruleset: nat
/// chains at a declared priority far from the nat priority (they run at
/// -100 / 100 whatever they say, so a filter chain at 0 sees a prerouting
/// DNAT of a nat chain at 150, and one at -150 does not), a DNAT to the
/// address a packet already has ending the hook's nat chains (the later
/// chain's DNAT and drop are skipped), and a filter chain after SNAT and
/// MASQUERADE reading the new source. Zero disagreements allowed.
#[test]
fn kernel_agrees_with_trace_on_nat_chain_layouts() {
    if !ringfence_testkit::require!(
        Need::Root,
        Need::Tool("ip"),
        Need::Tool("nft"),
        Need::Tool("python3")
    ) {
        return;
    }
    let layouts = [
        // A nat chain says 150 and runs at -100, before the filter chain at
        // 0 that drops what it sends to .12; the one at -150 runs first.
        "flush ruleset
table ip rf0 {
  chain early { type filter hook prerouting priority -150; policy accept;
    ip daddr 198.18.1.12 tcp dport 80 drop
  }
  chain late_nat { type nat hook prerouting priority 150; policy accept;
    ip daddr 198.18.1.11 dnat to 198.18.1.12
  }
  chain filter0 { type filter hook prerouting priority 0; policy accept;
    ip daddr 198.18.1.12 tcp dport 22 drop
  }
}
",
        // An identity DNAT (to the address the packet has) in the first nat
        // chain ends the hook's nat chains: the second one's DNAT to .13
        // and its drop never run for those packets.
        "flush ruleset
table ip rf0 {
  chain n1 { type nat hook prerouting priority -50; policy accept;
    ip daddr 198.18.1.11 dnat to 198.18.1.11
    ip daddr 198.18.1.14 tcp dport 80 dnat to 198.18.1.14:8080
  }
}
table inet rf1 {
  chain n2 { type nat hook prerouting priority 100; policy accept;
    ip daddr { 198.18.1.11, 198.18.1.14 } dnat ip to 198.18.1.13
    ip daddr 198.18.1.15 drop
  }
}
",
        // SNAT and MASQUERADE, then a filter chain at 150 on the new source.
        "flush ruleset
table ip rf0 {
  chain post { type nat hook postrouting priority srcnat; policy accept;
    ip saddr 198.18.0.10-198.18.0.12 snat to 198.18.1.1
    ip saddr 198.18.0.13-198.18.0.15 oifname \"rfs0\" masquerade
  }
  chain after { type filter hook postrouting priority 150; policy accept;
    ip saddr 198.18.1.1 tcp dport 22 drop
    ip saddr 198.18.1.1 udp dport 53 drop
  }
}
",
    ];
    let per = env_num("RF_KERNEL_PROBES", 150) as usize;
    let seed = env_num("RF_KERNEL_SEED", 0x5eed_2b7e);
    let mut lab = PipeLab::new("nl");
    let mut rng = Rng::new(seed);
    let mut next_sport = 10_000u16;
    let mut tally = Tally::default();
    let mut disagreements = Vec::new();
    for (k, text) in layouts.iter().enumerate() {
        let out = lab.router().run("nft", &["-f", "-"], text.as_bytes());
        assert!(
            out.status.success(),
            "layout {k}: nft refused it: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dump = lab.router().ok("nft", &["-j", "list", "ruleset"], b"");
        let rs = ringfence_parse::nft::parse(&dump, "dump.json")
            .unwrap_or_else(|e| panic!("layout {k}: parsing the dump failed: {e}\n{dump}"));
        let tracer = Tracer::new(&rs).with_local(pipeline_lab::router_addrs());
        let probes = random_probes(&mut rng, per, &mut next_sport);
        let context = || format!("seed {seed}, layout {k}\n{text}");
        disagreements.extend(pipeline_lab::check(
            &mut lab, &tracer, None, &probes, &mut tally, &context,
        ));
    }
    eprintln!("nft nat layouts: seed {seed}: {}", tally.line());
    drop(lab);
    assert!(
        disagreements.is_empty(),
        "{} disagreements with the kernel; the first:\n{}",
        disagreements.len(),
        disagreements[0]
    );
}
