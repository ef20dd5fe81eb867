//! The kernel harness on a real kernel: needs root, `ip` and `nft` (CI has
//! them); prints "skipped: ..." and passes trivially otherwise.

use ringfence_lab::{
    cleanup_prefix, list_namespaces, probe_all, HostSpec, Lab, LabError, LabSpec, Listeners,
    Outcome, Probe, Transport,
};
use ringfence_testkit::Need;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

fn ready() -> bool {
    ringfence_testkit::require!(Need::Root, Need::Tool("ip"), Need::Tool("nft"))
}

fn two_hosts(tag: &str) -> LabSpec {
    LabSpec {
        tag: tag.into(),
        hosts: vec![
            HostSpec {
                name: "a".into(),
                subnet: (Ipv4Addr::new(198, 18, 1, 0), 24),
                addrs: vec![Ipv4Addr::new(198, 18, 1, 10)],
            },
            HostSpec {
                name: "b".into(),
                subnet: (Ipv4Addr::new(198, 18, 2, 0), 24),
                addrs: vec![Ipv4Addr::new(198, 18, 2, 20), Ipv4Addr::new(198, 18, 2, 21)],
            },
        ],
        state_dir: std::env::temp_dir().join("ringfence-lab-tests"),
    }
}

fn ours(tag: &str) -> Vec<String> {
    let p = format!("rf-{tag}-");
    list_namespaces()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&p))
        .collect()
}

#[test]
fn forwarded_connects_are_classified_connected_refused_timeout_and_nothing_remains() {
    if !ready() {
        return;
    }
    let tag = format!("lk{}", std::process::id());
    {
        let lab = Lab::up(two_hosts(&tag)).unwrap();
        assert_eq!(ours(&tag).len(), 3);
        lab.load_nft(&format!(
            "table inet f {{
  chain through {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname \"{a}\" tcp dport 8080 accept
    iifname \"{a}\" tcp dport 8081 reject with tcp reset
    iifname \"{a}\" tcp dport 8083 reject
  }}
}}",
            a = lab.router_iface("a")
        ))
        .unwrap();
        let dst_ns = lab.host_ns("b");
        let binds: Vec<_> = [8080, 8081, 8082, 8083]
            .iter()
            .map(|&p| {
                (
                    dst_ns.clone(),
                    SocketAddrV4::new(Ipv4Addr::new(198, 18, 2, 20), p),
                )
            })
            .collect();
        let _listeners = Listeners::start(&binds).unwrap();
        let probes: Vec<Probe> = [8080u16, 8081, 8082, 8083]
            .iter()
            .enumerate()
            .map(|(i, &p)| Probe {
                from_ns: lab.host_ns("a"),
                src: SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 10), 40000 + i as u16),
                dst: SocketAddrV4::new(Ipv4Addr::new(198, 18, 2, 20), p),
                transport: Transport::Tcp,
            })
            .collect();
        let out = probe_all(&probes, Duration::from_millis(400), 4).unwrap();
        assert_eq!(
            out,
            vec![
                Outcome::Connected,
                Outcome::Refused,
                Outcome::Timeout,
                Outcome::Refused
            ]
        );
        // The reverse direction is dropped by the policy.
        let back = probe_all(
            &[Probe {
                from_ns: lab.host_ns("b"),
                src: SocketAddrV4::new(Ipv4Addr::new(198, 18, 2, 21), 40100),
                dst: SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 10), 8080),
                transport: Transport::Tcp,
            }],
            Duration::from_millis(300),
            1,
        )
        .unwrap();
        assert_eq!(back, vec![Outcome::Timeout]);
        let dump = lab.dump_nft().unwrap();
        assert!(dump.contains("\"hook\": \"forward\""), "{dump}");
        lab.down().unwrap();
    }
    assert!(ours(&tag).is_empty(), "left behind: {:?}", ours(&tag));
}

#[test]
fn a_panic_inside_a_lab_still_removes_it() {
    if !ready() {
        return;
    }
    let tag = format!("lp{}", std::process::id());
    let t = tag.clone();
    let r = std::thread::spawn(move || {
        let _lab = Lab::up(two_hosts(&t)).unwrap();
        assert_eq!(ours(&t).len(), 3);
        panic!("test panic inside the lab");
    })
    .join();
    assert!(r.is_err());
    assert!(ours(&tag).is_empty(), "left behind: {:?}", ours(&tag));
}

#[test]
fn a_lab_whose_owner_vanished_is_removed_by_prefix_cleanup() {
    if !ready() {
        return;
    }
    let tag = format!("lc{}", std::process::id());
    let lab = Lab::up(two_hosts(&tag)).unwrap();
    let state = lab.state_path().to_path_buf();
    std::mem::forget(lab); // as if the process had been killed
    assert_eq!(ours(&tag).len(), 3);
    assert!(state.exists());
    let removed = cleanup_prefix(&format!("rf-{tag}-")).unwrap();
    assert_eq!(removed.len(), 3);
    assert!(ours(&tag).is_empty());
    // A later `up` with the same tag finds the stale state file and reuses the tag.
    let lab = Lab::up(two_hosts(&tag)).unwrap();
    drop(lab);
    assert!(ours(&tag).is_empty());
}

#[test]
fn addresses_outside_the_lab_range_are_refused_before_anything_is_made() {
    if !ready() {
        return;
    }
    let mut spec = two_hosts("refuse");
    spec.hosts[0].subnet = (Ipv4Addr::new(10, 0, 0, 0), 24);
    spec.hosts[0].addrs = vec![Ipv4Addr::new(10, 0, 0, 5)];
    match Lab::up(spec) {
        Err(LabError::UnsafeAddress(a)) => assert_eq!(a, "10.0.0.0"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let probe = Probe {
        from_ns: "rf-none".into(),
        src: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 1000),
        dst: SocketAddrV4::new(Ipv4Addr::new(8, 8, 8, 8), 53),
        transport: Transport::Udp,
    };
    assert!(matches!(
        probe_all(&[probe], Duration::from_millis(10), 1),
        Err(LabError::UnsafeAddress(_))
    ));
}

#[test]
fn udp_probes_to_echo_responders_are_classified_too() {
    if !ready() {
        return;
    }
    let tag = format!("lu{}", std::process::id());
    let lab = Lab::up(two_hosts(&tag)).unwrap();
    lab.load_nft(
        "table ip f {
  chain c {
    type filter hook forward priority 0; policy accept;
    ct state established,related accept
    udp dport 54 reject
    udp dport 55 drop
    udp dport 57 reject with icmp host-unreachable
  }
}",
    )
    .unwrap();
    let dst = Ipv4Addr::new(198, 18, 2, 20);
    let udp: Vec<_> = [53, 54, 55, 57]
        .iter()
        .map(|&p| (lab.host_ns("b"), SocketAddrV4::new(dst, p)))
        .collect();
    let listeners = Listeners::start_with(&[], &udp).unwrap();
    assert_eq!(listeners.len(), 4);
    let probes: Vec<Probe> = [53u16, 54, 55, 56, 57]
        .iter()
        .enumerate()
        .map(|(i, &p)| Probe {
            from_ns: lab.host_ns("a"),
            src: SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 10), 41000 + i as u16),
            dst: SocketAddrV4::new(dst, p),
            transport: Transport::Udp,
        })
        .collect();
    let out = probe_all(&probes, Duration::from_millis(400), 4).unwrap();
    // 56 has no responder: the host itself answers port unreachable.
    // 57's host-unreachable is a "soft" ICMP error, seen through IP_RECVERR.
    assert_eq!(
        out,
        vec![
            Outcome::Connected,
            Outcome::Refused,
            Outcome::Timeout,
            Outcome::Refused,
            Outcome::Refused
        ]
    );
    drop(listeners);
    lab.down().unwrap();
    assert!(ours(&tag).is_empty());
}

#[test]
fn a_whole_nodeport_range_of_listeners_answers_every_probe() {
    if !ready() {
        return;
    }
    let tag = format!("ln{}", std::process::id());
    let lab = Lab::up(two_hosts(&tag)).unwrap();
    lab.load_nft(
        "table ip f {
  chain c {
    type filter hook forward priority 0; policy accept;
  }
}",
    )
    .unwrap();
    let dst = Ipv4Addr::new(198, 18, 2, 21);
    let ports: Vec<u16> = (30000..=32767).collect();
    let binds: Vec<_> = ports
        .iter()
        .map(|&p| (lab.host_ns("b"), SocketAddrV4::new(dst, p)))
        .collect();
    let listeners = Listeners::start(&binds).unwrap();
    assert_eq!(listeners.len(), 2768);
    let probes: Vec<Probe> = ports
        .iter()
        .map(|&p| Probe {
            from_ns: lab.host_ns("a"),
            src: SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, 10), p + 10000),
            dst: SocketAddrV4::new(dst, p),
            transport: Transport::Tcp,
        })
        .collect();
    let out = probe_all(&probes, Duration::from_millis(800), 64).unwrap();
    let open = out.iter().filter(|o| **o == Outcome::Connected).count();
    assert_eq!(open, ports.len(), "{out:?}");
    drop(listeners);
    lab.down().unwrap();
    assert!(ours(&tag).is_empty());
}
