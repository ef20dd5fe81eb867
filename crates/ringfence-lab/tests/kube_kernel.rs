//! The Kubernetes-shaped fixtures (crates/ringfence-cli/tests/data/kube,
//! docs/kube-fixtures.md) against the Linux kernel: each fixture's
//! expectation file says, per test packet, which outcomes the node's ruleset
//! can give it (verdict, DNAT target, masquerade or not). This test proves
//! those expectations right without asking `trace`: it builds the node and
//! its neighbours in `rf-` namespaces from the file's `lab` section, loads
//! the ruleset with `ipset restore` and `iptables-restore`, sends real
//! connections and records where the kernel delivered each one, with which
//! source and destination.
//!
//! Observation: the agent of tests/kernel/pipeline.py (ringfence-analysis)
//! runs in every namespace, node included, listens on every port the file
//! names and records, through raw sockets, the first packet of every
//! connection its namespace's stack received. Each packet of the file is
//! sent alone (several tries with distinct source ports), so whatever the
//! agents record meanwhile belongs to it; source ports are not used to match
//! (`MASQUERADE --random-fully` rewrites them).
//!
//! Judgement per packet: every delivery must be one the expected accept
//! outcomes explain (the namespace holding the DNAT target or the
//! destination, that address and port, and as source the packet's own
//! address or, when masqueraded, the node's address on the link towards
//! that namespace); every accept outcome must be seen (a statistic branch
//! with probability p is missed in n tries with chance (1-p)^n: 40 tries
//! make that below 1e-7 for the smallest branch here, 1/3); a packet whose
//! outcomes are all drop or reject must be delivered nowhere, and the
//! sender must have seen the matching answer (reject: an error other than
//! EPERM; drop: silence, or EPERM when the node's own output drops it).

use ringfence_testkit::agent::{self, ArrivalAgent};
use ringfence_testkit::netns::Netns;
use ringfence_testkit::{repo, require, Need};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where the fixtures live.
const DATA: &str = "crates/ringfence-cli/tests/data/kube";

/// One expectation file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    #[allow(dead_code)]
    about: String,
    /// Ruleset files (iptables-save text, `ipset save` text), in DATA.
    ruleset: Vec<String>,
    /// The node's own addresses (`trace --local`).
    local: Vec<Ipv4Addr>,
    /// The node's links.
    lab: Vec<Link>,
    /// The test packets.
    packets: Vec<Case>,
}

/// One link of the node: a veth from `dev` on the node to `eth0` in `ns`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Link {
    dev: String,
    /// The node's address on `dev` (with prefix length).
    addr: String,
    ns: String,
    /// The neighbour's addresses (with prefix length).
    addrs: Vec<String>,
    /// Prefixes the node routes to the neighbour, which takes every address
    /// in them as its own (a stand-in for the rest of the world: service
    /// addresses that were not rewritten end up there and are seen).
    #[serde(default)]
    serves: Vec<String>,
}

/// One test packet and its expected outcomes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[allow(dead_code)]
    why: String,
    packet: Pkt,
    verdict: String,
    outcomes: Vec<Outcome>,
    /// Why `trace` cannot tell this packet's outcomes apart (it may list
    /// more than the kernel's, never fewer): read by the trace test only.
    #[serde(default)]
    #[allow(dead_code)]
    trace_widens: Option<String>,
}

/// A packet line as `trace --packets` reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pkt {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: String,
    dport: u16,
    #[allow(dead_code)]
    iif: Option<String>,
    #[allow(dead_code)]
    oif: Option<String>,
    #[serde(default)]
    from_host: bool,
}

/// One expected outcome, as `trace` writes it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Outcome {
    verdict: String,
    path: String,
    dnat: Option<String>,
    snat: Option<String>,
}

fn load(name: &str) -> Fixture {
    let path = repo::path(&format!("{DATA}/{name}"));
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The address part of `198.18.0.1/24`.
fn ip_of(cidr: &str) -> Ipv4Addr {
    cidr.split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("not an address: {cidr}"))
}

/// Whether `a` is in `prefix` (`198.18.32.0/23`).
fn in_prefix(a: Ipv4Addr, prefix: &str) -> bool {
    let (net, len) = prefix.split_once('/').expect("prefix with a length");
    let net: Ipv4Addr = net.parse().expect("prefix address");
    let len: u32 = len.parse().expect("prefix length");
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(a) & mask == u32::from(net) & mask
}

fn in_lab_range(a: Ipv4Addr) -> bool {
    in_prefix(a, "198.18.0.0/15")
}

fn proto_number(p: &str) -> u8 {
    match p {
        "tcp" => 6,
        "udp" => 17,
        other => panic!("the kernel test sends tcp and udp only, not {other}"),
    }
}

/// `IP:PORT` of a DNAT target.
fn parse_target(s: &str) -> (Ipv4Addr, u16) {
    let (a, p) = s
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("dnat {s:?}: expected IP:PORT"));
    (
        a.parse().expect("dnat address"),
        p.parse().expect("dnat port"),
    )
}

impl Fixture {
    /// The namespace (by its name in the file; "node" for the node) that
    /// holds `a`.
    fn owner(&self, a: Ipv4Addr) -> Option<&str> {
        for l in &self.lab {
            if l.addrs.iter().any(|c| ip_of(c) == a) || l.serves.iter().any(|p| in_prefix(a, p)) {
                return Some(&l.ns);
            }
        }
        self.local.contains(&a).then_some("node")
    }

    /// The node's address on the link towards `ns` (what MASQUERADE picks).
    fn node_side(&self, ns: &str) -> Ipv4Addr {
        let l = self
            .lab
            .iter()
            .find(|l| l.ns == ns)
            .unwrap_or_else(|| panic!("no link to {ns}"));
        ip_of(&l.addr)
    }

    /// Every port an agent must listen on.
    fn ports(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self
            .packets
            .iter()
            .flat_map(|c| {
                std::iter::once(c.packet.dport).chain(
                    c.outcomes
                        .iter()
                        .filter_map(|o| o.dnat.as_deref().map(|d| parse_target(d).1)),
                )
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// A delivery an accept outcome predicts, or an agent recorded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Delivery {
    ns: String,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    dport: u16,
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{} in {} from {}",
            self.dst, self.dport, self.ns, self.src
        )
    }
}

fn predicted(fx: &Fixture, c: &Case, o: &Outcome) -> Delivery {
    let (dst, dport) = match o.dnat.as_deref() {
        Some(d) => parse_target(d),
        None => (c.packet.dst, c.packet.dport),
    };
    let ns = fx
        .owner(dst)
        .unwrap_or_else(|| panic!("{}: no namespace holds {dst}", c.name))
        .to_string();
    let src = match o.snat.as_deref() {
        None => c.packet.src,
        Some("masquerade") => fx.node_side(&ns),
        Some(other) => ip_of(other),
    };
    Delivery {
        ns,
        src,
        dst,
        dport,
    }
}

/// The arrival agent of one lab namespace, with the name the fixture uses
/// for that namespace.
struct Agent {
    label: String,
    agent: ArrivalAgent,
}

impl Agent {
    fn start(label: &str, ns: &Netns, ports: &[u16]) -> Agent {
        Agent {
            label: label.to_string(),
            agent: ArrivalAgent::start(ns, ports),
        }
    }

    /// What arrived since the last dump: (proto, delivery, source port).
    fn dump(&mut self) -> Vec<(u8, Delivery, u16)> {
        self.agent
            .dump()
            .into_iter()
            .map(|r| {
                let (IpAddr::V4(src), IpAddr::V4(dst)) = (r.src, r.dst) else {
                    panic!(
                        "the agent in {} recorded a non-IPv4 packet: {r:?}",
                        self.label
                    );
                };
                let d = Delivery {
                    ns: self.label.clone(),
                    src,
                    dst,
                    dport: r.dport,
                };
                (r.proto, d, r.sport)
            })
            .collect()
    }
}

/// The node and its neighbours. Field order: agents die before the
/// namespaces go (every exit path, panics included).
struct Lab {
    agents: Vec<Agent>,
    peers: HashMap<String, Netns>,
    node: Netns,
}

const ICMP_UNLIMITED: [&str; 3] = [
    "net.ipv4.icmp_ratelimit=0",
    "net.ipv4.icmp_msgs_per_sec=100000",
    "net.ipv4.icmp_msgs_burst=100000",
];

impl Lab {
    fn build(fx: &Fixture) -> Lab {
        let node = Netns::new("kk");
        node.sysctl(&ICMP_UNLIMITED);
        node.sysctl(&[
            "net.ipv4.ip_forward=1",
            // A hairpin leaves by the link it came in on: no redirects, so
            // every try crosses the node's ruleset.
            "net.ipv4.conf.all.send_redirects=0",
            "net.ipv4.conf.default.send_redirects=0",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ]);
        let mut peers = HashMap::new();
        for l in &fx.lab {
            assert!(
                !peers.contains_key(&l.ns),
                "namespace {} has two links: one link per neighbour",
                l.ns
            );
            let peer = Netns::new("kk");
            peer.sysctl(&ICMP_UNLIMITED);
            peer.sysctl(&["net.ipv4.conf.all.accept_redirects=0"]);
            node.veth(&l.dev, &peer, "eth0");
            // A neighbour with several addresses (Antrea's pods behind one
            // gateway) gets packets from its own addresses back through the
            // node (pod to service to pod): take them, as separate pods would.
            peer.sysctl(&[
                "net.ipv4.conf.all.accept_local=1",
                "net.ipv4.conf.eth0.accept_local=1",
            ]);
            node.addr(&l.dev, &l.addr);
            let gw = ip_of(&l.addr).to_string();
            for a in &l.addrs {
                peer.addr("eth0", a);
                node.ip(&[
                    "route",
                    "replace",
                    &format!("{}/32", ip_of(a)),
                    "dev",
                    &l.dev,
                ]);
            }
            peer.ip(&["route", "replace", &format!("{gw}/32"), "dev", "eth0"]);
            peer.ip(&[
                "route", "add", "default", "via", &gw, "dev", "eth0", "onlink",
            ]);
            let first = ip_of(&l.addrs[0]).to_string();
            for p in &l.serves {
                node.ip(&["route", "add", p, "via", &first, "dev", &l.dev]);
                peer.ip(&["route", "add", "local", p, "dev", "lo"]);
            }
            peers.insert(l.ns.clone(), peer);
        }
        // Sets first: the rules that name them would not load otherwise.
        let mut files: Vec<(String, String)> = fx
            .ruleset
            .iter()
            .map(|f| {
                let p = repo::path(&format!("{DATA}/{f}"));
                let text = std::fs::read_to_string(&p)
                    .unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                (f.clone(), text)
            })
            .collect();
        files.sort_by_key(|(_, t)| !t.starts_with("create "));
        for (_, text) in &files {
            if text.starts_with("create ") {
                node.ok("ipset", &["restore"], text.as_bytes());
            } else {
                node.load_iptables(text);
            }
        }
        // The fixtures are iptables-save text as the kernel gives it back:
        // the same chains with the same policies, and every chain's rules
        // in the same order and spelling.
        let saved = node.ok("iptables-save", &[], b"");
        for (name, text) in &files {
            if !text.starts_with("create ") {
                assert_eq!(
                    save_shape(text),
                    save_shape(&saved),
                    "{name} is not what iptables-save prints after loading it"
                );
            }
        }
        let ports = fx.ports();
        let mut agents = vec![Agent::start("node", &node, &ports)];
        for l in &fx.lab {
            agents.push(Agent::start(&l.ns, &peers[&l.ns], &ports));
        }
        Lab {
            agents,
            peers,
            node,
        }
    }

    fn ns(&self, name: &str) -> &Netns {
        if name == "node" {
            &self.node
        } else {
            &self.peers[name]
        }
    }

    fn dump(&mut self) -> Vec<(u8, Delivery, u16)> {
        self.agents.iter_mut().flat_map(|a| a.dump()).collect()
    }
}

/// iptables-save text as (table, chain) -> (policy, rules in order), without
/// comments and counters.
fn save_shape(text: &str) -> BTreeMap<(String, String), (String, Vec<String>)> {
    let mut out: BTreeMap<(String, String), (String, Vec<String>)> = BTreeMap::new();
    let mut table = String::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_string();
        } else if let Some(decl) = line.strip_prefix(':') {
            let mut w = decl.split_whitespace();
            let chain = w.next().unwrap_or_default().to_string();
            let policy = w.next().unwrap_or_default().to_string();
            out.entry((table.clone(), chain)).or_default().0 = policy;
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let chain = rule
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            out.entry((table.clone(), chain))
                .or_default()
                .1
                .push(line.to_string());
        }
    }
    out
}

/// How long a sender waits: below the first SYN retransmission (1 s).
const SEND_TIMEOUT: &str = "0.5";

/// Send `sports.len()` tries of the packet from namespace `from`; the
/// sender's view of each ("accept", "reject:ERRNO", "drop").
fn send(lab: &Lab, from: &str, p: &Pkt, sports: &[u16]) -> Vec<String> {
    let ns = lab.ns(from);
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3"])
        .arg(agent::script())
        .args(["send", SEND_TIMEOUT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a sender");
    let lines: String = sports
        .iter()
        .map(|s| {
            format!(
                "{{\"proto\":{},\"src\":\"{}\",\"sport\":{s},\"dst\":\"{}\",\"dport\":{}}}\n",
                proto_number(&p.proto),
                p.src,
                p.dst,
                p.dport
            )
        })
        .collect();
    child
        .stdin
        .take()
        .expect("sender stdin")
        .write_all(lines.as_bytes())
        .expect("sender stdin");
    let out = child.wait_with_output().expect("sender");
    assert!(out.status.success(), "a sender failed");
    serde_json::from_slice(&out.stdout).expect("sender output")
}

/// What one packet gave: tries, deliveries by kind, sender views.
struct Seen {
    tries: usize,
    deliveries: BTreeMap<Delivery, usize>,
    senders: BTreeMap<String, usize>,
}

impl Seen {
    fn line(&self) -> String {
        let d: Vec<String> = self
            .deliveries
            .iter()
            .map(|(d, n)| format!("{d} x{n}"))
            .collect();
        format!(
            "{} tries; delivered: {}; senders saw {:?}",
            self.tries,
            if d.is_empty() {
                "nowhere".to_string()
            } else {
                d.join(", ")
            },
            self.senders
        )
    }
}

fn observe(lab: &mut Lab, fx: &Fixture, c: &Case, next_sport: &mut u16) -> Seen {
    let tries = if c.outcomes.len() > 1 { 40 } else { 4 };
    let sports: Vec<u16> = (0..tries)
        .map(|_| {
            let s = *next_sport;
            *next_sport += 1;
            s
        })
        .collect();
    let from = if c.packet.from_host {
        "node"
    } else {
        fx.owner(c.packet.src)
            .unwrap_or_else(|| panic!("{}: no namespace holds {}", c.name, c.packet.src))
    };
    let said = send(lab, from, &c.packet, &sports);
    let proto = proto_number(&c.packet.proto);
    let any_accept = c.outcomes.iter().any(|o| o.verdict == "accept");
    let mut got = Vec::new();
    for round in 0..3 {
        if round > 0 {
            // A loaded machine can deliver late.
            std::thread::sleep(Duration::from_millis(500));
        }
        got.extend(lab.dump().into_iter().filter(|(pr, d, _)| {
            // A UDP answer back to the sender is not a delivery of the probe.
            !(*pr == proto && proto == 17 && d.dst == c.packet.src && sports.contains(&d.dport))
        }));
        if !any_accept || got.len() >= tries {
            break;
        }
    }
    let mut deliveries = BTreeMap::new();
    for (_, d, _) in got {
        *deliveries.entry(d).or_insert(0) += 1;
    }
    let mut senders = BTreeMap::new();
    for s in said {
        *senders.entry(s).or_insert(0) += 1;
    }
    Seen {
        tries,
        deliveries,
        senders,
    }
}

/// Why the kernel's behaviour does not match the expectation, if it does not.
fn judge(fx: &Fixture, c: &Case, seen: &Seen) -> Option<String> {
    let accepts: Vec<Delivery> = c
        .outcomes
        .iter()
        .filter(|o| o.verdict == "accept")
        .map(|o| predicted(fx, c, o))
        .collect();
    for d in seen.deliveries.keys() {
        if !accepts.contains(d) {
            return Some(format!(
                "delivered as {d}, which no expected outcome explains"
            ));
        }
    }
    for d in &accepts {
        if !seen.deliveries.contains_key(d) {
            return Some(format!("never delivered as {d}"));
        }
    }
    let total: usize = seen.deliveries.values().sum();
    if accepts.len() == c.outcomes.len() && total != seen.tries {
        return Some(format!(
            "every outcome accepts, but {total} of {} tries were delivered",
            seen.tries
        ));
    }
    if accepts.is_empty() {
        let verdicts: Vec<&str> = c.outcomes.iter().map(|o| o.verdict.as_str()).collect();
        let fine = |s: &str| match verdicts.as_slice() {
            ["reject"] => s.starts_with("reject:") && s != "reject:1",
            ["drop"] if c.packet.from_host => s == "reject:1",
            ["drop"] => s == "drop",
            _ => true,
        };
        if let Some(bad) = seen.senders.keys().find(|s| !fine(s)) {
            return Some(format!(
                "the sender saw {bad}, which does not fit {verdicts:?}"
            ));
        }
    }
    None
}

/// Build the lab of `file`, send every packet and fail with every mismatch.
fn check_fixture(file: &str) {
    let fx = load(file);
    let mut lab = Lab::build(&fx);
    let mut next_sport = 20000;
    let mut report = Vec::new();
    let mut bad = Vec::new();
    for c in &fx.packets {
        let seen = observe(&mut lab, &fx, c, &mut next_sport);
        let line = format!("{file} {}: {}", c.name, seen.line());
        if let Some(why) = judge(&fx, c, &seen) {
            bad.push(format!("{line}\n  expected {:?}\n  {why}", c.outcomes));
        }
        report.push(line);
    }
    println!("{}", report.join("\n"));
    assert!(
        bad.is_empty(),
        "{} of {} packets disagree with the kernel:\n{}",
        bad.len(),
        fx.packets.len(),
        bad.join("\n")
    );
}

fn needs() -> bool {
    require!(
        Need::Root,
        Need::Tool("ip"),
        Need::Tool("iptables-restore"),
        Need::Tool("ipset"),
        Need::Tool("python3")
    )
}

#[test]
fn kube_proxy_fixture_expectations_hold_in_the_kernel() {
    if !needs() {
        return;
    }
    check_fixture("kube-proxy.json");
}

#[test]
fn calico_fixture_expectations_hold_in_the_kernel() {
    if !needs() {
        return;
    }
    check_fixture("calico.json");
}

#[test]
fn antrea_fixture_expectations_hold_in_the_kernel() {
    if !needs() {
        return;
    }
    check_fixture("antrea.json");
}

/// What can be checked without a kernel: the files are consistent with
/// themselves and stay inside the lab's address range.
#[test]
fn kube_expectation_files_are_consistent_and_use_lab_addresses_only() {
    for file in ["kube-proxy.json", "calico.json", "antrea.json"] {
        let fx = load(file);
        for a in &fx.local {
            assert!(in_lab_range(*a), "{file}: local {a} outside 198.18.0.0/15");
        }
        for l in &fx.lab {
            for c in std::iter::once(&l.addr).chain(&l.addrs).chain(&l.serves) {
                assert!(in_lab_range(ip_of(c)), "{file}: {c} outside 198.18.0.0/15");
            }
            assert!(
                l.dev.len() <= 15,
                "{file}: interface name {} too long",
                l.dev
            );
        }
        let mut names = std::collections::HashSet::new();
        for c in &fx.packets {
            assert!(names.insert(&c.name), "{file}: {} twice", c.name);
            let p = &c.packet;
            assert!(
                in_lab_range(p.src) && in_lab_range(p.dst),
                "{file}: {}",
                c.name
            );
            if p.from_host {
                assert!(
                    fx.local.contains(&p.src),
                    "{file}: {}: a from_host source must be local",
                    c.name
                );
            } else {
                assert!(
                    fx.owner(p.src).is_some_and(|o| o != "node"),
                    "{file}: {}: no neighbour holds {}",
                    c.name,
                    p.src
                );
            }
            assert!(!c.outcomes.is_empty(), "{file}: {}: no outcome", c.name);
            let first = &c.outcomes[0].verdict;
            let verdict = if c.outcomes.iter().all(|o| &o.verdict == first) {
                first.as_str()
            } else {
                "depends"
            };
            assert_eq!(
                c.verdict, verdict,
                "{file}: {}: verdict and outcomes disagree",
                c.name
            );
            for o in &c.outcomes {
                assert!(
                    ["accept", "drop", "reject"].contains(&o.verdict.as_str()),
                    "{file}: {}",
                    c.name
                );
                let want_path = match (p.from_host, fx.local.contains(&p.dst), &o.dnat) {
                    (true, _, _) => "output",
                    (false, true, None) => "input",
                    _ => "forward",
                };
                assert_eq!(o.path, want_path, "{file}: {}: path", c.name);
                if let Some(d) = &o.dnat {
                    let (a, _) = parse_target(d);
                    assert!(
                        fx.owner(a).is_some(),
                        "{file}: {}: no namespace holds {a}",
                        c.name
                    );
                }
                assert!(
                    o.snat.is_none() || o.snat.as_deref() == Some("masquerade"),
                    "{file}: {}: snat is masquerade or null here",
                    c.name
                );
            }
            for (i, o) in c.outcomes.iter().enumerate() {
                assert!(
                    !c.outcomes[..i].contains(o),
                    "{file}: {}: an outcome twice",
                    c.name
                );
            }
        }
    }
}

/// Every fixture is read by the parser the analyses use (with its ipset
/// file), and Calico's `-p ipencap` (IP-in-IP, protocol 4, the name
/// `/etc/protocols` gives it) is protocol 4, not an error.
#[test]
fn kube_fixtures_parse_with_calicos_ipencap_as_protocol_4() {
    use ringfence_model::IntervalSet;
    use ringfence_parse::{parse_rulesets_for, Families, RulesetFormat};
    for file in ["kube-proxy.json", "calico.json", "antrea.json"] {
        let fx = load(file);
        let texts: Vec<(String, String)> = fx
            .ruleset
            .iter()
            .map(|f| {
                let p = repo::path(&format!("{DATA}/{f}"));
                (
                    std::fs::read_to_string(&p).expect("read the ruleset"),
                    f.clone(),
                )
            })
            .collect();
        let inputs: Vec<(&str, &str)> = texts
            .iter()
            .map(|(t, n)| (t.as_str(), n.as_str()))
            .collect();
        let rs = parse_rulesets_for(
            &inputs,
            RulesetFormat::Auto,
            Families {
                v4: true,
                v6: false,
            },
        )
        .unwrap_or_else(|e| panic!("{file}: {e:?}"));
        let ipip: Vec<_> = rs
            .chains
            .iter()
            .flat_map(|c| &c.rules)
            .filter(|r| r.comment.as_deref().is_some_and(|c| c.contains("IPinIP")))
            .collect();
        if file == "calico.json" {
            assert_eq!(ipip.len(), 2, "one IPIP drop per workload");
            for r in ipip {
                assert_eq!(r.matches.protocol, IntervalSet::single(4u8));
            }
        }
    }
}
