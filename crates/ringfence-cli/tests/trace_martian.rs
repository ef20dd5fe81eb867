//! `trace --local` on packets from the network to a loopback address
//! (issue 15): routing drops them as martians (route_localnet 0), after
//! prerouting for IPv4 (so a DNAT there can still send one to a host
//! address) and on arrival for IPv6. No rule decides such a drop: the
//! outcome is `drop` with `"rule": null` on the path the packet was on, and
//! the text says routing dropped it. The kernel's behaviour behind each line
//! is checked in crates/ringfence-analysis/tests/kernel_martian.rs.

mod common;
use common::{run_in, write};

/// A host (198.18.0.1) that DNATs 8080 to a service on 127.0.0.1 and
/// 9090 sent to 127.0.0.1 to its own address, and accepts all input.
const HOST: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
:POSTROUTING ACCEPT [0:0]\n\
-A PREROUTING -d 198.18.0.1/32 -p tcp --dport 8080 -j DNAT --to-destination 127.0.0.1:8080\n\
-A PREROUTING -d 127.0.0.1/32 -p tcp --dport 9090 -j DNAT --to-destination 198.18.0.1:9090\n\
COMMIT\n\
*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
-A INPUT -p tcp --dport 23 -j DROP\n\
COMMIT\n";

/// Run `trace --local 198.18.0.1 --local 2001:2::1` in a temporary
/// directory holding `rules.rules` (and, for a batch, `packets.jsonl`):
/// (exit code, stdout).
fn trace(packets: Option<&str>, args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "rules.rules", HOST);
    let mut all = vec![
        "trace",
        "--ruleset",
        "rules.rules",
        "--local",
        "198.18.0.1",
        "--local",
        "2001:2::1",
    ];
    if let Some(p) = packets {
        write(dir.path(), "packets.jsonl", p);
        all.extend(["--packets", "packets.jsonl", "--format", "json"]);
    }
    all.extend(args);
    let (code, out, err) = run_in(dir.path(), &all);
    assert!(err.is_empty() || code == 0, "{err}");
    (code, out)
}

#[test]
fn loopback_destinations_from_the_network_are_dropped_by_routing_with_no_rule() {
    let (code, out) = trace(
        Some(concat!(
            // To 127.0.0.1 from the network: a martian, dropped.
            "{\"src\":\"198.18.0.2\",\"dst\":\"127.0.0.1\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":22,\"iif\":\"eth0\"}\n",
            // The same without an input interface: not lo, so the same.
            "{\"src\":\"198.18.0.2\",\"dst\":\"127.0.0.1\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":22}\n",
            // DNATed to 127.0.0.1 in prerouting: dropped after it.
            "{\"src\":\"198.18.0.2\",\"dst\":\"198.18.0.1\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":8080}\n",
            // To 127.0.0.1, DNATed to the host's address: delivered.
            "{\"src\":\"198.18.0.2\",\"dst\":\"127.0.0.1\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":9090}\n",
            // On lo, 127.0.0.1 is no martian: input decides (drops 23).
            "{\"src\":\"127.0.0.1\",\"dst\":\"127.0.0.1\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":23,\"iif\":\"lo\"}\n",
            // IPv6 to ::1 from the network: dropped on arrival.
            "{\"src\":\"2001:2::2\",\"dst\":\"::1\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":22,\"iif\":\"eth0\"}\n",
            // To the host's own address: input accepts.
            "{\"src\":\"198.18.0.2\",\"dst\":\"198.18.0.1\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":22}\n",
        )),
        &[],
    );
    // Every line is decided: a routing drop is no finding.
    assert_eq!(code, 0, "{out}");
    insta::assert_snapshot!("martian_batch", out);
}

#[test]
fn the_text_says_routing_dropped_a_martian() {
    let one = |dst: &str, dport: &str| {
        trace(
            None,
            &[
                "--src",
                "198.18.0.2",
                "--dst",
                dst,
                "--proto",
                "tcp",
                "--sport",
                "40000",
                "--dport",
                dport,
                "--iif",
                "eth0",
            ],
        )
    };
    let (code, direct) = one("127.0.0.1", "22");
    assert_eq!(code, 0, "{direct}");
    insta::assert_snapshot!("martian_direct_text", direct);
    let (code, dnat) = one("198.18.0.1", "8080");
    assert_eq!(code, 0, "{dnat}");
    insta::assert_snapshot!("martian_dnat_text", dnat);
}
