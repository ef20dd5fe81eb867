//! A packet the host sends to one of its own addresses leaves by output and
//! postrouting, loops back through `lo`, and meets prerouting and input
//! before a socket gets it. Trace must follow it there instead of calling
//! the output path's accept its fate. Each case below is run in the kernel:
//! a namespace holding 198.18.0.5 loads the ruleset, connects to itself,
//! and sees which listener (if any) accepts the connection; trace, given the
//! same ruleset and `--local 198.18.0.5`, must say the same.
//!
//! What the cases pin down (all observed in the kernel):
//! - an input rule decides a looped packet, which arrives on `lo`;
//! - the packet carries its connection through loopback: a chain before
//!   conntrack (raw, priority -300) reads state NEW, not INVALID;
//! - a mark set on the way out is still there in input;
//! - nat chains on prerouting and input never see it (nat of a family
//!   hooks into every hook of it, so output and postrouting set up the
//!   connection's translations), with or without a nat output chain;
//! - a destination rewritten on the way out is what input sees.

use ringfence_analysis::trace::Decision;
use ringfence_analysis::Tracer;
use ringfence_model::{CtStates, Hook, LocalAddrs, Packet};
use ringfence_testkit::{Need, Netns};

const HOST: &str = "198.18.0.5";

/// Listens on 6443 and 10250, connects to argv's address and port, prints
/// the port whose listener got the connection, or `none`.
const PROBE: &str = r#"
import socket, select, sys
dst, dport = sys.argv[1], int(sys.argv[2])
ls = {}
for port in (6443, 10250):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(4); s.setblocking(False); ls[s] = port
c = socket.socket(); c.settimeout(1.0)
try:
    c.connect((dst, dport))
except OSError:
    pass
r, _, _ = select.select(list(ls), [], [], 0.3)
print(ls[r[0]] if r else "none")
"#;

/// One case: the ruleset, its loader, the port connected to, and the port
/// expected to receive the connection (`None`: none does).
struct Case {
    name: &'static str,
    nft: bool,
    ruleset: &'static str,
    dport: u16,
    delivered_to: Option<u16>,
}

const CASES: &[Case] = &[
    Case {
        name: "input drops before accepting lo",
        nft: false,
        ruleset: "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                  -A INPUT -p tcp --dport 10250 -j DROP\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n",
        dport: 10250,
        delivered_to: None,
    },
    Case {
        name: "input accepts on lo",
        nft: false,
        ruleset: "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                  -A INPUT -p tcp --dport 10250 -j DROP\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n",
        dport: 6443,
        delivered_to: Some(6443),
    },
    Case {
        name: "raw prerouting reads the connection, not INVALID",
        nft: false,
        ruleset: "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                  -A PREROUTING -m conntrack --ctstate INVALID -j DROP\nCOMMIT\n",
        dport: 6443,
        delivered_to: Some(6443),
    },
    Case {
        name: "a mark set in mangle output is seen in input",
        nft: false,
        ruleset: "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n\
                  :OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
                  -A OUTPUT -p tcp --dport 6443 -j MARK --set-mark 7\nCOMMIT\n\
                  *filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                  -A INPUT -m mark --mark 7 -j DROP\nCOMMIT\n",
        dport: 6443,
        delivered_to: None,
    },
    Case {
        name: "nat prerouting is passed over",
        nft: false,
        ruleset: "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                  :POSTROUTING ACCEPT [0:0]\n\
                  -A PREROUTING -p tcp --dport 6443 -j DNAT --to-destination 198.18.0.5:10250\n\
                  COMMIT\n",
        dport: 6443,
        delivered_to: Some(6443),
    },
    Case {
        name: "a DNAT in nat output is what input sees",
        nft: false,
        ruleset: "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                  :POSTROUTING ACCEPT [0:0]\n\
                  -A OUTPUT -d 198.18.0.5/32 -p tcp --dport 81 -j DNAT --to-destination 198.18.0.5:10250\n\
                  COMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                  -A INPUT -p tcp --dport 81 -j DROP\nCOMMIT\n",
        dport: 81,
        delivered_to: Some(10250),
    },
    Case {
        name: "nft nat prerouting without a nat output chain is passed over",
        nft: true,
        ruleset: "table ip nat {\n chain pre {\n  type nat hook prerouting priority -100;\n  \
                  tcp dport 6443 dnat to 198.18.0.5:10250\n }\n}\n",
        dport: 6443,
        delivered_to: Some(6443),
    },
    Case {
        name: "nft chain at raw priority reads the connection",
        nft: true,
        ruleset: "table inet f {\n chain pre {\n  type filter hook prerouting priority -300;\n  \
                  ct state invalid drop\n }\n}\n",
        dport: 6443,
        delivered_to: Some(6443),
    },
    Case {
        name: "nft input drops by destination port after accepting nothing on lo",
        nft: true,
        ruleset: "table inet f {\n chain in {\n  type filter hook input priority 0; policy accept;\n  \
                  tcp dport 6443 drop\n }\n chain out {\n  type filter hook output priority 0; policy accept;\n }\n}\n",
        dport: 6443,
        delivered_to: None,
    },
];

fn packet(dport: u16) -> Packet {
    Packet {
        src: HOST.parse().unwrap(),
        dst: HOST.parse().unwrap(),
        protocol: 6,
        sport: 40000,
        dport,
        iif: None,
        oif: Some("lo".into()),
        ct_state: CtStates::NEW,
        ..Packet::default()
    }
}

/// What trace says: delivered (to the port after any rewrite), not
/// delivered, or undecided.
fn traced(case: &Case) -> Result<Option<u16>, String> {
    let rs = ringfence_parse::parse_ruleset(
        case.ruleset,
        "loop.rules",
        ringfence_parse::RulesetFormat::Auto,
    )
    .expect("the case's ruleset parses");
    let local = LocalAddrs::new([HOST.parse().unwrap()]);
    let tracer = Tracer::new(&rs).with_local(local);
    let t = tracer.trace(Hook::Output, &packet(case.dport));
    let [o] = t.outcomes.as_slice() else {
        return Err(format!("{} outcomes: {:?}", t.outcomes.len(), t.outcomes));
    };
    match o.verdict {
        Decision::Accept => {
            let port = o
                .dnat
                .as_deref()
                .and_then(|d| d.rsplit(':').next())
                .map_or(case.dport, |p| p.parse().expect("dnat port"));
            Ok(Some(port))
        }
        Decision::Drop | Decision::Reject => Ok(None),
        Decision::Unknown => Err(format!("unknown: {o:?}")),
    }
}

#[test]
fn trace_follows_a_packet_the_host_sends_itself_as_the_kernel_delivers_it() {
    if !ringfence_testkit::require!(
        Need::Root,
        Need::Tool("ip"),
        Need::Tool("iptables-restore"),
        Need::Tool("nft"),
        Need::Tool("python3"),
    ) {
        return;
    }
    let mut failures = Vec::new();
    for case in CASES {
        let ns = Netns::new("lb");
        ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
        ns.addr("d0", "198.18.0.5/24");
        ns.ip(&["link", "set", "d0", "up"]);
        ns.ip(&["link", "set", "d1", "up"]);
        if case.nft {
            ns.load_nft(case.ruleset);
        } else {
            ns.load_iptables(case.ruleset);
        }
        let out = ns.ok(
            "python3",
            &["-c", PROBE, HOST, &case.dport.to_string()],
            b"",
        );
        let kernel = match out.trim() {
            "none" => None,
            port => Some(port.parse::<u16>().expect("probe prints a port")),
        };
        drop(ns);
        if kernel != case.delivered_to {
            failures.push(format!(
                "{}: the kernel delivered to {kernel:?}, the case expects {:?}",
                case.name, case.delivered_to
            ));
        }
        match traced(case) {
            Ok(t) if t == kernel => {}
            Ok(t) => failures.push(format!(
                "{}: trace says delivered to {t:?}, the kernel to {kernel:?}",
                case.name
            )),
            Err(e) => failures.push(format!("{}: trace undecided: {e}", case.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn without_the_loop_the_output_path_alone_would_accept() {
    // The first case's output path accepts; only input, after loopback,
    // drops: trace's drop comes from the input rule, on the output path.
    let rs = ringfence_parse::parse_ruleset(
        CASES[0].ruleset,
        "loop.rules",
        ringfence_parse::RulesetFormat::Auto,
    )
    .unwrap();
    let tracer = Tracer::new(&rs).with_local(LocalAddrs::new([HOST.parse().unwrap()]));
    let t = tracer.trace(Hook::Output, &packet(10250));
    assert_eq!(t.outcomes.len(), 1);
    assert_eq!(t.outcomes[0].verdict, Decision::Drop);
    assert_eq!(t.outcomes[0].path, Hook::Output);
    assert_eq!(
        t.outcomes[0]
            .rule
            .as_ref()
            .map(|r| r.to_string())
            .as_deref(),
        Some("loop.rules:5")
    );
    // Loopback needs no --local: 127.0.0.1 is the host's on every host.
    let mut p = packet(10250);
    p.src = "127.0.0.1".parse().unwrap();
    p.dst = "127.0.0.1".parse().unwrap();
    let t = Tracer::new(&rs).trace(Hook::Output, &p);
    assert_eq!(t.outcomes[0].verdict, Decision::Drop);
}

/// What the engine says of the same packet: delivered (to the port after
/// any rewrite), not delivered, or undecided.
fn classified(case: &Case) -> Result<Option<u16>, String> {
    use ringfence_analysis::space::packet_box;
    use ringfence_analysis::{Engine, Fate, IfaceUniverse};
    let rs = ringfence_parse::parse_ruleset(
        case.ruleset,
        "loop.rules",
        ringfence_parse::RulesetFormat::Auto,
    )
    .expect("the case's ruleset parses");
    let local = LocalAddrs::new([HOST.parse().unwrap()]);
    let e = Engine::new(&rs, IfaceUniverse::new([&rs]).with_locals(&local.addrs));
    let b = packet_box(&packet(case.dport), &e.u);
    let outcomes = e
        .classify(Hook::Output, vec![b])
        .map_err(|_| "over budget".to_string())?;
    let [o] = outcomes.as_slice() else {
        return Err(format!("{} outcomes", outcomes.len()));
    };
    match o.fate {
        Fate::Accept => Ok(Some(match o.xlat.as_ref().and_then(|x| x.dnat.as_ref()) {
            Some((_, port)) => port.ranges()[0].0,
            None => case.dport,
        })),
        Fate::Drop | Fate::Reject => Ok(None),
        f => Err(format!("{f:?} by {:?}", e.deciding_key(&o.path))),
    }
}

#[test]
fn the_engine_follows_the_loop_to_the_kernels_answer() {
    // The expectations are the kernel's (the first test checks them there).
    let mut failures = Vec::new();
    for case in CASES {
        match classified(case) {
            Ok(d) if d == case.delivered_to => {}
            Ok(d) => failures.push(format!(
                "{}: the engine says delivered to {d:?}, the kernel to {:?}",
                case.name, case.delivered_to
            )),
            Err(e) => failures.push(format!("{}: engine undecided: {e}", case.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
