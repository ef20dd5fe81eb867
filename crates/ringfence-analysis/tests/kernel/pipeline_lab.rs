//! What the two pipeline kernel differential tests share (included with
//! `#[path]` by `ringfence-analysis/tests/kernel_pipeline.rs` and
//! `ringfence-lab/tests/nft_pipeline_differential.rs`): the lab, the probes,
//! how the kernel's fate of a probe is observed and how it is judged against
//! `trace`'s outcomes.
//!
//! Lab: `netns::Line3`, client 198.18.0.10-17 — router (rfc0 198.18.0.1,
//! rfs0 198.18.1.1) — server 198.18.1.10-17. Probes take the three paths the
//! model names: forward (client to a server address), input (client to one
//! of the router's addresses) and output (router to a server address).
//!
//! Observation: an agent (tests/kernel/pipeline.py) in the server and in the
//! router namespace records, through raw IP sockets, the first packet of each
//! connection that netfilter delivered to that namespace's own stack. A probe
//! "arrived" when the agent of its destination namespace recorded its tuple;
//! replies play no part, so rules that drop them cannot disturb the verdict.
//! Whether a packet that did not arrive was dropped or rejected is not
//! judged: the reject's answer crosses the router's own output chains, which
//! the random rulesets also fill.

use ringfence_analysis::trace::{Decision, TraceOutcome};
use ringfence_analysis::{TraceResult, Tracer};
use ringfence_model::{Hook, IntervalSet, Packet, Ruleset};
use ringfence_testkit::agent::{self, ArrivalAgent};
use ringfence_testkit::netns::{Line3, Line3Spec};
use ringfence_testkit::Netns;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Ports the agents listen on (TCP and UDP) and probes go to.
pub const PORTS: [u16; 8] = [22, 80, 443, 1000, 1001, 2000, 5000, 8080];
/// Router device facing the client.
pub const ROUTER_IN: &str = "rfc0";
/// Router device facing the server.
pub const ROUTER_OUT: &str = "rfs0";
/// The router's address on `ROUTER_IN`.
pub const ROUTER_IN_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The router's address on `ROUTER_OUT`.
pub const ROUTER_OUT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);

/// The router's own addresses, as `trace --local` takes them: after a
/// rewrite they decide whether a packet is delivered to the router (input)
/// or sent on (forward).
pub fn router_addrs() -> ringfence_model::LocalAddrs {
    ringfence_model::LocalAddrs::new([
        std::net::IpAddr::V4(ROUTER_IN_ADDR),
        std::net::IpAddr::V4(ROUTER_OUT_ADDR),
    ])
}
/// Client hosts 198.18.0.10 .. 198.18.0.(10+HOSTS-1); servers alike in 198.18.1.0/24.
pub const HOSTS: u8 = 8;
/// How long a sender waits for answers: below the first SYN retransmission (1 s).
const SEND_TIMEOUT: &str = "0.5";

/// The i-th client address.
pub fn client(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 10 + i)
}

/// The i-th server address.
pub fn server(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, 10 + i)
}

/// The seeded generator every kernel test draws from (failures replay by seed).
pub use ringfence_testkit::Rng;

/// A numeric environment override (`RF_KERNEL_RULESETS=10`).
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Which of the model's paths a probe takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Client to server, through the router.
    Forward,
    /// Client to the router itself.
    Input,
    /// The router to the server.
    Output,
}

impl Way {
    fn hook(self) -> Hook {
        match self {
            Way::Forward => Hook::Forward,
            Way::Input => Hook::Input,
            Way::Output => Hook::Output,
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// Where a delivered packet was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The server namespace.
    Server,
    /// The router namespace (its own stack).
    Router,
}

/// One probe: the first packet of a TCP connection or a UDP exchange.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Its path.
    pub way: Way,
    /// 6 or 17.
    pub proto: u8,
    /// Source address (bound).
    pub src: Ipv4Addr,
    /// Source port (bound, unique in the run).
    pub sport: u16,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Destination port.
    pub dport: u16,
    /// UDP payload bytes (TCP: 0, the SYN carries none).
    pub payload: u16,
    /// ICMP type of an ICMP probe (8 echo request, 13 timestamp request;
    /// its identifier is `sport`); 0 otherwise.
    pub icmp_type: u8,
}

/// The IP length of a Linux TCP SYN as a connect() sends it: 20 bytes of IP
/// header, 20 of TCP header and 20 of options (MSS, SACK permitted,
/// timestamps, window scale: the per-namespace defaults).
pub const TCP_SYN_LENGTH: u32 = 60;

/// UDP payload sizes the probes use, so length matches meet and miss them.
pub const UDP_PAYLOADS: [u16; 4] = [2, 12, 100, 600];

impl Probe {
    /// The IP length of the probe's first packet.
    pub fn length(&self) -> u32 {
        match self.proto {
            17 => 20 + 8 + u32::from(self.payload),
            // Echo: 8 header and 8 payload bytes; timestamp: 20 bytes.
            1 if self.icmp_type == 8 => 20 + 16,
            1 => 20 + 20,
            _ => TCP_SYN_LENGTH,
        }
    }

    /// The packet `trace` is asked about.
    pub fn packet(&self) -> Packet {
        let icmp = self.proto == 1;
        let mut p = Packet::new_connection(
            IpAddr::V4(self.src),
            IpAddr::V4(self.dst),
            self.proto,
            if icmp { 0 } else { self.sport },
            if icmp { 0 } else { self.dport },
        );
        if icmp {
            p.icmp_type = Some(self.icmp_type);
            p.icmp_code = Some(0);
        }
        p.iif = (self.way != Way::Output).then(|| ROUTER_IN.to_string());
        // Every address a DNAT of the generated rulesets sends a packet on
        // to is a server behind ROUTER_OUT, so an input probe rerouted to
        // forward leaves there; before routing the stages hide it anyway.
        p.oif = Some(ROUTER_OUT.to_string());
        p.length = Some(self.length());
        p
    }

    fn json(&self) -> String {
        format!(
            "{{\"proto\":{},\"src\":\"{}\",\"sport\":{},\"dst\":\"{}\",\"dport\":{},\"payload\":{},\"icmp_type\":{}}}\n",
            self.proto, self.src, self.sport, self.dst, self.dport, self.payload, self.icmp_type
        )
    }

    /// One line for a report.
    pub fn describe(&self) -> String {
        let p = self.packet();
        format!(
            "{:?} {} {}:{} -> {}:{} length {} iif {:?} oif {:?}",
            self.way,
            match (self.proto, self.icmp_type) {
                (6, _) => "tcp",
                (17, _) => "udp",
                (_, 8) => "icmp echo-request (id as sport)",
                _ => "icmp timestamp-request (id as sport)",
            },
            self.src,
            self.sport,
            self.dst,
            self.dport,
            self.length(),
            p.iif,
            p.oif
        )
    }
}

/// `n` random probes over the three paths; source ports come from `next_sport`
/// (never reused in a run, so every probe is a new connection to conntrack).
pub fn random_probes(rng: &mut Rng, n: usize, next_sport: &mut u16) -> Vec<Probe> {
    (0..n)
        .map(|_| {
            let way = match rng.below(20) {
                0..=10 => Way::Forward,
                11..=15 => Way::Input,
                _ => Way::Output,
            };
            let (src, dst) = match way {
                Way::Forward => (
                    client(rng.below(HOSTS as u64) as u8),
                    server(rng.below(HOSTS as u64) as u8),
                ),
                Way::Input => (
                    client(rng.below(HOSTS as u64) as u8),
                    *rng.pick(&[ROUTER_IN_ADDR, ROUTER_OUT_ADDR]),
                ),
                Way::Output => (
                    *rng.pick(&[ROUTER_OUT_ADDR, ROUTER_OUT_ADDR, ROUTER_IN_ADDR]),
                    server(rng.below(HOSTS as u64) as u8),
                ),
            };
            let sport = *next_sport;
            *next_sport = next_sport.checked_add(1).expect("source ports exhausted");
            let proto = match rng.below(100) {
                0..=11 => 1,
                12..=37 => 17,
                _ => 6,
            };
            Probe {
                way,
                proto,
                src,
                sport,
                dst,
                dport: *rng.pick(&PORTS),
                payload: if proto == 17 {
                    *rng.pick(&UDP_PAYLOADS)
                } else {
                    0
                },
                icmp_type: if proto == 1 {
                    *rng.pick(&[8, 8, 13])
                } else {
                    0
                },
            }
        })
        .collect()
}

/// A packet as an agent recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arrival {
    /// Which namespace's stack received it.
    pub side: Side,
    /// Source address as received.
    pub src: Ipv4Addr,
    /// Destination address as received.
    pub dst: Ipv4Addr,
    /// Destination port as received.
    pub dport: u16,
}

/// What one agent recorded since its last dump, filed by `(proto, sport)`.
fn dump_into(agent: &mut ArrivalAgent, side: Side, into: &mut HashMap<(u8, u16), Vec<Arrival>>) {
    for r in agent.dump() {
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (r.src, r.dst) else {
            panic!("the agent recorded a non-IPv4 packet: {r:?}");
        };
        let a = Arrival {
            side,
            src,
            dst,
            dport: r.dport,
        };
        let v = into.entry((r.proto, r.sport)).or_default();
        if !v.contains(&a) {
            v.push(a);
        }
    }
}

/// The namespaces and agents; agents die and namespaces go on drop, panics included.
pub struct PipeLab {
    // Field order: agents are killed before the namespaces are removed.
    server_agent: ArrivalAgent,
    router_agent: ArrivalAgent,
    /// Client, router and server.
    pub net: Line3,
}

impl PipeLab {
    /// Build the lab (namespace tag `tag`, a few letters) and start the agents.
    pub fn new(tag: &str) -> PipeLab {
        let net = Line3::new(&Line3Spec {
            tag,
            router_in: (ROUTER_IN, "198.18.0.1/24"),
            router_out: (ROUTER_OUT, "198.18.1.1/24"),
            client_addrs: (0..HOSTS).map(|h| format!("{}/24", client(h))).collect(),
            server_addrs: (0..HOSTS).map(|h| format!("{}/24", server(h))).collect(),
        });
        PipeLab {
            server_agent: ArrivalAgent::start(&net.server, &PORTS),
            router_agent: ArrivalAgent::start(&net.router, &PORTS),
            net,
        }
    }

    /// The router, where rulesets are loaded.
    pub fn router(&self) -> &Netns {
        &self.net.router
    }

    /// Send every probe (client and router senders at once) and collect what
    /// the agents recorded; returns the senders' own view per probe.
    fn send(
        &mut self,
        probes: &[Probe],
        seen: &mut HashMap<(u8, u16), Vec<Arrival>>,
    ) -> Vec<String> {
        let groups = [
            (
                &self.net.client,
                probes
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.way != Way::Output)
                    .collect::<Vec<_>>(),
            ),
            (
                &self.net.router,
                probes
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.way == Way::Output)
                    .collect(),
            ),
        ];
        let mut running = Vec::new();
        for (ns, group) in &groups {
            if group.is_empty() {
                continue;
            }
            let mut child = Command::new("ip")
                .args(["netns", "exec", &ns.name, "python3"])
                .arg(agent::script())
                .args(["send", SEND_TIMEOUT])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a sender");
            let lines: String = group.iter().map(|(_, p)| p.json()).collect();
            child
                .stdin
                .take()
                .expect("sender stdin")
                .write_all(lines.as_bytes())
                .expect("sender stdin");
            running.push((child, group.iter().map(|(i, _)| *i).collect::<Vec<_>>()));
        }
        let mut said = vec![String::new(); probes.len()];
        for (child, idx) in running {
            let out = child.wait_with_output().expect("sender");
            assert!(out.status.success(), "a sender failed");
            let v: Vec<String> = serde_json::from_slice(&out.stdout).expect("sender output");
            assert_eq!(v.len(), idx.len());
            for (i, s) in idx.into_iter().zip(v) {
                said[i] = s;
            }
        }
        self.dump(seen);
        said
    }

    fn dump(&mut self, seen: &mut HashMap<(u8, u16), Vec<Arrival>>) {
        dump_into(&mut self.server_agent, Side::Server, seen);
        dump_into(&mut self.router_agent, Side::Router, seen);
    }
}

/// What one outcome of `trace` says the kernel does with the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// Delivered there, as this packet.
    Arrives(Arrival),
    /// Dropped or rejected on the way.
    Nowhere,
    /// An outcome the model cannot follow: anything.
    Anything,
}

fn parse_dnat(s: &str, dport: u16) -> Option<(Ipv4Addr, u16)> {
    match s.rsplit_once(':') {
        Some((a, p)) => Some((a.parse().ok()?, p.parse().ok()?)),
        None => Some((s.parse().ok()?, dport)),
    }
}

fn expect(o: &TraceOutcome, p: &Probe) -> Expect {
    match o.verdict {
        Decision::Unknown => Expect::Anything,
        Decision::Drop | Decision::Reject => Expect::Nowhere,
        Decision::Accept => {
            // An ICMP probe has no port: the agent records 0.
            let port = if p.proto == 1 { 0 } else { p.dport };
            let (dst, dport) = match o.dnat.as_deref() {
                None => (p.dst, port),
                Some(d) => match parse_dnat(d, port) {
                    Some(x) => x,
                    None => return Expect::Anything,
                },
            };
            let src = match o.snat.as_deref() {
                None => p.src,
                // The router's address on the server side, where every
                // forwarded and output probe leaves.
                Some("masquerade") => ROUTER_OUT_ADDR,
                Some(s) => match s.split(':').next().and_then(|a| a.parse().ok()) {
                    Some(a) => a,
                    None => return Expect::Anything,
                },
            };
            // A packet the router sends to loopback (a REDIRECT in output)
            // comes back to the router itself.
            let side = if o.path == Hook::Input
                || dst == ROUTER_IN_ADDR
                || dst == ROUTER_OUT_ADDR
                || dst.is_loopback()
            {
                Side::Router
            } else {
                Side::Server
            };
            Expect::Arrives(Arrival {
                side,
                src,
                dst,
                dport,
            })
        }
    }
}

/// Counts over a run, for the summary line and the "does the generator
/// exercise it" checks.
#[derive(Debug, Default)]
pub struct Tally {
    /// Per path (forward, input, output): [arrived, did not arrive].
    pub fate: [[usize; 2]; 3],
    /// Probes with one outcome, compared for equality.
    pub single: usize,
    /// Probes with several outcomes (a statistic-like rule on the way).
    pub several: usize,
    /// Probes with an unknown outcome among them.
    pub unknown: usize,
    /// Probes with several outcomes whose one outcome on the settled
    /// ruleset ([`resolve`]) was compared as well.
    pub settled: usize,
    /// Probes whose arrival was late and asked for again.
    pub late: usize,
    /// The senders' view: accept, reject, drop.
    pub sender: [usize; 3],
}

impl Tally {
    /// Fail on any disagreement with the kernel, then, for a sample of at
    /// least ten rulesets, on a generator that does not exercise what the
    /// test is for: each path both arrived and not, probes with several
    /// outcomes (`two_branch` names the rule kind that makes them) and some
    /// of them settled, no unknown outcome unless `rewrites` are generated,
    /// and more single-outcome probes than several-outcome ones.
    pub fn assert_sample(
        &self,
        disagreements: &[String],
        rulesets: u64,
        two_branch: &str,
        rewrites: bool,
    ) {
        assert!(
            disagreements.is_empty(),
            "{} disagreements with the kernel; the first:\n{}",
            disagreements.len(),
            disagreements[0]
        );
        if rulesets < 10 {
            return;
        }
        for (way, f) in ["forward", "input", "output"].iter().zip(self.fate) {
            assert!(
                f[0] > 0 && f[1] > 0,
                "{way}: arrived/not {f:?}: the generator does not exercise it"
            );
        }
        assert!(self.several > 0, "no probe met a {two_branch} rule");
        assert!(
            self.settled > 0,
            "no probe with several outcomes was settled: {}",
            self.line()
        );
        // Without rewrites every generated rule is modelled or opaque: an
        // unknown outcome would mean trace gave up on part of the sample.
        assert!(
            rewrites || self.unknown == 0,
            "trace gave unknown outcomes for generated rules: {}",
            self.line()
        );
        assert!(
            self.single > self.several,
            "too few probes with one outcome: {}",
            self.line()
        );
    }

    /// One line for the test output.
    pub fn line(&self) -> String {
        format!(
            "arrived/not: forward {:?}, input {:?}, output {:?}; outcomes: {} single, {} several ({} of them settled), {} with unknown; {} asked again late; senders saw accept {}, reject {}, silence {}",
            self.fate[0], self.fate[1], self.fate[2], self.single, self.several, self.settled, self.unknown, self.late,
            self.sender[0], self.sender[1], self.sender[2]
        )
    }
}

fn judge(outcomes: &[TraceOutcome], p: &Probe, got: Option<&Vec<Arrival>>) -> bool {
    let expected: Vec<Expect> = outcomes.iter().map(|o| expect(o, p)).collect();
    match got.map(|v| v.as_slice()) {
        None | Some([]) => expected
            .iter()
            .any(|e| matches!(e, Expect::Nowhere | Expect::Anything)),
        Some([a]) => expected
            .iter()
            .any(|e| matches!(e, Expect::Anything) || *e == Expect::Arrives(a.clone())),
        // Recorded twice (both namespaces, or rewritten differently): only
        // a model that cannot follow the probe explains that.
        Some(_) => expected.iter().any(|e| matches!(e, Expect::Anything)),
    }
}

/// The ruleset with every opaque match that `decide` settles replaced by
/// its answer: a rule with a match that never holds matches no packet (it
/// stays in its chain, so the chain keeps its place on the path and rules
/// keep their names), and a rule whose opaque matches all always hold
/// loses them. `decide` returns
/// `None` for a match it cannot settle (the rule stays as it is).
/// `-m statistic --probability 1` and `numgen ... mod 1` are deterministic
/// in the kernel; traced on this ruleset, a probe has the one fate the
/// kernel gives it, which must be one of the outcomes on the original.
pub fn resolve(rs: &Ruleset, decide: &dyn Fn(&str) -> Option<bool>) -> Ruleset {
    let mut out = rs.clone();
    for c in &mut out.chains {
        for r in &mut c.rules {
            let d: Vec<Option<bool>> = r.matches.opaque.iter().map(|o| decide(&o.text)).collect();
            if d.contains(&Some(false)) {
                r.matches.protocol = IntervalSet::empty();
                r.matches.opaque.clear();
            } else if !d.is_empty() && d.iter().all(|x| *x == Some(true)) {
                r.matches.opaque.clear();
            }
        }
    }
    out
}

/// The report of one disagreement.
fn report(
    context: &dyn Fn() -> String,
    p: &Probe,
    got: Option<&Vec<Arrival>>,
    said: &str,
    what: &str,
    traces: &[(&str, &TraceResult)],
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", context());
    let _ = writeln!(s, "packet: {}", p.describe());
    let _ = writeln!(
        s,
        "kernel: {} (sender saw {said})",
        match got {
            Some(v) if !v.is_empty() => format!("delivered as {v:?}"),
            _ => "not delivered".to_string(),
        }
    );
    let _ = writeln!(s, "{what}");
    for (name, t) in traces {
        let _ = writeln!(s, "{name}: outcomes ({}):", t.overall.name());
        for o in &t.outcomes {
            let _ = writeln!(
                s,
                "  {} by {} on the {} path (dnat {:?}, snat {:?})",
                o.verdict.name(),
                o.rule.as_ref().map_or("-".to_string(), |r| r.to_string()),
                o.path,
                o.dnat,
                o.snat
            );
        }
        let _ = writeln!(s, "{name}: path where no opaque rule matches:");
        for r in &t.path {
            let _ = writeln!(s, "  {r}");
        }
    }
    s
}

/// Send `probes` through the ruleset loaded in the lab, trace each with
/// `tracer`, and return one report per disagreement (`context` heads each:
/// seed, ruleset, texts). The kernel's fate must be one of trace's outcomes
/// (with one outcome: equal to it). With `resolved` (a tracer over
/// [`resolve`]'s ruleset), a probe that has one outcome there must meet
/// that fate in the kernel, and that outcome must be among the outcomes on
/// the original ruleset.
pub fn check(
    lab: &mut PipeLab,
    tracer: &Tracer<'_>,
    resolved: Option<&Tracer<'_>>,
    probes: &[Probe],
    tally: &mut Tally,
    context: &dyn Fn() -> String,
) -> Vec<String> {
    let traced: Vec<_> = probes
        .iter()
        .map(|p| tracer.trace(p.way.hook(), &p.packet()))
        .collect();
    let settled: Vec<Option<TraceResult>> = probes
        .iter()
        .map(|p| {
            resolved
                .map(|r| r.trace(p.way.hook(), &p.packet()))
                .filter(|t| t.outcomes.len() == 1)
        })
        .collect();
    let mut seen = HashMap::new();
    let said = lab.send(probes, &mut seen);
    let key = |p: &Probe| (p.proto, p.sport);
    let fine = |i: usize, seen: &HashMap<(u8, u16), Vec<Arrival>>| {
        let got = seen.get(&key(&probes[i]));
        judge(&traced[i].outcomes, &probes[i], got)
            && settled[i]
                .as_ref()
                .is_none_or(|t| judge(&t.outcomes, &probes[i], got))
    };
    let late = (0..probes.len()).filter(|&i| !fine(i, &seen)).count();
    if late > 0 {
        // A loaded machine can deliver late: look once more before judging.
        std::thread::sleep(Duration::from_millis(1000));
        lab.dump(&mut seen);
        tally.late += late;
    }
    let mut out = Vec::new();
    for (i, p) in probes.iter().enumerate() {
        let t = &traced[i];
        let got = seen.get(&key(p));
        let arrived = got.is_some_and(|v| !v.is_empty());
        tally.fate[p.way.index()][usize::from(!arrived)] += 1;
        match t.outcomes.len() {
            1 => tally.single += 1,
            _ => tally.several += 1,
        }
        if t.outcomes.iter().any(|o| o.verdict == Decision::Unknown) {
            tally.unknown += 1;
        }
        tally.sender[match said[i].as_str() {
            "accept" => 0,
            "drop" => 2,
            _ => 1,
        }] += 1;
        if !judge(&t.outcomes, p, got) {
            out.push(report(
                context,
                p,
                got,
                &said[i],
                "the kernel's fate is none of trace's outcomes",
                &[("trace", t)],
            ));
            continue;
        }
        let Some(r) = &settled[i] else {
            continue;
        };
        if t.outcomes.len() > 1 {
            tally.settled += 1;
        }
        let one = &r.outcomes[0];
        if !judge(&r.outcomes, p, got) {
            out.push(report(
                context,
                p,
                got,
                &said[i],
                "the kernel's fate differs from trace on the ruleset with its deterministic opaque matches settled",
                &[("trace", t), ("settled", r)],
            ));
        } else if !t
            .outcomes
            .iter()
            .any(|o| o.verdict == one.verdict && o.rule == one.rule && o.path == one.path)
        {
            out.push(report(
                context,
                p,
                got,
                &said[i],
                "trace's outcomes miss the outcome of the ruleset with its deterministic opaque matches settled",
                &[("trace", t), ("settled", r)],
            ));
        }
    }
    out
}
