//! A small evaluator for `iptables-save` dumps of the filter table, used to
//! compare two loaded rulesets packet by packet. It understands exactly the
//! matches our output and Aerleon's iptables/speedway output use (`-s`, `-d`,
//! `-p`, `--dport`, `--dports`, `--sport`, `--icmp-type`, `--icmpv6-type`,
//! `-i`/`-o` (probes never match an interface), `--state`, `--ctstate`,
//! comments) and panics on
//! anything else, so it can never judge a rule it does not understand.

use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6, others).
    pub proto: u8,
    /// Destination port for TCP/UDP.
    pub dport: u16,
}

/// The source port of every probe (an ephemeral port: never a DHCP port).
/// An ICMP probe's type is its `dport` field (0: echo-reply / unassigned).
pub const PROBE_SPORT: u16 = 40000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
}

#[derive(Debug, Clone, Default)]
struct Rule {
    src: Option<IpNet>,
    dst: Option<IpNet>,
    proto: Option<u8>,
    dports: Option<Vec<(u16, u16)>>,
    sports: Option<Vec<(u16, u16)>>,
    /// An ICMP / ICMPv6 type the rule requires.
    icmp_type: Option<u16>,
    /// The rule names an interface (`-i lo`): probes never use one.
    iface: bool,
    /// Connection states the rule requires (None: any). New packets are NEW.
    states: Option<Vec<String>>,
    jump: Option<String>,
    goto: bool,
    text: String,
}

#[derive(Debug, Default)]
pub struct Ruleset {
    policies: BTreeMap<String, Verdict>,
    chains: BTreeMap<String, Vec<Rule>>,
}

/// Split a rule line into words, honouring double quotes.
pub fn tokenize(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_q = false;
    let mut has = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_q => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => {
                in_q = !in_q;
                has = true;
            }
            c if c.is_whitespace() && !in_q => {
                if has || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => cur.push(c),
        }
    }
    if has || !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn proto_number(p: &str) -> u8 {
    match p {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "ipv6-icmp" | "icmpv6" => 58,
        "all" => 0,
        other => other
            .parse()
            .unwrap_or_else(|_| panic!("evaluator: unknown protocol {other}")),
    }
}

fn ports(s: &str) -> Vec<(u16, u16)> {
    s.split(',')
        .map(|p| match p.split_once(':') {
            Some((a, b)) => (
                if a.is_empty() { 0 } else { a.parse().unwrap() },
                if b.is_empty() {
                    65535
                } else {
                    b.parse().unwrap()
                },
            ),
            None => {
                let v = p.parse().unwrap();
                (v, v)
            }
        })
        .collect()
}

fn net(s: &str) -> IpNet {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .unwrap_or_else(|_| panic!("evaluator: bad address {s}"))
}

impl Ruleset {
    /// Parse the `*filter` table of an `iptables-save` dump.
    pub fn parse(dump: &str) -> Ruleset {
        let mut rs = Ruleset::default();
        let mut in_filter = false;
        for line in dump.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(t) = line.strip_prefix('*') {
                in_filter = t == "filter";
                continue;
            }
            if !in_filter || line == "COMMIT" {
                continue;
            }
            if let Some(decl) = line.strip_prefix(':') {
                let mut w = decl.split_whitespace();
                let name = w.next().unwrap().to_string();
                match w.next() {
                    Some("ACCEPT") => {
                        rs.policies.insert(name.clone(), Verdict::Accept);
                    }
                    Some("DROP") => {
                        rs.policies.insert(name.clone(), Verdict::Drop);
                    }
                    _ => {}
                }
                rs.chains.entry(name).or_default();
                continue;
            }
            let toks = tokenize(line);
            assert_eq!(toks[0], "-A", "evaluator: unexpected line {line}");
            let chain = toks[1].clone();
            let mut r = Rule {
                text: line.to_string(),
                ..Rule::default()
            };
            let mut i = 2;
            while i < toks.len() {
                let arg = toks.get(i + 1).cloned().unwrap_or_default();
                match toks[i].as_str() {
                    "-s" => r.src = Some(net(&arg)),
                    "-d" => r.dst = Some(net(&arg)),
                    "-p" => r.proto = Some(proto_number(&arg)),
                    "-m" => {}
                    "--dport" | "--dports" => r.dports = Some(ports(&arg)),
                    "--sport" | "--sports" => r.sports = Some(ports(&arg)),
                    "--icmp-type" | "--icmpv6-type" => {
                        // A name we do not number never equals a probe's type 0.
                        r.icmp_type = Some(arg.split('/').next().unwrap().parse().unwrap_or(256))
                    }
                    "-i" | "-o" => r.iface = true,
                    "--state" | "--ctstate" => {
                        r.states = Some(arg.split(',').map(str::to_string).collect())
                    }
                    "--comment" => {}
                    "-j" => r.jump = Some(arg),
                    "-g" => {
                        r.jump = Some(arg);
                        r.goto = true;
                    }
                    other => panic!("evaluator: unsupported option {other} in {line}"),
                }
                i += 2;
            }
            rs.chains.entry(chain).or_default().push(r);
        }
        rs
    }

    fn matches(r: &Rule, p: &Packet) -> bool {
        if let Some(n) = r.src {
            if !n.contains(&p.src) {
                return false;
            }
        }
        if let Some(n) = r.dst {
            if !n.contains(&p.dst) {
                return false;
            }
        }
        if let Some(pr) = r.proto {
            if pr != 0 && pr != p.proto {
                return false;
            }
        }
        if let Some(ps) = &r.dports {
            if !matches!(p.proto, 6 | 17) || !ps.iter().any(|(a, b)| *a <= p.dport && p.dport <= *b)
            {
                return false;
            }
        }
        if let Some(ps) = &r.sports {
            if !matches!(p.proto, 6 | 17)
                || !ps
                    .iter()
                    .any(|(a, b)| *a <= PROBE_SPORT && PROBE_SPORT <= *b)
            {
                return false;
            }
        }
        if let Some(t) = r.icmp_type {
            if !matches!(p.proto, 1 | 58) || t != p.dport {
                return false;
            }
        }
        if r.iface {
            return false;
        }
        if let Some(st) = &r.states {
            if !st.iter().any(|s| s == "NEW") {
                return false;
            }
        }
        true
    }

    /// The verdict for a new connection's first packet in built-in chain `chain`.
    pub fn eval(&self, chain: &str, p: &Packet) -> Verdict {
        self.walk(chain, p, 0).unwrap_or_else(|| {
            *self
                .policies
                .get(chain)
                .expect("built-in chain has a policy")
        })
    }

    /// `Some(verdict)` when a rule decides; `None` when the chain falls through.
    fn walk(&self, chain: &str, p: &Packet, depth: usize) -> Option<Verdict> {
        assert!(depth < 32, "evaluator: chain loop");
        for r in self.chains.get(chain).map(Vec::as_slice).unwrap_or(&[]) {
            if !Self::matches(r, p) {
                continue;
            }
            match r.jump.as_deref() {
                None => continue,
                Some("ACCEPT") => return Some(Verdict::Accept),
                Some("DROP") | Some("REJECT") => return Some(Verdict::Drop),
                Some("RETURN") => return None,
                Some(target) => {
                    assert!(
                        self.chains.contains_key(target),
                        "evaluator: unknown target {target} in {}",
                        r.text
                    );
                    match self.walk(target, p, depth + 1) {
                        Some(v) => return Some(v),
                        None if r.goto => return None,
                        None => continue,
                    }
                }
            }
        }
        None
    }

    /// Number of rules over all chains.
    pub fn rule_count(&self) -> usize {
        self.chains.values().map(Vec::len).sum()
    }
}
