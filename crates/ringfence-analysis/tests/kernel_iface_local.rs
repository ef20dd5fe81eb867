//! What the kernel does with an address-type test limited to the input
//! interface (`-m addrtype --dst-type LOCAL --limit-iface-in`, nft `fib
//! daddr . iif type local`) on a packet to an address of *another*
//! interface of the same host, and that trace, given the host's addresses
//! with their interfaces (`--local ADDR%IFACE`), says the same.
//!
//! A host namespace has 198.18.40.1 on `a0` and 198.18.41.1 on `a1`; a peer
//! namespace reaches it through `a0` only (its route to 198.18.41.1 goes
//! via 198.18.40.1). The peer sends one UDP datagram to each address; the
//! host's input chain counts the datagrams the limited test takes. Observed:
//! the test holds for 198.18.40.1 (local on `a0`, where the datagram came
//! in) and not for 198.18.41.1 (local, but on `a1`). The output side
//! (`--src-type LOCAL --limit-iface-out`, `fib saddr . oif type local`) is
//! checked the same way: the host sends through `a1` from each of its
//! addresses, and only a1's own address is `LOCAL` there. Namespaces are this
//! test's own (`rf-ifl<pid>-*`), addresses in 198.18.0.0/15 only, removed on
//! every exit path.

use ringfence_analysis::trace::Decision;
use ringfence_analysis::Tracer;
use ringfence_model::{CtStates, Hook, LocalAddrs, Packet};
use ringfence_testkit::{Need, Netns};

const ON_A0: &str = "198.18.40.1";
const ON_A1: &str = "198.18.41.1";
const PEER: &str = "198.18.40.2";

const IPT: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp --dport 9999 -m addrtype --dst-type LOCAL --limit-iface-in -j ACCEPT
-A INPUT -p udp --dport 9999 -j DROP
COMMIT
";

const NFT: &str = "table inet f {
  chain input {
    type filter hook input priority 0; policy accept;
    udp dport 9999 fib daddr . iif type local counter accept
    udp dport 9999 counter drop
  }
}
";

/// Sends one datagram to argv's address, port 9999.
const SEND: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"x", (sys.argv[1], 9999))
"#;

/// The output side: both rules only count (accept), the first when the
/// source is local on the output interface.
const IPT_OUT: &str = "*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -p udp --dport 9999 -m addrtype --src-type LOCAL --limit-iface-out -j ACCEPT
-A POSTROUTING -p udp --dport 9999 -j ACCEPT
COMMIT
";

const NFT_OUT: &str = "table inet f {
  chain post {
    type filter hook postrouting priority 0; policy accept;
    udp dport 9999 fib saddr . oif type local counter accept
    udp dport 9999 counter accept
  }
}
";

/// Sends one datagram from argv[1] to argv[2], port 9999.
const SEND_FROM: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
s.sendto(b"x", (sys.argv[2], 9999))
"#;

/// The host and peer namespaces, linked as the module describes.
fn lab() -> (Netns, Netns) {
    let host = Netns::new("ifl");
    let peer = Netns::new("ifl");
    host.veth("a0", &peer, "p0");
    host.veth("a1", &peer, "p1");
    host.addr("a0", &format!("{ON_A0}/24"));
    host.addr("a1", &format!("{ON_A1}/24"));
    peer.addr("p0", &format!("{PEER}/24"));
    peer.addr("p1", "198.18.41.2/24");
    // To the host's a1 address through a0: the datagram enters on a0.
    peer.ip(&[
        "route",
        "add",
        &format!("{ON_A1}/32"),
        "via",
        ON_A0,
        "dev",
        "p0",
    ]);
    // No reverse-path filter: it would drop the datagram before input.
    host.sysctl(&[
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
        "net.ipv4.conf.a0.rp_filter=0",
        "net.ipv4.conf.a1.rp_filter=0",
    ]);
    (host, peer)
}

/// Datagrams each of the two input rules took so far: the limited test's
/// accept and the drop after it (iptables: the rules' packet counters; nft:
/// the chain's two counters).
fn counts(host: &Netns, nft: bool, chain: &str) -> [u64; 2] {
    let (out, key): (String, fn(&str) -> Option<u64>) = if nft {
        (
            host.ok("nft", &["list", "chain", "inet", "f", chain], b""),
            |l| {
                let at = l.find("counter packets ")?;
                l[at + "counter packets ".len()..]
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            },
        )
    } else {
        (
            host.ok(
                "iptables-save",
                &[
                    "-c",
                    "-t",
                    if chain == "input" { "filter" } else { "mangle" },
                ],
                b"",
            ),
            |l| l.strip_prefix('[')?.split(':').next()?.parse().ok(),
        )
    };
    let rules: Vec<u64> = out
        .lines()
        .filter(|l| l.contains("9999"))
        .map(|l| key(l).unwrap_or_else(|| panic!("no counter in {l}")))
        .collect();
    match rules.as_slice() {
        [a, b] => [*a, *b],
        _ => panic!("expected two counted rules in {out}"),
    }
}

/// Whether the kernel's limited test took a datagram from the peer to
/// `dst` (the datagram must reach input: one of the two rules counts it).
fn kernel_takes(nft: bool, dst: &str) -> bool {
    let (host, peer) = lab();
    if nft {
        host.load_nft(NFT);
    } else {
        host.load_iptables(IPT);
    }
    first_rule_takes(&host, nft, "input", || {
        peer.ok("python3", &["-c", SEND, dst], b"");
    })
}

/// Whether the first of the two counting rules of `chain` took the one
/// datagram `send` sends (it must meet the chain once: one rule counts it).
fn first_rule_takes(host: &Netns, nft: bool, chain: &str, send: impl Fn()) -> bool {
    let before = counts(host, nft, chain);
    send();
    // Delivered in the sender's system call on a veth; allow a moment for
    // a loaded machine.
    let mut after = counts(host, nft, chain);
    for _ in 0..50 {
        if after != before {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        after = counts(host, nft, chain);
    }
    let grew = [after[0] - before[0], after[1] - before[1]];
    assert!(
        grew == [1, 0] || grew == [0, 1],
        "the datagram did not meet {chain} once: counters {before:?} -> {after:?}"
    );
    grew[0] == 1
}

/// Whether the kernel's output-limited test took a datagram the host sends
/// from `src` through a1 (to the peer's 198.18.41.2).
fn kernel_takes_out(nft: bool, src: &str) -> bool {
    let (host, _peer) = lab();
    if nft {
        host.load_nft(NFT_OUT);
    } else {
        host.load_iptables(IPT_OUT);
    }
    first_rule_takes(&host, nft, "post", || {
        host.ok("python3", &["-c", SEND_FROM, src, "198.18.41.2"], b"");
    })
}

/// Whether trace says the output-limited rule takes the datagram from
/// `src` leaving through a1 (the first rule's accept decides it).
fn trace_takes_out(nft: bool, src: &str) -> Result<bool, String> {
    let (text, name, line) = if nft {
        (NFT_OUT, "out.nft", "out.nft:4")
    } else {
        (IPT_OUT, "out.rules", "out.rules:7")
    };
    let rs = ringfence_parse::parse_ruleset(text, name, ringfence_parse::RulesetFormat::Auto)
        .expect("the ruleset parses");
    let p = Packet {
        src: src.parse().unwrap(),
        dst: "198.18.41.2".parse().unwrap(),
        protocol: 17,
        sport: 40000,
        dport: 9999,
        iif: None,
        oif: Some("a1".into()),
        ct_state: CtStates::NEW,
        ..Packet::default()
    };
    let t = Tracer::new(&rs)
        .with_local(host_addrs())
        .trace(Hook::Output, &p);
    match t.outcomes.as_slice() {
        [o] if o.verdict == Decision::Accept => {
            Ok(o.rule.as_ref().map(|r| r.to_string()).as_deref() == Some(line))
        }
        other => Err(format!("undecided or not accepted: {other:?}")),
    }
}

/// The host's addresses with their interfaces.
fn host_addrs() -> LocalAddrs {
    LocalAddrs::on_ifaces([
        (ON_A0.parse().unwrap(), Some("a0".to_string())),
        (ON_A1.parse().unwrap(), Some("a1".to_string())),
    ])
}

/// Whether trace says the limited rule accepts the datagram.
fn trace_takes(nft: bool, dst: &str) -> Result<bool, String> {
    let (text, name) = if nft {
        (NFT, "lim.nft")
    } else {
        (IPT, "lim.rules")
    };
    let rs = ringfence_parse::parse_ruleset(text, name, ringfence_parse::RulesetFormat::Auto)
        .expect("the ruleset parses");
    let local = host_addrs();
    let p = Packet {
        src: PEER.parse().unwrap(),
        dst: dst.parse().unwrap(),
        protocol: 17,
        sport: 40000,
        dport: 9999,
        iif: Some("a0".into()),
        oif: None,
        ct_state: CtStates::NEW,
        ..Packet::default()
    };
    let t = Tracer::new(&rs).with_local(local).trace(Hook::Input, &p);
    match t.outcomes.as_slice() {
        [o] if o.verdict == Decision::Accept => Ok(true),
        [o] if o.verdict == Decision::Drop => Ok(false),
        other => Err(format!("undecided: {other:?}")),
    }
}

#[test]
fn limit_iface_in_local_does_not_hold_for_an_address_of_another_interface_in_the_kernel_or_in_trace(
) {
    if !ringfence_testkit::require!(
        Need::Root,
        Need::Tool("ip"),
        Need::Tool("iptables-restore"),
        Need::Tool("iptables-save"),
        Need::Tool("nft"),
        Need::Tool("python3"),
    ) {
        return;
    }
    let mut failures = Vec::new();
    for nft in [false, true] {
        let tool = if nft { "nft" } else { "iptables" };
        for (dst, expected) in [(ON_A0, true), (ON_A1, false)] {
            let kernel = kernel_takes(nft, dst);
            if kernel != expected {
                failures.push(format!(
                    "{tool}, to {dst} in on a0: the kernel's limited LOCAL test {} (expected {})",
                    if kernel { "held" } else { "did not hold" },
                    if expected { "to hold" } else { "not to hold" },
                ));
            }
            match trace_takes(nft, dst) {
                Ok(t) if t == kernel => {}
                Ok(t) => failures.push(format!(
                    "{tool}, to {dst} in on a0: trace says the test {}, the kernel {}",
                    if t { "holds" } else { "does not hold" },
                    if kernel { "held" } else { "did not hold" },
                )),
                Err(e) => failures.push(format!("{tool}, to {dst}: trace {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn limit_iface_out_local_holds_only_for_the_output_interfaces_own_address_in_the_kernel_and_in_trace(
) {
    if !ringfence_testkit::require!(
        Need::Root,
        Need::Tool("ip"),
        Need::Tool("iptables-restore"),
        Need::Tool("iptables-save"),
        Need::Tool("nft"),
        Need::Tool("python3"),
    ) {
        return;
    }
    let mut failures = Vec::new();
    for nft in [false, true] {
        let tool = if nft { "nft" } else { "iptables" };
        for (src, expected) in [(ON_A1, true), (ON_A0, false)] {
            let kernel = kernel_takes_out(nft, src);
            if kernel != expected {
                failures.push(format!(
                    "{tool}, from {src} out on a1: the kernel's limited LOCAL test {} (expected {})",
                    if kernel { "held" } else { "did not hold" },
                    if expected { "to hold" } else { "not to hold" },
                ));
            }
            match trace_takes_out(nft, src) {
                Ok(t) if t == kernel => {}
                Ok(t) => failures.push(format!(
                    "{tool}, from {src} out on a1: trace says the test {}, the kernel {}",
                    if t { "holds" } else { "does not hold" },
                    if kernel { "held" } else { "did not hold" },
                )),
                Err(e) => failures.push(format!("{tool}, from {src}: trace {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
