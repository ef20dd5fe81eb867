//! Kernel differential test for the nft path: random nftables rulesets are
//! loaded into a router namespace with the real `nft -f`, dumped with
//! `nft -j list ruleset`, parsed by ringfence-parse (the dump, not our input),
//! and real TCP connects and UDP exchanges through the router are compared
//! with the verdict `ringfence_analysis::trace` computes over the parsed model;
//! a small reference evaluator written here must agree with trace as well.
//! The kernel is the truth. Rules include concatenations (`ip saddr . ip
//! daddr @pairs`, address . port, protocol . address . port, interface .
//! address; `==` and `!=`; named and anonymous sets; verdict maps with a
//! concatenated key), which the parser lowers to one model rule per element.
//!
//! Needs root, `ip` and `nft`; prints "skipped: ..." otherwise.
//! `RF_DIFF_SEED`, `RF_DIFF_RULESETS` and `RF_DIFF_PACKETS` override the defaults
//! (seed 1, 50 rulesets, 200 packets each); `RF_DIFF_SHOW_REFUSED=1` prints why
//! nft refused a generated ruleset (it was redrawn).

use ringfence_lab::{probe_all, HostSpec, Lab, LabSpec, Listeners, Outcome, Probe, Transport};
use ringfence_model::{Action, ChainId, CtStates, Hook, Packet, Policy, RuleRef, Ruleset, Verdict};
use ringfence_testkit::Rng;
use std::collections::HashSet;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

struct Host {
    name: &'static str,
    net: [u8; 3],
    addrs: &'static [u8],
}

const HOSTS: [Host; 3] = [
    Host {
        name: "a",
        net: [198, 18, 1],
        addrs: &[10, 11, 12],
    },
    Host {
        name: "b",
        net: [198, 18, 2],
        addrs: &[20, 21, 22],
    },
    Host {
        name: "c",
        net: [198, 18, 3],
        addrs: &[30, 31],
    },
];

const PORTS: [u16; 8] = [22, 80, 443, 1000, 1001, 2000, 3000, 8080];

fn addr(h: &Host, last: u8) -> Ipv4Addr {
    Ipv4Addr::new(h.net[0], h.net[1], h.net[2], last)
}

fn all_addrs() -> Vec<Ipv4Addr> {
    HOSTS
        .iter()
        .flat_map(|h| h.addrs.iter().map(move |&l| addr(h, l)))
        .collect()
}

// ---------------------------------------------------------------- generator

fn gen_addr_value(r: &mut Rng, sets: bool) -> String {
    let addrs = all_addrs();
    let one = |r: &mut Rng| -> String {
        let a = *r.pick(&addrs);
        match r.below(4) {
            0 => a.to_string(),
            1 => {
                let len = 22 + r.below(11) as u8;
                format!("{a}/{len}")
            }
            2 => {
                let b = *r.pick(&addrs);
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                format!("{lo}-{hi}")
            }
            _ => format!("198.18.{}.0/24", 1 + r.below(3)),
        }
    };
    if sets && r.chance(30) {
        let n = 1 + r.below(3);
        let items: Vec<String> = (0..n).map(|_| one(r)).collect();
        format!("{{ {} }}", items.join(", "))
    } else {
        one(r)
    }
}

fn gen_port_value(r: &mut Rng, sets: bool) -> String {
    let one = |r: &mut Rng| -> String {
        let p = *r.pick(&PORTS);
        if r.chance(30) {
            let q = *r.pick(&PORTS);
            let (lo, hi) = if p <= q { (p, q) } else { (q, p) };
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        } else {
            p.to_string()
        }
    };
    if sets && r.chance(35) {
        let n = 1 + r.below(3);
        let items: Vec<String> = (0..n).map(|_| one(r)).collect();
        format!("{{ {} }}", items.join(", "))
    } else {
        one(r)
    }
}

fn neg(r: &mut Rng) -> &'static str {
    if r.chance(25) {
        "!= "
    } else {
        ""
    }
}

fn gen_match(r: &mut Rng, named: bool) -> String {
    let ifnames = ["rf-a", "rf-b", "rf-c"];
    match r.below(14) {
        0 | 1 => {
            let v = if named && r.chance(25) {
                "@addrs".to_string()
            } else {
                gen_addr_value(r, true)
            };
            format!("ip saddr {}{v}", neg(r))
        }
        2 | 3 => {
            let v = if named && r.chance(25) {
                "@addrs".to_string()
            } else {
                gen_addr_value(r, true)
            };
            format!("ip daddr {}{v}", neg(r))
        }
        4 | 5 => {
            let v = if named && r.chance(25) {
                "@ports".to_string()
            } else {
                gen_port_value(r, true)
            };
            format!("{} dport {}{v}", r.pick(&["tcp", "tcp", "udp"]), neg(r))
        }
        6 => {
            let lo = 10000 + r.below(40000) as u16;
            let hi = lo.saturating_add(r.below(20000) as u16);
            format!("{} sport {}{lo}-{hi}", r.pick(&["tcp", "udp"]), neg(r))
        }
        7 => format!("th dport {}{}", neg(r), gen_port_value(r, false)),
        8 => r
            .pick(&[
                "meta l4proto tcp",
                "meta l4proto udp",
                "meta l4proto != udp",
                "ip protocol tcp",
                "meta l4proto { tcp, udp }",
                "ip protocol != tcp",
            ])
            .to_string(),
        9 => {
            let side = if r.chance(50) { "iifname" } else { "oifname" };
            let v = match r.below(4) {
                0 => "\"rf-*\"".to_string(),
                1 => format!("{{ \"{}\", \"{}\" }}", r.pick(&ifnames), r.pick(&ifnames)),
                _ => format!("\"{}\"", r.pick(&ifnames)),
            };
            format!("{side} {}{v}", neg(r))
        }
        10 => {
            let side = if r.chance(50) { "iif" } else { "oif" };
            format!("{side} {}\"{}\"", neg(r), r.pick(&ifnames))
        }
        11 | 12 => r
            .pick(&[
                "ct state != new,established",
                "ct state != related,established",
                "ct state new",
                "ct state != new,established",
                "ct state != { established, related }",
                "ct state { new, related }",
                "ct state established",
                "ct state != new",
                "ct state new,established",
            ])
            .to_string(),
        _ => format!("ip daddr {}{}", neg(r), gen_addr_value(r, false)),
    }
}

/// An address value inside one host network (its /24, one address, or a
/// range of its addresses): values for different hosts never overlap, which
/// the kernel requires of the elements of a concatenated set.
fn gen_host_value(r: &mut Rng, h: &Host) -> String {
    match r.below(3) {
        0 => format!("{}/24", addr(h, 0)),
        1 => addr(h, *r.pick(h.addrs)).to_string(),
        _ => {
            let a = *r.pick(h.addrs);
            let b = *r.pick(h.addrs);
            let (lo, hi) = (a.min(b), a.max(b));
            if lo == hi {
                addr(h, lo).to_string()
            } else {
                format!("{}-{}", addr(h, lo), addr(h, hi))
            }
        }
    }
}

/// 1 to 3 host networks in random order, each used by one element.
fn gen_hosts(r: &mut Rng) -> Vec<&'static Host> {
    let mut idx = vec![0usize, 1, 2];
    let n = 1 + r.below(3) as usize;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(&HOSTS[idx.swap_remove(r.below(idx.len() as u64) as usize)]);
    }
    out
}

/// Elements `host-part . other-part` for an anonymous or named set.
fn gen_tuples(r: &mut Rng, other: &mut dyn FnMut(&mut Rng) -> String, host_first: bool) -> String {
    let items: Vec<String> = gen_hosts(r)
        .into_iter()
        .map(|h| {
            let a = gen_host_value(r, h);
            let o = other(r);
            if host_first {
                format!("{a} . {o}")
            } else {
                format!("{o} . {a}")
            }
        })
        .collect();
    format!("{{ {} }}", items.join(", "))
}

/// A concatenation match: `ip saddr . ip daddr`, address . port, protocol
/// . address . port, interface . address, against named or anonymous sets,
/// with `==` or `!=`.
fn gen_concat(r: &mut Rng, named: bool) -> String {
    let ifnames = ["rf-a", "rf-b", "rf-c", "rf-*"];
    let op = if r.chance(25) { "!= " } else { "" };
    match r.below(6) {
        0 if named => format!("ip saddr . ip daddr {op}@pairs"),
        1 if named => format!("ip daddr . tcp dport {op}@svc"),
        0 | 1 => {
            let mut other = |r: &mut Rng| gen_addr_value(r, false);
            format!(
                "ip saddr . ip daddr {op}{}",
                gen_tuples(r, &mut other, true)
            )
        }
        2 => {
            let (kw, side) = *r.pick(&[
                ("tcp", "daddr"),
                ("udp", "daddr"),
                ("tcp", "saddr"),
                ("th", "daddr"),
            ]);
            let mut other = |r: &mut Rng| gen_port_value(r, false);
            format!(
                "ip {side} . {kw} dport {op}{}",
                gen_tuples(r, &mut other, true)
            )
        }
        3 => {
            let mut other =
                |r: &mut Rng| format!("{} . {}", r.pick(&["tcp", "udp"]), gen_port_value(r, false));
            format!(
                "ip daddr . meta l4proto . th dport {op}{}",
                gen_tuples(r, &mut other, true)
            )
        }
        4 => {
            let mut other = |r: &mut Rng| format!("\"{}\"", r.pick(&ifnames));
            format!(
                "iifname . ip saddr {op}{}",
                gen_tuples(r, &mut other, false)
            )
        }
        _ => {
            let mut other = |r: &mut Rng| format!("\"{}\"", r.pick(&ifnames));
            format!(
                "oifname . ip daddr {op}{}",
                gen_tuples(r, &mut other, false)
            )
        }
    }
}

fn gen_rule(r: &mut Rng, users: &[String], own: Option<usize>, named: bool) -> String {
    // Mostly one to three matches: match-all rules hide everything after them.
    let n = if r.chance(10) { 0 } else { 1 + r.below(3) };
    // At most one interface match per side: `iifname "rf-*" iifname != "rf-a"`
    // is not one interface set, so the parser rightly makes it opaque.
    let mut parts: Vec<String> = Vec::new();
    let mut sides = (false, false);
    while parts.len() < n as usize {
        let m = if r.chance(30) {
            gen_concat(r, named)
        } else {
            gen_match(r, named)
        };
        let side_in = m.starts_with("iif");
        let side_out = m.starts_with("oif");
        if (side_in && sides.0) || (side_out && sides.1) {
            continue;
        }
        sides.0 |= side_in;
        sides.1 |= side_out;
        parts.push(m);
    }
    if r.chance(15) {
        parts.push("counter".into());
    }
    // Jumps only to later user chains: no loops.
    let later: Vec<&String> = users
        .iter()
        .enumerate()
        .filter(|(i, _)| own.is_none_or(|o| *i > o))
        .map(|(_, u)| u)
        .collect();
    let verdict = match r.below(13) {
        0..=2 => "accept".to_string(),
        3 | 4 => "drop".to_string(),
        5 => r
            .pick(&[
                "reject",
                "reject with tcp reset",
                "reject with icmp host-unreachable",
            ])
            .to_string(),
        6 | 7 if !later.is_empty() => format!("jump {}", r.pick(&later)),
        8 if !later.is_empty() => format!("goto {}", r.pick(&later)),
        9 if own.is_some() => "return".into(),
        10 => "continue".into(),
        11 => "log prefix \"rf\" accept".into(),
        12 if r.chance(40) => {
            // A verdict map on a concatenated key (address . port; elements
            // of different host networks, so the keys are disjoint).
            let elems: Vec<String> = gen_hosts(r)
                .into_iter()
                .map(|h| {
                    let v = match r.below(5) {
                        0 if !later.is_empty() => format!("jump {}", r.pick(&later)),
                        1 if !later.is_empty() => format!("goto {}", r.pick(&later)),
                        2 => "drop".into(),
                        3 => "continue".into(),
                        _ => "accept".into(),
                    };
                    format!(
                        "{} . {} : {v}",
                        gen_host_value(r, h),
                        gen_port_value(r, false)
                    )
                })
                .collect();
            format!(
                "ip {} . {} dport vmap {{ {} }}",
                r.pick(&["saddr", "daddr"]),
                r.pick(&["tcp", "udp", "th"]),
                elems.join(", ")
            )
        }
        12 => {
            // A verdict map on the destination port (distinct keys).
            let mut keys: Vec<u16> = PORTS.to_vec();
            let n = 1 + r.below(4) as usize;
            let mut elems = Vec::new();
            for _ in 0..n {
                let k = keys.swap_remove(r.below(keys.len() as u64) as usize);
                let v = match r.below(5) {
                    0 if !later.is_empty() => format!("jump {}", r.pick(&later)),
                    1 if !later.is_empty() => format!("goto {}", r.pick(&later)),
                    2 => "drop".into(),
                    3 => "continue".into(),
                    _ => "accept".into(),
                };
                elems.push(format!("{k} : {v}"));
            }
            format!(
                "{} dport vmap {{ {} }}",
                r.pick(&["tcp", "udp", "th"]),
                elems.join(", ")
            )
        }
        _ => r.pick(&["accept", "drop", "reject"]).to_string(),
    };
    if !verdict.is_empty() {
        parts.push(verdict);
    }
    if parts.is_empty() {
        parts.push("counter".into());
    }
    parts.join(" ")
}

fn gen_ruleset(r: &mut Rng) -> String {
    let mut s = String::new();
    let nusers = r.below(4) as usize;
    let users: Vec<String> = (0..nusers).map(|i| format!("u{i}")).collect();
    let named = r.chance(60);
    s.push_str("table inet rf {\n");
    if named {
        let n = 1 + r.below(3);
        let items: Vec<String> = (0..n).map(|_| gen_addr_value(r, false)).collect();
        writeln!(
            s,
            "  set addrs {{ type ipv4_addr; flags interval; auto-merge; elements = {{ {} }} }}",
            items.join(", ")
        )
        .unwrap();
        let n = 1 + r.below(3);
        let items: Vec<String> = (0..n).map(|_| gen_port_value(r, false)).collect();
        writeln!(
            s,
            "  set ports {{ type inet_service; flags interval; auto-merge; elements = {{ {} }} }}",
            items.join(", ")
        )
        .unwrap();
        // Concatenated interval sets (the shape `ringfence generate` uses).
        let mut other = |r: &mut Rng| gen_addr_value(r, false);
        writeln!(
            s,
            "  set pairs {{ type ipv4_addr . ipv4_addr; flags interval; elements = {} }}",
            gen_tuples(r, &mut other, true)
        )
        .unwrap();
        let mut other = |r: &mut Rng| gen_port_value(r, false);
        writeln!(
            s,
            "  set svc {{ type ipv4_addr . inet_service; flags interval; elements = {} }}",
            gen_tuples(r, &mut other, true)
        )
        .unwrap();
    }
    let base = |s: &mut String, r: &mut Rng, name: &str, prio: i32| {
        let policy = if r.chance(50) { "accept" } else { "drop" };
        writeln!(
            s,
            "  chain {name} {{\n    type filter hook forward priority {prio}; policy {policy};"
        )
        .unwrap();
        s.push_str("    ct state established,related accept\n");
        for _ in 0..r.below(7) {
            writeln!(s, "    {}", gen_rule(r, &users, None, named)).unwrap();
        }
        s.push_str("  }\n");
    };
    let prio = -(r.below(20) as i32);
    base(&mut s, r, "first", prio);
    for (i, u) in users.iter().enumerate() {
        writeln!(s, "  chain {u} {{").unwrap();
        for _ in 0..r.below(5) {
            writeln!(s, "    {}", gen_rule(r, &users, Some(i), named)).unwrap();
        }
        s.push_str("  }\n");
    }
    let second_in_ip_table = r.chance(40);
    if r.chance(60) && !second_in_ip_table {
        let prio = 5 + r.below(20) as i32;
        base(&mut s, r, "second", prio);
    }
    s.push_str("}\n");
    if second_in_ip_table {
        // A second base chain in another family's table: jumps stay inside a table.
        s.push_str("table ip rf4 {\n");
        let saved = users.len();
        let policy = if r.chance(50) { "accept" } else { "drop" };
        writeln!(
            s,
            "  chain second {{\n    type filter hook forward priority {}; policy {policy};",
            5 + r.below(20)
        )
        .unwrap();
        s.push_str("    ct state established,related accept\n");
        for _ in 0..r.below(6) {
            writeln!(s, "    {}", gen_rule(r, &[], None, false)).unwrap();
        }
        s.push_str("  }\n}\n");
        let _ = saved;
    }
    s
}

/// The rules of a dump that match a concatenation (in a match or a verdict
/// map key), as the model names them.
fn concat_handles(dump: &str) -> Vec<RuleRef> {
    let doc: serde_json::Value = serde_json::from_str(dump).unwrap();
    let mut out = Vec::new();
    for item in doc["nftables"].as_array().unwrap() {
        let Some(rule) = item.get("rule") else {
            continue;
        };
        if rule["expr"].to_string().contains("\"concat\"") {
            out.push(RuleRef::NftHandle {
                family: rule["family"].as_str().unwrap().into(),
                table: rule["table"].as_str().unwrap().into(),
                chain: rule["chain"].as_str().unwrap().into(),
                handle: rule["handle"].as_u64().unwrap(),
            });
        }
    }
    out
}

// ---------------------------------------------------------------- evaluator

enum Flow {
    Verdict(Verdict),
    Fallthrough,
}

fn eval_chain(rs: &Ruleset, id: ChainId, p: &Packet, depth: u32) -> Flow {
    assert!(depth < 64, "jump depth: the generator makes no loops");
    for rule in &rs.chain(id).rules {
        if !rule.matches.matches_fields(p) {
            continue;
        }
        assert!(
            rule.matches.opaque.is_empty(),
            "rule {} is opaque for a generated packet: {:?}",
            rule.origin,
            rule.matches.opaque
        );
        match &rule.action {
            Action::Accept => return Flow::Verdict(Verdict::Accept),
            Action::Drop => return Flow::Verdict(Verdict::Drop),
            Action::Reject { .. } => return Flow::Verdict(Verdict::Reject),
            Action::Continue => {}
            Action::Mark(_) => unreachable!("these rulesets set no marks"),
            Action::Nat(_) => unreachable!("these rulesets translate no addresses"),
            Action::Return => return Flow::Fallthrough,
            Action::Jump { target } => {
                if let Flow::Verdict(v) = eval_chain(rs, *target, p, depth + 1) {
                    return Flow::Verdict(v);
                }
            }
            Action::Goto { target } => return eval_chain(rs, *target, p, depth + 1),
        }
    }
    Flow::Fallthrough
}

/// A packet's fate on a hook: every base chain must accept, in priority order.
fn reference_verdict(rs: &Ruleset, hook: Hook, p: &Packet) -> Verdict {
    for id in rs.base_chains(hook) {
        let v = match eval_chain(rs, id, p, 0) {
            Flow::Verdict(v) => v,
            Flow::Fallthrough => match rs.chain(id).base.as_ref().expect("base chain").policy {
                Policy::Accept => Verdict::Accept,
                Policy::Drop => Verdict::Drop,
            },
        };
        if v != Verdict::Accept {
            return v;
        }
    }
    Verdict::Accept
}

fn expected_outcome(v: Verdict) -> Outcome {
    match v {
        Verdict::Accept => Outcome::Connected,
        Verdict::Drop => Outcome::Timeout,
        Verdict::Reject => Outcome::Refused,
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_nft_rulesets_agree_with_the_kernel_on_every_probe() {
    if !ringfence_testkit::require!(
        ringfence_testkit::Need::Root,
        ringfence_testkit::Need::Tool("ip"),
        ringfence_testkit::Need::Tool("nft")
    ) {
        return;
    }
    let seed = env_num("RF_DIFF_SEED", 1);
    let rulesets = env_num("RF_DIFF_RULESETS", 50);
    let packets = env_num("RF_DIFF_PACKETS", 200) as usize;
    let mut r = Rng::new(seed);
    let tag = format!("nd{}", std::process::id());
    let lab = Lab::up(LabSpec {
        tag,
        hosts: HOSTS
            .iter()
            .map(|h| HostSpec {
                name: h.name.into(),
                subnet: (addr(h, 0), 24),
                addrs: h.addrs.iter().map(|&l| addr(h, l)).collect(),
            })
            .collect(),
        state_dir: std::env::temp_dir().join("ringfence-lab-tests"),
    })
    .unwrap();
    let mut binds = Vec::new();
    for h in &HOSTS {
        for &l in h.addrs {
            for &p in &PORTS {
                binds.push((lab.host_ns(h.name), SocketAddrV4::new(addr(h, l), p)));
            }
        }
    }
    let _listeners = Listeners::start_with(&binds, &binds).unwrap();
    let started = Instant::now();
    let mut used: HashSet<(Ipv4Addr, u16)> = HashSet::new();
    let mut disagreements = Vec::new();
    let mut tally = [0usize; 3];
    let mut rejected_by_nft = 0;
    let mut retried = 0;
    let mut with_concat = 0;
    let mut through_concat = 0;
    for n in 0..rulesets {
        // nft refuses some random combinations (e.g. `meta l4proto udp tcp sport ..`:
        // conflicting protocols); draw again, a bounded number of times.
        let mut attempts = 0;
        let text = loop {
            let text = gen_ruleset(&mut r);
            match lab.load_nft(&text) {
                Ok(()) => break text,
                Err(e) => {
                    attempts += 1;
                    assert!(attempts < 20, "ruleset {n}: 20 generated rulesets in a row did not load; last: {e}\n{text}");
                    rejected_by_nft += 1;
                    if std::env::var("RF_DIFF_SHOW_REFUSED").is_ok() {
                        eprintln!("refused by nft: {e}");
                    }
                }
            }
        };
        let dump = lab.dump_nft().unwrap();
        let concat_rules = concat_handles(&dump);
        if !concat_rules.is_empty() {
            with_concat += 1;
        }
        let model = ringfence_parse::nft::parse(&dump, "dump.json")
            .unwrap_or_else(|e| panic!("{e}\n{dump}"));
        let mut probes = Vec::with_capacity(packets);
        let mut expected = Vec::with_capacity(packets);
        for _ in 0..packets {
            let si = r.below(3) as usize;
            let di = (si + 1 + r.below(2) as usize) % 3;
            let (sh, dh) = (&HOSTS[si], &HOSTS[di]);
            let src = addr(sh, *r.pick(sh.addrs));
            let dst = addr(dh, *r.pick(dh.addrs));
            let sport = loop {
                let s = 10000 + r.below(55000) as u16;
                if used.insert((src, s)) {
                    break s;
                }
            };
            let dport = *r.pick(&PORTS);
            let udp = r.chance(30);
            let proto = if udp { 17 } else { 6 };
            let mut pkt =
                Packet::new_connection(IpAddr::V4(src), IpAddr::V4(dst), proto, sport, dport);
            pkt.iif = Some(lab.router_iface(sh.name));
            pkt.oif = Some(lab.router_iface(dh.name));
            pkt.ct_state = CtStates::NEW;
            let reference = reference_verdict(&model, Hook::Forward, &pkt);
            let traced = ringfence_analysis::trace(&model, Hook::Forward, &pkt);
            assert!(
                !traced.uncertain,
                "trace is uncertain for a generated packet: {pkt:?}\n{text}"
            );
            if traced.verdict != reference {
                disagreements.push(format!(
                    "ruleset {n}: trace says {:?} but the reference evaluator says {reference:?} for {pkt:?}\n--- loaded\n{text}",
                    traced.verdict
                ));
            }
            if traced.path.iter().any(|r| concat_rules.contains(r)) {
                through_concat += 1;
            }
            expected.push((expected_outcome(traced.verdict), pkt));
            probes.push(Probe {
                from_ns: lab.host_ns(sh.name),
                src: SocketAddrV4::new(src, sport),
                dst: SocketAddrV4::new(dst, dport),
                transport: if udp { Transport::Udp } else { Transport::Tcp },
            });
        }
        let mut got = probe_all(&probes, Duration::from_millis(400), 48).unwrap();
        // A loaded machine can make an answer late. Where the kernel seemed
        // silent but the model expects an answer, ask again with the same
        // packet (same tuple: still a new connection to conntrack) and a long
        // timeout; a real drop stays silent.
        let late: Vec<usize> = (0..got.len())
            .filter(|&i| got[i] == Outcome::Timeout && expected[i].0 != Outcome::Timeout)
            .collect();
        if !late.is_empty() {
            let again: Vec<Probe> = late.iter().map(|&i| probes[i].clone()).collect();
            let second = probe_all(&again, Duration::from_millis(2500), 16).unwrap();
            for (&i, o) in late.iter().zip(second) {
                got[i] = o;
            }
            retried += late.len();
        }
        for ((exp, pkt), got) in expected.iter().zip(&got) {
            tally[match got {
                Outcome::Connected => 0,
                Outcome::Refused => 1,
                Outcome::Timeout => 2,
            }] += 1;
            if exp != got {
                disagreements.push(format!(
                    "ruleset {n}: proto {} {}:{} -> {}:{} iif {:?} oif {:?}: model says {exp:?}, kernel did {got:?}\n--- loaded\n{text}",
                    pkt.protocol, pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.iif, pkt.oif
                ));
            }
        }
    }
    eprintln!(
        "nft differential: seed {seed}, {rulesets} rulesets x {packets} packets in {:.1?}: connected {}, refused {}, timeout {} ({rejected_by_nft} generated rulesets refused by nft and redrawn, {retried} silent probes asked again); {with_concat} rulesets with concatenations, {through_concat} probes matched a concatenation rule",
        started.elapsed(),
        tally[0],
        tally[1],
        tally[2]
    );
    drop(_listeners);
    lab.down().unwrap();
    assert!(
        disagreements.is_empty(),
        "{} disagreements with the kernel; first:\n{}",
        disagreements.len(),
        disagreements[0]
    );
    assert!(
        rulesets < 10 || through_concat > 0,
        "no probe matched a concatenation rule: the generator does not exercise them"
    );
    // The generator must exercise every outcome, or the test proves little.
    assert!(
        tally.iter().all(|&t| t > 0),
        "outcomes not all exercised: {tally:?}"
    );
}
