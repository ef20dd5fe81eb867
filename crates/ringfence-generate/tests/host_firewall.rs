//! Host firewalls (`--hook input` / `--hook output`) do not lock the host
//! out. The generated input rules, loaded into a namespace of the test's own
//! (nftables, then iptables + ip6tables, then aclgen's speedway rendering of
//! the Aerleon export), still let a process reach a
//! listener on 127.0.0.1:2379 (the API server talking to etcd), and IPv6
//! neighbour discovery still works both ways over a veth to a second
//! namespace (ULA addresses fd00:18:99::/64, only inside our namespaces). A
//! bare drop policy in the same topology fails both checks, so the checks
//! would notice the protections going away. Without root, the rules are
//! read by ringfence-parse and traced: DHCP client traffic passes only where
//! the site has DHCP.

mod common;

use ringfence_generate::{generate_site, Family, Hook, Options, Target};
use ringfence_model::{Hook as ModelHook, Packet, Verdict};
use ringfence_parse::{parse_ruleset, RulesetFormat};
use ringfence_testkit::{Need, Netns};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

const HOST_V6: &str = "fd00:18:99::1";
const PEER_V6: &str = "fd00:18:99::2";

/// A host namespace and a peer joined by a veth, each with a ULA address
/// (no duplicate address detection, so they are usable at once).
fn topology() -> (Netns, Netns) {
    let host = Netns::new("hf");
    let peer = Netns::new("hf");
    host.veth("hf0", &peer, "hf1");
    host.ip(&[
        "addr",
        "add",
        &format!("{HOST_V6}/64"),
        "dev",
        "hf0",
        "nodad",
    ]);
    peer.ip(&[
        "addr",
        "add",
        &format!("{PEER_V6}/64"),
        "dev",
        "hf1",
        "nodad",
    ]);
    (host, peer)
}

/// Whether a TCP connect to a listener on `addr` inside `ns` (listener and
/// client both in `ns`, so over loopback) completes.
fn loopback_connects(ns: &Netns, addr: &str) -> bool {
    let addr: SocketAddr = addr.parse().unwrap();
    ringfence_lab::in_netns(&ns.name, move || {
        let _listener = TcpListener::bind(addr).expect("bind the listener");
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
    })
    .expect("enter the namespace")
}

/// Whether `ns` resolved `neighbour`'s link-layer address on `dev` after
/// trying to reach it (the neighbour entry has an `lladdr`).
fn resolves(ns: &Netns, dev: &str, neighbour: &str) -> bool {
    let target: SocketAddr = format!("[{neighbour}]:2379").parse().unwrap();
    // The connect itself may be dropped or refused; it only makes the
    // kernel solicit the neighbour.
    let _ = ringfence_lab::in_netns(&ns.name, move || {
        let _ = TcpStream::connect_timeout(&target, Duration::from_millis(1500));
    });
    let neigh = ns.ip(&["-6", "neigh", "show", neighbour, "dev", dev]);
    neigh.contains("lladdr")
}

/// A TCP connection from `host` to a listener in `peer` over IPv6: needs
/// neighbour discovery answered to the host (input) and the reply accepted.
fn host_reaches_peer(host: &Netns, peer: &Netns) -> bool {
    let addr: SocketAddr = format!("[{PEER_V6}]:8080").parse().unwrap();
    let listener = ringfence_lab::in_netns(&peer.name, move || TcpListener::bind(addr))
        .expect("enter the peer namespace")
        .expect("bind in the peer");
    let ok = ringfence_lab::in_netns(&host.name, move || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok()
    })
    .expect("enter the host namespace");
    drop(listener);
    ok
}

fn input_opts() -> Options {
    Options {
        hook: Hook::Input,
        ..Options::default()
    }
}

fn assert_host_keeps_working(host: &Netns, peer: &Netns, what: &str) {
    assert!(
        loopback_connects(host, "127.0.0.1:2379"),
        "{what}: a process on the host cannot reach etcd on 127.0.0.1:2379"
    );
    assert!(
        loopback_connects(host, "[::1]:2379"),
        "{what}: [::1]:2379 unreachable over loopback"
    );
    assert!(
        resolves(peer, "hf1", HOST_V6),
        "{what}: the host does not answer neighbour solicitations"
    );
    assert!(
        host_reaches_peer(host, peer),
        "{what}: the host cannot reach its IPv6 neighbour (advertisements or replies dropped)"
    );
}

#[test]
fn input_hook_nftables_keeps_loopback_etcd_and_ipv6_neighbour_discovery() {
    if !ringfence_testkit::require!(Need::Root, Need::Tool("ip"), Need::Tool("nft")) {
        return;
    }
    for (name, site) in common::sites() {
        let out = generate_site(&site, Target::Nftables, &input_opts()).unwrap();
        let (host, peer) = topology();
        host.load_nft(&out.files[0].contents);
        assert_host_keeps_working(&host, &peer, &format!("{name} nftables"));
    }
}

#[test]
fn input_hook_iptables_keeps_loopback_etcd_and_ipv6_neighbour_discovery() {
    if !ringfence_testkit::require!(
        Need::Root,
        Need::Tool("ip"),
        Need::Tool("iptables-restore"),
        Need::Tool("ip6tables-restore")
    ) {
        return;
    }
    for (name, site) in common::sites() {
        let out = generate_site(&site, Target::Iptables, &input_opts()).unwrap();
        let (host, peer) = topology();
        host.load_iptables(&out.file("ipv4").unwrap().contents);
        host.load_ip6tables(&out.file("ipv6").unwrap().contents);
        assert_host_keeps_working(&host, &peer, &format!("{name} iptables"));
    }
}

#[test]
fn input_hook_aerleon_speedway_rendering_keeps_loopback_etcd_and_ipv6_neighbour_discovery() {
    if !common::have_aclgen() {
        return;
    }
    if !ringfence_testkit::require!(
        Need::Root,
        Need::Tool("ip"),
        Need::Tool("iptables-restore"),
        Need::Tool("ip6tables-restore")
    ) {
        return;
    }
    for (name, site) in common::sites() {
        let out = generate_site(&site, Target::Aerleon, &input_opts()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for f in &out.files {
            let p = dir.path().join(&f.path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &f.contents).unwrap();
        }
        ringfence_testkit::repo::run_aclgen(dir.path());
        let site_name = ringfence_generate::plan::sanitize(&site.resolve().site);
        let (host, peer) = topology();
        for (fam, load) in [(4, "v4"), (6, "v6")] {
            let p = dir
                .path()
                .join("out")
                .join(format!("{site_name}-{load}.ipt"));
            // A v4-only site has no v6 policy: its host gets only the v4 file.
            let Ok(text) = std::fs::read_to_string(&p) else {
                assert_eq!(fam, 6, "{name}: no {p:?}");
                continue;
            };
            if fam == 4 {
                host.load_iptables(&text);
            } else {
                host.load_ip6tables(&text);
            }
        }
        assert_host_keeps_working(&host, &peer, &format!("{name} aerleon speedway"));
    }
}

/// The control: an input chain with only a drop policy and replies accepted
/// (what `--hook input` used to write) fails the same checks.
#[test]
fn a_bare_input_drop_policy_loses_loopback_and_neighbour_discovery() {
    if !ringfence_testkit::require!(Need::Root, Need::Tool("ip"), Need::Tool("nft")) {
        return;
    }
    let (host, peer) = topology();
    host.load_nft(
        "table inet bare {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tct state established,related accept\n\t}\n}\n",
    );
    assert!(!loopback_connects(&host, "127.0.0.1:2379"));
    assert!(!resolves(&peer, "hf1", HOST_V6));
}

/// Our iptables output for `opts`, family `fam`, as ringfence's model.
fn model(site: &ringfence_site::Site, opts: &Options, fam: Family) -> ringfence_model::Ruleset {
    let out = generate_site(
        site,
        Target::Iptables,
        &Options {
            family: Some(fam),
            ..opts.clone()
        },
    )
    .unwrap();
    parse_ruleset(&out.files[0].contents, "ours", RulesetFormat::IptablesSave).unwrap()
}

fn verdict(rs: &ringfence_model::Ruleset, hook: ModelHook, p: Packet) -> Verdict {
    ringfence_analysis::Tracer::new(rs).trace(hook, &p).verdict
}

fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> Packet {
    let (s, d): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    Packet::new_connection(s, d, 17, sport, dport)
}

#[test]
fn host_rules_accept_dhcp_replies_only_from_the_sites_dhcp_servers() {
    let site = common::example();
    let server = site.zones["dhcp"][0].addr().to_string();
    let rs = model(&site, &input_opts(), Family::V4);
    let me = "198.18.10.5";
    assert_eq!(
        verdict(&rs, ModelHook::Input, udp(&server, 67, me, 68)),
        Verdict::Accept,
        "a reply from the DHCP server"
    );
    assert_eq!(
        verdict(&rs, ModelHook::Input, udp("198.19.255.1", 67, me, 68)),
        Verdict::Drop,
        "a rogue DHCP server"
    );
    // Requests go to the broadcast address, whatever the servers are.
    let out = Options {
        hook: Hook::Output,
        ..Options::default()
    };
    let rs = model(&site, &out, Family::V4);
    assert_eq!(
        verdict(
            &rs,
            ModelHook::Output,
            udp("0.0.0.0", 68, "255.255.255.255", 67)
        ),
        Verdict::Accept
    );
    // With NSX serving DHCP the server is not a fixed address.
    let nsx = ringfence_site::parse_site(
        &ringfence_site::EXAMPLE_SITE_YAML.replace("nsx: false", "nsx: true"),
        "nsx.yaml",
    )
    .unwrap();
    let rs = model(&nsx, &input_opts(), Family::V4);
    assert_eq!(
        verdict(&rs, ModelHook::Input, udp("198.19.255.1", 67, me, 68)),
        Verdict::Accept
    );
}

#[test]
fn forward_hook_output_carries_no_host_rules() {
    for (name, site) in common::sites() {
        for target in [Target::Nftables, Target::Iptables] {
            let out = generate_site(&site, target, &Options::default()).unwrap();
            for f in &out.files {
                assert!(!f.contents.contains("host:"), "{name} {target} {}", f.path);
            }
            let out = generate_site(&site, target, &input_opts()).unwrap();
            assert!(out
                .files
                .iter()
                .all(|f| f.contents.contains("host: loopback")));
        }
    }
}
