//! The probe engine's timeouts and window from measurement, on the real
//! kernel: answers arriving late through a delayed link (`tc qdisc netem`),
//! a router rate-limiting its ICMP errors, and a network that never answers.
//! Each test builds client — router — server namespaces of its own
//! (`rf-prt<pid>-*`, 198.18.0.0/15 only), probes from the client, and
//! removes everything on every exit path. Needs root, `ip`, `nft`, `tc`.
//! Assertions are on verdicts and on what the estimator measured, never on
//! wall time (the machine may be loaded).

use ringfence_lab::live::{self, Settings, State, Target};
use ringfence_lab::rtt::{RttBounds, INITIAL_TIMEOUT};
use ringfence_lab::site_lab::Proto;
use ringfence_lab::{EngineStats, Listeners};
use ringfence_testkit::netns::{Line3, Line3Spec};
use ringfence_testkit::Need;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

fn ready() -> bool {
    ringfence_testkit::require!(
        Need::Root,
        Need::Tool("ip"),
        Need::Tool("nft"),
        Need::Tool("tc")
    )
}

/// The example site's avi-se host probes a workload node: both are site
/// addresses, so `probe` accepts the targets.
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 30, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 20, 1);
/// Listening (open), not listening (reset), rejected with ICMP, dropped.
const OPEN: std::ops::Range<u16> = 30000..30004;
const RESET: std::ops::Range<u16> = 30100..30104;
const DROPPED: std::ops::Range<u16> = 32000..32004;

/// client (198.18.30.1) — router — server (198.18.20.1), with `rules` in
/// the router's forward hook and listeners on the OPEN ports.
///
/// A rule that names a port range must name the direction too (`ip daddr
/// SERVER`): the answers travel to the client's ephemeral port, and the
/// kernel's default ephemeral range (32768-60999) overlaps port ranges
/// such as 32000-32999. Without it an answer whose client port falls in
/// the range is dropped, and the kernel gives a retry of the same
/// destination a port next to the first, so both tries lose their answer.
fn line(rules: &str) -> (Line3, Listeners) {
    let l = Line3::new(&Line3Spec {
        tag: "prt",
        router_in: ("r0", "198.18.30.254/24"),
        router_out: ("r1", "198.18.20.254/24"),
        client_addrs: vec![format!("{CLIENT}/24")],
        server_addrs: vec![format!("{SERVER}/24")],
    });
    l.router.load_nft(&format!(
        "table inet prt {{\n  chain forward_probe {{\n    type filter hook forward priority 0; policy accept;\n{rules}\n  }}\n}}\n"
    ));
    let listeners = Listeners::start(
        &OPEN
            .map(|p| (l.server.name.clone(), SocketAddrV4::new(SERVER, p)))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    (l, listeners)
}

fn targets(ports: impl Iterator<Item = u16>) -> Vec<Target> {
    ports
        .map(|port| Target {
            flow: "avi-nodeport".into(),
            src: CLIENT,
            dst: SERVER,
            proto: Proto::Tcp,
            port,
            required: true,
        })
        .collect()
}

/// Probe `targets` from the client namespace, running `before` there first
/// (right before the first probe leaves).
fn probe_after(
    l: &Line3,
    targets: Vec<Target>,
    settings: Settings,
    before: &(dyn Fn() + Sync),
) -> (Vec<(u16, State)>, EngineStats) {
    let site = ringfence_site::example_site().resolve();
    ringfence_lab::in_netns(&l.client.name, || {
        before();
        let (res, stats) =
            live::run_measured(&site, targets, &settings, None, Arc::new(|_| {})).unwrap();
        (
            res.into_iter()
                .map(|r| (r.target.port, r.state))
                .collect::<Vec<_>>(),
            stats,
        )
    })
    .unwrap()
}

/// Probe `targets` from the client namespace.
fn probe(l: &Line3, targets: Vec<Target>, settings: Settings) -> (Vec<(u16, State)>, EngineStats) {
    probe_after(l, targets, settings, &|| {})
}

fn want(ports: &[(std::ops::Range<u16>, State)]) -> Vec<(u16, State)> {
    ports
        .iter()
        .flat_map(|(r, s)| r.clone().map(move |p| (p, *s)))
        .collect()
}

fn unlimited() -> Settings {
    Settings {
        rate: 0,
        ..Settings::default()
    }
}

#[test]
fn late_answers_through_a_delayed_link_are_waited_for_and_measured() {
    if !ready() {
        return;
    }
    // The listeners close what they accept: their FIN (after the probe has
    // gone) would take tokens from the next answer below, so it is dropped.
    let (l, _listeners) = line(
        "    ip daddr 198.18.20.1 tcp dport 32000-32999 drop\n    ip saddr 198.18.20.1 tcp flags & fin == fin drop",
    );
    // Every answer towards the client leaves the router late: 300 ms with
    // netem where the kernel has it; otherwise a token bucket of 2 kbit/s
    // with a 100-byte burst, which holds each SYN-ACK (74 bytes) about
    // 300 ms and each reset (54 bytes) about 220 ms. One probe at a time, so
    // answers never queue behind each other.
    let netem = l.router.run(
        "tc",
        &[
            "qdisc", "add", "dev", "r0", "root", "netem", "delay", "300ms",
        ],
        b"",
    );
    let shaped = !netem.status.success();
    if shaped {
        // Nothing but the answers may take the bucket's tokens: no ARP
        // (permanent neighbours on both ends) and no IPv6 on the link.
        let mac = |ns: &ringfence_testkit::Netns, dev: &str| {
            let out = ns.ip(&["-o", "link", "show", dev]);
            let w: Vec<&str> = out.split_whitespace().collect();
            let at = w.iter().position(|x| *x == "link/ether").unwrap();
            w[at + 1].to_string()
        };
        let (client_mac, router_mac) = (mac(&l.client, "c0"), mac(&l.router, "r0"));
        l.router.ip(&[
            "neigh",
            "replace",
            &CLIENT.to_string(),
            "lladdr",
            &client_mac,
            "dev",
            "r0",
            "nud",
            "permanent",
        ]);
        l.client.ip(&[
            "neigh",
            "replace",
            "198.18.30.254",
            "lladdr",
            &router_mac,
            "dev",
            "c0",
            "nud",
            "permanent",
        ]);
        l.router.sysctl(&["net.ipv6.conf.r0.disable_ipv6=1"]);
        l.router.ok(
            "tc",
            &[
                "qdisc", "add", "dev", "r0", "root", "tbf", "rate", "2kbit", "burst", "100",
                "latency", "5s",
            ],
            b"",
        );
    }
    // The bucket starts full and refills while the link is idle: empty it
    // right before the first probe (from the probing thread, so no setup
    // time lets tokens build up again), and the first answer is as late as
    // the rest. The router's ICMP port unreachable for a 30-byte datagram to
    // a closed port of its own is one 100-byte frame out of r0 (14 Ethernet,
    // 20 IP, 8 ICMP, then the datagram's 20 + 8 header bytes and payload).
    let drain = || {
        if shaped {
            let u = std::net::UdpSocket::bind(SocketAddrV4::new(CLIENT, 0)).unwrap();
            u.send_to(&[0u8; 100 - 14 - 20 - 8 - 20 - 8], "198.18.30.254:9")
                .unwrap();
        }
    };
    let delay = Duration::from_millis(150);
    let one_at_a_time = Settings {
        concurrency: 1,
        ..unlimited()
    };
    let all = || OPEN.chain(RESET).chain(DROPPED);
    let (got, stats) = probe_after(&l, targets(all()), one_at_a_time.clone(), &drain);
    assert_eq!(
        got,
        want(&[
            (OPEN, State::Open),
            (RESET, State::Closed),
            (DROPPED, State::Filtered)
        ])
    );
    // The estimate learnt the delay, and the timeout covers it.
    let host = stats.hosts.iter().find(|h| h.addr == SERVER).unwrap();
    let srtt = host.srtt.expect("answers were measured");
    assert!(
        srtt >= delay,
        "srtt {srtt:?} below the link's delay; {stats:#?}"
    );
    assert!(srtt < INITIAL_TIMEOUT, "srtt {srtt:?}");
    assert!(host.timeout >= srtt, "{host:?}");
    assert!(
        host.samples >= (OPEN.len() + RESET.len()) as u64,
        "{host:?}"
    );
    // The same answers with a fixed 100 ms timeout: every one comes too
    // late, so all look dropped. Measuring is what gets them right.
    let fixed = Settings {
        timeout: Some(Duration::from_millis(100)),
        ..one_at_a_time
    };
    let (got, stats) = probe_after(&l, targets(OPEN.chain(RESET)), fixed, &drain);
    assert!(got.iter().all(|(_, s)| *s == State::Filtered), "{got:?}");
    assert_eq!(stats.samples, 0);
}

#[test]
fn icmp_rate_limiting_shrinks_the_window_and_earns_retries_until_every_reject_is_seen() {
    if !ready() {
        return;
    }
    let rejected = 31000..31040u16;
    let (l, _listeners) = line(
        "    ip daddr 198.18.20.1 tcp dport 31000-31999 reject with icmp type port-unreachable",
    );
    // The router answers the client with at most one ICMP error per 50 ms
    // (a burst of 6, then 20 a second): most rejects of a burst go silent.
    l.router.sysctl(&["net.ipv4.icmp_ratelimit=50"]);
    let (got, stats) = probe(&l, targets(rejected.clone()), unlimited());
    let filtered: Vec<u16> = got
        .iter()
        .filter(|(_, s)| *s != State::Closed)
        .map(|(p, _)| *p)
        .collect();
    assert!(
        filtered.is_empty(),
        "rejects taken for drops: {filtered:?}; {stats:#?}"
    );
    // Answers came only on retries: each a loss; the window shrank and the
    // network earned more retries than the default one.
    assert!(stats.late_answers > 0, "{stats:#?}");
    assert!(stats.shrinks > 0, "{stats:#?}");
    assert!(stats.window_low < stats.window_start, "{stats:#?}");
    assert!(
        stats.max_retries_earned > live::DEFAULT_RETRIES,
        "{stats:#?}"
    );
}

#[test]
fn a_silent_network_keeps_the_initial_timeout_and_calls_every_port_filtered() {
    if !ready() {
        return;
    }
    let (l, _listeners) = line("    ip daddr 198.18.20.0/24 drop");
    let bounds = RttBounds::default();
    let (got, stats) = probe(&l, targets(OPEN.chain(DROPPED)), unlimited());
    assert!(got.iter().all(|(_, s)| *s == State::Filtered), "{got:?}");
    // Nothing came back: nothing measured, the conservative initial timeout
    // stays, every port was tried once more, and silence moved no window.
    assert_eq!(stats.samples, 0);
    let host = stats.hosts.iter().find(|h| h.addr == SERVER).unwrap();
    assert_eq!((host.srtt, host.timeout), (None, bounds.initial));
    assert_eq!(stats.retries, (OPEN.len() + DROPPED.len()) as u64);
    assert_eq!(stats.shrinks, 0);
    assert_eq!(stats.window_high, stats.window_start);
}
