//! A packet from the network to a loopback address (127.0.0.0/8, ::1) is a
//! martian: the kernel does not deliver it (issue 15). Each case below is
//! run in the kernel: a peer namespace hands the host namespace a
//! hand-made UDP frame over a veth (so the peer's own routing cannot refuse
//! the destination), the host counts what its prerouting and input chains
//! see and listens on the (rewritten) destination. Trace and the engine,
//! given the same ruleset and `--local`, must give the kernel's answer.
//!
//! What the cases pin down (all observed in the kernel, with the default
//! `route_localnet` 0):
//! - IPv4 to 127.0.0.1: prerouting sees it, input does not, no socket gets
//!   it (routing drops it after prerouting);
//! - IPv4 DNATed in prerouting to 127.0.0.1, from a host address or from
//!   one the host would forward: the same;
//! - IPv4 to 127.0.0.1 DNATed in prerouting to a host address: delivered
//!   (routing reads the rewritten destination);
//! - IPv6 to ::1: dropped on arrival, before prerouting (so a DNAT there
//!   never rewrites it); DNATed to ::1 in prerouting: not delivered either;
//! - with `net.ipv4.conf.<iface>.route_localnet=1` IPv4 to 127.0.0.1 is
//!   delivered (directly and after a DNAT): the model assumes the default.
//!
//! The IPv6 addresses are from 2001:2::/48, the IPv6 benchmarking range
//! (the counterpart of 198.18.0.0/15), on the test's own veth only.

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Command, Stdio};

use ringfence_analysis::trace::Decision;
use ringfence_analysis::Tracer;
use ringfence_model::{CtStates, Hook, LocalAddrs, Packet};
use ringfence_testkit::{Need, Netns};

const HOST4: &str = "198.18.0.1";
const PEER4: &str = "198.18.0.2";
const HOST6: &str = "2001:2::1";
const PEER6: &str = "2001:2::2";
const PORT: u16 = 5353;

/// Counts UDP datagrams to the test port on prerouting (at raw priority,
/// before any DNAT) and on input, accepting everything.
const COUNTERS: &str = "table inet c {\n chain pre {\n  type filter hook prerouting priority -300; policy accept;\n  \
                        udp dport 5353 counter\n }\n chain in {\n  type filter hook input priority 0; policy accept;\n  \
                        udp dport 5353 counter\n }\n}\n";

/// Sends one UDP datagram in a frame made by hand: argv is the device, the
/// destination MAC, source and destination address and port.
const SEND: &str = r#"
import socket, struct, sys
dev, mac, src, dst, dport = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
data = b"martian"
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
ulen = 8 + len(data)
if ":" in dst:
    sa, da = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
    pseudo = sa + da + struct.pack("!IxxxB", ulen, 17)
else:
    sa, da = socket.inet_aton(src), socket.inet_aton(dst)
    pseudo = sa + da + struct.pack("!xBH", 17, ulen)
u0 = struct.pack("!HHHH", 40000, dport, ulen, 0) + data
u = struct.pack("!HHHH", 40000, dport, ulen, csum(pseudo + u0) or 0xffff) + data
if ":" in dst:
    ip, et = struct.pack("!IHBB", 6 << 28, ulen, 17, 64) + sa + da, 0x86dd
else:
    h = lambda c: struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 1, 0, 64, 17, c, sa, da)
    ip, et = h(csum(h(0))), 0x0800
s.send(bytes.fromhex(mac.replace(":", "")) + s.getsockname()[4] + struct.pack("!H", et) + ip + u)
"#;

/// Listens for one datagram on argv's address and port: prints `ready`,
/// then `got` or, after 1.5 s, `none`.
const RECV: &str = r#"
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, port)); s.settimeout(1.5)
print("ready", flush=True)
try:
    s.recvfrom(100); print("got")
except socket.timeout:
    print("none")
"#;

/// One case: the rules besides the counters, the destination the frame
/// carries, the address listened on, and what the kernel does.
struct Case {
    name: &'static str,
    nat: &'static str,
    dst: &'static str,
    listen: &'static str,
    route_localnet: bool,
    delivered: bool,
    prerouting_sees: bool,
    input_sees: bool,
    /// The path trace names: input for a loopback or host destination,
    /// forward for another address.
    path: Hook,
}

const fn case(
    name: &'static str,
    nat: &'static str,
    dst: &'static str,
    listen: &'static str,
) -> Case {
    Case {
        name,
        nat,
        dst,
        listen,
        route_localnet: false,
        delivered: false,
        prerouting_sees: true,
        input_sees: false,
        path: Hook::Input,
    }
}

const CASES: &[Case] = &[
    Case {
        delivered: true,
        input_sees: true,
        ..case("ipv4 to a host address (control)", "", HOST4, HOST4)
    },
    case("ipv4 to 127.0.0.1", "", "127.0.0.1", "127.0.0.1"),
    case(
        "ipv4 to 127.0.0.1, listening on any",
        "",
        "127.0.0.1",
        "0.0.0.0",
    ),
    case(
        "ipv4 dnat from a host address to 127.0.0.1",
        "table ip n {\n chain pre {\n  type nat hook prerouting priority -100;\n  \
         ip daddr 198.18.0.1 udp dport 5353 dnat to 127.0.0.1\n }\n}\n",
        HOST4,
        "127.0.0.1",
    ),
    Case {
        delivered: true,
        input_sees: true,
        ..case(
            "ipv4 dnat from 127.0.0.1 to a host address",
            "table ip n {\n chain pre {\n  type nat hook prerouting priority -100;\n  \
             ip daddr 127.0.0.1 udp dport 5353 dnat to 198.18.0.1\n }\n}\n",
            "127.0.0.1",
            HOST4,
        )
    },
    Case {
        path: Hook::Forward,
        ..case(
            "ipv4 dnat from another address to 127.0.0.1",
            "table ip n {\n chain pre {\n  type nat hook prerouting priority -100;\n  \
             ip daddr 198.18.0.9 udp dport 5353 dnat to 127.0.0.1\n }\n}\n",
            "198.18.0.9",
            "127.0.0.1",
        )
    },
    Case {
        delivered: true,
        input_sees: true,
        ..case("ipv6 to a host address (control)", "", HOST6, HOST6)
    },
    Case {
        prerouting_sees: false,
        ..case("ipv6 to ::1", "", "::1", "::1")
    },
    Case {
        prerouting_sees: false,
        ..case(
            "ipv6 dnat from ::1 to a host address",
            "table ip6 n {\n chain pre {\n  type nat hook prerouting priority -100;\n  \
             ip6 daddr ::1 udp dport 5353 dnat to 2001:2::1\n }\n}\n",
            "::1",
            HOST6,
        )
    },
    case(
        "ipv6 dnat from a host address to ::1",
        "table ip6 n {\n chain pre {\n  type nat hook prerouting priority -100;\n  \
         ip6 daddr 2001:2::1 udp dport 5353 dnat to [::1]:5353\n }\n}\n",
        HOST6,
        "::1",
    ),
];

/// With route_localnet=1 on the arriving interface (not the model's
/// assumption): the kernel only, to show what the setting changes.
const LOCALNET_CASES: &[Case] = &[
    Case {
        route_localnet: true,
        delivered: true,
        input_sees: true,
        ..case(
            "ipv4 to 127.0.0.1, route_localnet=1",
            "",
            "127.0.0.1",
            "127.0.0.1",
        )
    },
    Case {
        route_localnet: true,
        delivered: true,
        input_sees: true,
        ..case(
            "ipv4 dnat to 127.0.0.1, route_localnet=1",
            "table ip n {\n chain pre {\n  type nat hook prerouting priority -100;\n  \
             ip daddr 198.18.0.1 udp dport 5353 dnat to 127.0.0.1\n }\n}\n",
            HOST4,
            "127.0.0.1",
        )
    },
];

fn ruleset(case: &Case) -> String {
    format!("{COUNTERS}{}", case.nat)
}

/// The packet count of the one counter in chain `chain` of `inet c`.
fn counted(ns: &Netns, chain: &str) -> u64 {
    let out = ns.ok("nft", &["list", "chain", "inet", "c", chain], b"");
    let after = out
        .split("packets ")
        .nth(1)
        .unwrap_or_else(|| panic!("no counter in {chain}: {out}"));
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a packet count")
}

/// What the kernel does with the case's frame: (delivered, prerouting saw
/// it, input saw it). The namespaces go when this returns or panics.
fn in_the_kernel(case: &Case) -> (bool, bool, bool) {
    let host = Netns::new("mt");
    let peer = Netns::new("mt");
    host.veth("h0", &peer, "p0");
    host.addr("h0", "198.18.0.1/24");
    peer.addr("p0", "198.18.0.2/24");
    host.ip(&["addr", "add", "2001:2::1/64", "dev", "h0", "nodad"]);
    peer.ip(&["addr", "add", "2001:2::2/64", "dev", "p0", "nodad"]);
    if case.route_localnet {
        host.sysctl(&["net.ipv4.conf.h0.route_localnet=1"]);
    }
    host.load_nft(&ruleset(case));
    let link = host.ip(&["-j", "link", "show", "h0"]);
    let mac = link
        .split("\"address\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("h0's MAC address")
        .to_string();
    let mut listener = Command::new("ip")
        .args(["netns", "exec", &host.name, "python3", "-c", RECV])
        .args([case.listen, &PORT.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the listener");
    let mut lines = BufReader::new(listener.stdout.take().expect("stdout")).lines();
    let ready = lines.next().and_then(Result::ok);
    assert_eq!(ready.as_deref(), Some("ready"), "{}: listener", case.name);
    let src = if case.dst.contains(':') { PEER6 } else { PEER4 };
    peer.ok(
        "python3",
        &["-c", SEND, "p0", &mac, src, case.dst, &PORT.to_string()],
        b"",
    );
    let got = lines.next().and_then(Result::ok);
    let _ = listener.wait();
    (
        got.as_deref() == Some("got"),
        counted(&host, "pre") > 0,
        counted(&host, "in") > 0,
    )
}

#[test]
fn the_kernel_drops_loopback_destinations_from_the_network_unless_route_localnet() {
    if !ringfence_testkit::require!(
        Need::Root,
        Need::Tool("ip"),
        Need::Tool("nft"),
        Need::Tool("python3"),
    ) {
        return;
    }
    let mut failures = Vec::new();
    for case in CASES.iter().chain(LOCALNET_CASES) {
        let seen = in_the_kernel(case);
        let expected = (case.delivered, case.prerouting_sees, case.input_sees);
        if seen != expected {
            failures.push(format!(
                "{}: the kernel gave (delivered, prerouting, input) = {seen:?}, the case expects {expected:?}",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn packet(case: &Case) -> Packet {
    let dst: IpAddr = case.dst.parse().unwrap();
    let src = if dst.is_ipv6() { PEER6 } else { PEER4 };
    Packet {
        src: src.parse().unwrap(),
        dst,
        protocol: 17,
        sport: 40000,
        dport: PORT,
        iif: Some("h0".into()),
        oif: None,
        ct_state: CtStates::NEW,
        ..Packet::default()
    }
}

fn local() -> LocalAddrs {
    LocalAddrs::new([HOST4.parse().unwrap(), HOST6.parse().unwrap()])
}

fn parsed(case: &Case) -> ringfence_model::Ruleset {
    ringfence_parse::parse_ruleset(
        &ruleset(case),
        "martian.nft",
        ringfence_parse::RulesetFormat::Auto,
    )
    .expect("the case's ruleset parses")
}

#[test]
fn trace_drops_a_martian_by_routing_with_no_rule_as_the_kernel_does() {
    // The expectations are the kernel's (the first test checks them there).
    let mut failures = Vec::new();
    for case in CASES {
        let rs = parsed(case);
        let tracer = Tracer::new(&rs).with_local(local());
        let p = packet(case);
        let hook = tracer.path_for(Hook::Forward, false, &p);
        let t = tracer.trace(hook, &p);
        let ok = match t.outcomes.as_slice() {
            [o] if case.delivered => o.verdict == Decision::Accept && o.path == case.path,
            // A routing drop: no rule decides it.
            [o] => o.verdict == Decision::Drop && o.rule.is_none() && o.path == case.path,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{}: trace gives {:?}, the kernel {}",
                case.name,
                t.outcomes,
                if case.delivered { "delivers" } else { "drops" }
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn trace_outcomes_only_agree_with_the_full_trace_on_martians() {
    // Batch output walks for outcomes only: the same answer.
    for case in CASES {
        let rs = parsed(case);
        let tracer = Tracer::new(&rs).with_local(local());
        let p = packet(case);
        let hook = tracer.path_for(Hook::Forward, false, &p);
        let mut full = ringfence_analysis::trace::TraceScratch::default();
        tracer.trace_with(hook, &p, &mut full);
        let mut quick = ringfence_analysis::trace::TraceScratch::default();
        tracer.trace_outcomes(hook, &p, &mut quick);
        assert_eq!(full.outcomes(), quick.outcomes(), "{}", case.name);
    }
}

#[test]
fn the_engine_drops_a_martian_as_the_kernel_does() {
    use ringfence_analysis::space::packet_box;
    use ringfence_analysis::{Engine, Fate, IfaceUniverse};
    let mut failures = Vec::new();
    for case in CASES {
        let rs = parsed(case);
        let e = Engine::new(&rs, IfaceUniverse::new([&rs]).with_locals(&local().addrs));
        let b = packet_box(&packet(case), &e.u);
        let outcomes = e.classify(Hook::Forward, vec![b]).expect("within budget");
        let fates: Vec<Fate> = outcomes.iter().map(|o| o.fate).collect();
        let expected = if case.delivered {
            Fate::Accept
        } else {
            Fate::Drop
        };
        if fates != [expected] {
            failures.push(format!(
                "{}: the engine gives {fates:?}, the kernel {expected:?}",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
