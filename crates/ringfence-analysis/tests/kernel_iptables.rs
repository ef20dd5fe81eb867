//! Differential test against the Linux kernel: random iptables rulesets are
//! loaded into a router namespace, real TCP connections go through it between
//! two other namespaces, and the kernel's verdict (connected, refused or
//! unreachable, timed out) must equal `trace` on the ruleset as
//! `iptables-save` dumps it back. Zero disagreements are allowed.
//!
//! Safety: everything happens in namespaces this test creates (`rf-ki<pid>-*`),
//! with addresses in 198.18.0.0/15 only; a guard removes the namespaces and
//! kills the helper processes on every exit path, panics included.
//!
//! Needs root, `ip`, `iptables-restore`, `iptables-save` and `python3`;
//! without them it fails under `CI=true` and is counted as skipped otherwise.

use ringfence_analysis::Tracer;
use ringfence_model::{CtStates, Hook, Packet, Verdict};
use ringfence_testkit::netns::{Line3, Line3Spec};
use ringfence_testkit::Need;
use ringfence_testkit::Rng;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};

const PORTS: [u16; 12] = [
    22, 80, 443, 1000, 1001, 1002, 2000, 2001, 5000, 6443, 8080, 9000,
];
const CLIENT_HOSTS: u8 = 8; // 198.18.0.10 ..
const SERVER_HOSTS: u8 = 8; // 198.18.1.10 ..
const ROUTER_IN: &str = "rfc0";
const ROUTER_OUT: &str = "rfs0";

/// Run a command, panic with its stderr on failure.
fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_stdin(args: &[&str], input: &str) -> String {
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}\ninput:\n{input}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The test's namespaces (client, router, server) and the listener; the
/// listener is killed and the namespaces removed on drop, panics included.
struct Lab {
    net: Line3,
    children: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // `net` drops after this and deletes the namespaces.
    }
}

impl Lab {
    fn new() -> Lab {
        let net = Line3::new(&Line3Spec {
            tag: "ki",
            router_in: (ROUTER_IN, "198.18.0.1/24"),
            router_out: (ROUTER_OUT, "198.18.1.1/24"),
            client_addrs: (0..CLIENT_HOSTS)
                .map(|h| format!("198.18.0.{}/24", 10 + h))
                .collect(),
            server_addrs: (0..SERVER_HOSTS)
                .map(|h| format!("198.18.1.{}/24", 10 + h))
                .collect(),
        });
        let mut lab = Lab {
            net,
            children: Vec::new(),
        };
        let ports: Vec<String> = PORTS.iter().map(|p| p.to_string()).collect();
        let listen = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kernel/listen.py");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lab.net.server.name, "python3", listen])
            .args(&ports)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start listener");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        lab.children.push(child);
        assert_eq!(line.trim(), "ready", "listener did not start");
        lab
    }
}

fn neg(rng: &mut Rng, pct: u64) -> &'static str {
    if rng.chance(pct) {
        "! "
    } else {
        ""
    }
}

fn addr_match(rng: &mut Rng, net: u8, hosts: u8) -> String {
    let host = 10 + rng.below(hosts as u64) as u8;
    let len = *rng.pick(&[32u8, 32, 31, 30, 29, 28, 24, 16]);
    format!("198.18.{net}.{host}/{len}")
}

fn port_spec(rng: &mut Rng) -> String {
    let a = *rng.pick(&PORTS);
    if rng.chance(40) {
        let b = *rng.pick(&PORTS);
        if a == b {
            a.to_string()
        } else {
            format!("{}:{}", a.min(b), a.max(b))
        }
    } else {
        a.to_string()
    }
}

fn port_list(rng: &mut Rng) -> String {
    let n = 1 + rng.below(4);
    (0..n).map(|_| port_spec(rng)).collect::<Vec<_>>().join(",")
}

fn iface(rng: &mut Rng, input: bool) -> String {
    let opts = if input {
        ["rfc0", "rfc+", "rf+", "rfs0", "eth+"]
    } else {
        ["rfs0", "rfs+", "rf+", "rfc0", "eth+"]
    };
    rng.pick(&opts).to_string()
}

/// One random rule body (matches and target) for chain `ci` of `n_user` user chains.
fn random_rule(rng: &mut Rng, ci: usize, n_user: usize) -> String {
    let mut r = String::new();
    if rng.chance(35) {
        let _ = write!(
            r,
            " {}-s {}",
            neg(rng, 25),
            addr_match(rng, 0, CLIENT_HOSTS)
        );
    }
    if rng.chance(35) {
        let _ = write!(
            r,
            " {}-d {}",
            neg(rng, 25),
            addr_match(rng, 1, SERVER_HOSTS)
        );
    }
    if rng.chance(15) {
        let _ = write!(r, " {}-i {}", neg(rng, 30), iface(rng, true));
    }
    if rng.chance(15) {
        let _ = write!(r, " {}-o {}", neg(rng, 30), iface(rng, false));
    }
    let tcp = rng.chance(65);
    if tcp {
        r.push_str(" -p tcp");
        match rng.below(6) {
            0 | 1 => {
                let _ = write!(r, " -m tcp {}--dport {}", neg(rng, 20), port_spec(rng));
            }
            2 => {
                let _ = write!(r, " -m tcp {}--sport 1024:65535", neg(rng, 10));
            }
            3 => {
                let opt = *rng.pick(&["--dports", "--dports", "--sports", "--ports"]);
                let _ = write!(r, " -m multiport {}{opt} {}", neg(rng, 15), port_list(rng));
            }
            _ => {}
        }
    } else if rng.chance(30) {
        r.push_str(if rng.chance(50) {
            " -p udp"
        } else {
            " ! -p udp"
        });
    }
    if rng.chance(10) {
        let a = 10 + rng.below(CLIENT_HOSTS as u64);
        let b = 10 + rng.below(CLIENT_HOSTS as u64);
        let _ = write!(
            r,
            " -m iprange {}--src-range 198.18.0.{}-198.18.0.{}",
            neg(rng, 25),
            a.min(b),
            a.max(b)
        );
    }
    if rng.chance(10) {
        let a = 10 + rng.below(SERVER_HOSTS as u64);
        let b = 10 + rng.below(SERVER_HOSTS as u64);
        let _ = write!(
            r,
            " -m iprange --dst-range 198.18.1.{}-198.18.1.{}",
            a.min(b),
            a.max(b)
        );
    }
    if rng.chance(10) {
        let states = rng.pick::<&str>(&[
            " -m conntrack --ctstate NEW",
            " -m state --state NEW,ESTABLISHED",
            " -m conntrack ! --ctstate NEW",
            " -m conntrack --ctstate INVALID",
        ]);
        r.push_str(states);
    }
    if rng.chance(10) {
        r.push_str(" -m comment --comment \"rule with spaces\"");
    }
    // Targets: user chains only after this chain (no loops).
    let later: Vec<usize> = ((ci + 1).max(1)..=n_user).collect();
    let mut choices = vec!["ACCEPT", "ACCEPT", "DROP", "REJECT", "LOG", "RETURN"];
    if !later.is_empty() {
        choices.extend(["JUMP", "JUMP", "GOTO"]);
    }
    let t = *rng.pick(&choices);
    match t {
        "JUMP" => {
            let _ = write!(r, " -j U{}", rng.pick(&later));
        }
        "GOTO" => {
            let _ = write!(r, " -g U{}", rng.pick(&later));
        }
        "REJECT" => {
            let mut withs = vec![
                "icmp-port-unreachable",
                "icmp-host-unreachable",
                "icmp-net-unreachable",
                "icmp-admin-prohibited",
            ];
            if tcp {
                withs.push("tcp-reset");
            }
            let _ = write!(r, " -j REJECT --reject-with {}", rng.pick(&withs));
        }
        "LOG" => r.push_str(" -j LOG --log-prefix \"rf \""),
        other => {
            let _ = write!(r, " -j {other}");
        }
    }
    r
}

fn random_ruleset(rng: &mut Rng) -> String {
    let n_user = 1 + rng.below(4) as usize;
    let mut s = String::from("*filter\n:INPUT ACCEPT [0:0]\n");
    let policy = if rng.chance(50) { "ACCEPT" } else { "DROP" };
    let _ = writeln!(s, ":FORWARD {policy} [0:0]\n:OUTPUT ACCEPT [0:0]");
    for u in 1..=n_user {
        let _ = writeln!(s, ":U{u} - [0:0]");
    }
    // Replies must flow so that only the first SYN is judged.
    s.push_str("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
    for ci in 0..=n_user {
        let name = if ci == 0 {
            "FORWARD".to_string()
        } else {
            format!("U{ci}")
        };
        let n = if ci == 0 {
            3 + rng.below(8)
        } else {
            rng.below(7)
        };
        for _ in 0..n {
            let _ = writeln!(s, "-A {name}{}", random_rule(rng, ci, n_user));
        }
    }
    s.push_str("COMMIT\n");
    s
}

#[test]
fn iptables_verdicts_match_the_kernel_for_random_rulesets() {
    if !ringfence_testkit::require!(
        Need::Root,
        Need::Tool("ip"),
        Need::Tool("iptables-restore"),
        Need::Tool("iptables-save"),
        Need::Tool("python3")
    ) {
        return;
    }
    let rulesets: usize = std::env::var("RF_KERNEL_RULESETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let per: usize = 200;
    let seed: u64 = std::env::var("RF_KERNEL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_1234);
    let lab = Lab::new();
    let probe = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kernel/probe.py");
    let mut rng = Rng::from_state(seed);
    let mut next_sport: u32 = 10_000;
    let mut disagreements = Vec::new();
    let mut counts = [0usize; 3];
    for k in 0..rulesets {
        let text = random_ruleset(&mut rng);
        run_stdin(
            &[
                "ip",
                "netns",
                "exec",
                &lab.net.router.name,
                "iptables-restore",
            ],
            &text,
        );
        // Judge the ruleset the kernel holds, as iptables-save prints it.
        let dump = run(&[
            "ip",
            "netns",
            "exec",
            &lab.net.router.name,
            "iptables-save",
            "-t",
            "filter",
        ]);
        let name = format!("ruleset-{k}");
        let rs = ringfence_parse::parse_ruleset(
            &dump,
            &name,
            ringfence_parse::RulesetFormat::IptablesSave,
        )
        .unwrap_or_else(|e| panic!("parsing the dump failed: {e}\n{dump}"));
        let tracer = Tracer::new(&rs);
        let mut probes = String::new();
        let mut packets = Vec::new();
        for _ in 0..per {
            let src = Ipv4Addr::new(198, 18, 0, 10 + rng.below(CLIENT_HOSTS as u64) as u8);
            let dst = Ipv4Addr::new(198, 18, 1, 10 + rng.below(SERVER_HOSTS as u64) as u8);
            let dport = *rng.pick(&PORTS);
            // Unique source ports across the run: no 4-tuple is ever reused.
            let sport = next_sport as u16;
            next_sport += 1;
            let _ = writeln!(
                probes,
                "{{\"src\":\"{src}\",\"sport\":{sport},\"dst\":\"{dst}\",\"dport\":{dport}}}"
            );
            packets.push(Packet {
                src: IpAddr::V4(src),
                dst: IpAddr::V4(dst),
                protocol: 6,
                sport,
                dport,
                iif: Some(ROUTER_IN.into()),
                oif: Some(ROUTER_OUT.into()),
                ct_state: CtStates::NEW,
                ..Packet::default()
            });
        }
        let out = run_stdin(
            &[
                "ip",
                "netns",
                "exec",
                &lab.net.client.name,
                "python3",
                probe,
                "0.9",
            ],
            &probes,
        );
        let kernel: Vec<String> = serde_json::from_str(out.trim()).expect("probe output");
        assert_eq!(kernel.len(), packets.len());
        for (p, got) in packets.iter().zip(&kernel) {
            let t = tracer.trace(Hook::Forward, p);
            let kv = if got == "accept" {
                Verdict::Accept
            } else if got == "drop" {
                Verdict::Drop
            } else {
                Verdict::Reject
            };
            counts[kv as usize] += 1;
            if t.uncertain || t.verdict != kv {
                disagreements.push(format!(
                    "ruleset {k}: {}:{} -> {}:{}: kernel {got}, trace {:?} via {:?}\n{dump}",
                    p.src, p.sport, p.dst, p.dport, t.verdict, t.path
                ));
            }
        }
    }
    eprintln!(
        "kernel differential: {rulesets} rulesets x {per} packets: {} accepted, {} dropped, {} rejected",
        counts[Verdict::Accept as usize],
        counts[Verdict::Drop as usize],
        counts[Verdict::Reject as usize]
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements; first:\n{}",
        disagreements.len(),
        disagreements[0]
    );
    // The random rulesets must exercise every verdict, or the test proves little.
    assert!(counts.iter().all(|&c| c > 0), "verdict mix {counts:?}");
    drop(lab);
}
