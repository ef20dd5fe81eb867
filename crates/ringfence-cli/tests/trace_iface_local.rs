//! `trace --local ADDR%IFACE` (issue 15): the host's addresses with the
//! interfaces holding them decide address-type tests limited to one
//! interface, iptables `-m addrtype --limit-iface-in/--limit-iface-out` and
//! nft `fib daddr . iif type` / `fib saddr . oif type`. An address is
//! `LOCAL` only on its own interface; an address given without one leaves
//! such a test two branches (exit 1). Batch outputs are pinned (insta) for
//! both directions and both tools, with their exit codes; a malformed
//! `--local` item is a usage error (exit 2).

mod common;
use common::{run, run_in, write};

/// Input: ssh accepted only to an address local on the input interface.
/// Forward: what leaves with a source local on the output interface is
/// accepted, anything else forwarded is dropped.
const IPT: &str = "*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 22 -m addrtype --dst-type LOCAL --limit-iface-in -j ACCEPT
-A FORWARD -m addrtype --src-type LOCAL --limit-iface-out -j ACCEPT
COMMIT
";

const NFT: &str = "table inet f {
  chain input {
    type filter hook input priority 0; policy drop;
    tcp dport 22 fib daddr . iif type local accept
  }
  chain forward {
    type filter hook forward priority 0; policy drop;
    fib saddr . oif type local accept
  }
}
";

/// Packets to the host's addresses, each arriving on eth0.
const IN_PACKETS: &str = concat!(
    "{\"src\":\"198.18.7.7\",\"dst\":\"198.18.0.5\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":22,\"iif\":\"eth0\"}\n",
    "{\"src\":\"198.18.7.7\",\"dst\":\"198.18.1.5\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":22,\"iif\":\"eth0\"}\n",
    "{\"src\":\"198.18.7.7\",\"dst\":\"198.18.1.5\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":22,\"iif\":\"eth1\"}\n",
);

/// Forwarded packets with the host's addresses as sources, by output
/// interface.
const OUT_PACKETS: &str = concat!(
    "{\"src\":\"198.18.0.5\",\"dst\":\"198.18.50.1\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":443,\"iif\":\"eth9\",\"oif\":\"eth0\"}\n",
    "{\"src\":\"198.18.0.5\",\"dst\":\"198.18.50.1\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":443,\"iif\":\"eth9\",\"oif\":\"eth1\"}\n",
    "{\"src\":\"198.18.9.9\",\"dst\":\"198.18.50.1\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":443,\"iif\":\"eth9\",\"oif\":\"eth0\"}\n",
);

/// Batch `trace` of `packets` through `rules` with `--local local`:
/// (exit code, stdout).
fn trace(rules: &str, packets: &str, local: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = if rules.starts_with('*') {
        "rules.txt"
    } else {
        "rules.nft"
    };
    write(dir.path(), name, rules);
    write(dir.path(), "packets.jsonl", packets);
    let (code, out, err) = run_in(
        dir.path(),
        &[
            "trace",
            "--ruleset",
            name,
            "--packets",
            "packets.jsonl",
            "--format",
            "json",
            "--local",
            local,
        ],
    );
    assert!(err.is_empty() || code == 0, "{err}");
    (code, out)
}

const PLACED: &str = "198.18.0.5%eth0,198.18.1.5%eth1";
const UNPLACED: &str = "198.18.0.5,198.18.1.5%eth1";

#[test]
fn iptables_limit_iface_in_accepts_ssh_only_to_the_input_interfaces_own_address() {
    let (code, out) = trace(IPT, IN_PACKETS, PLACED);
    assert_eq!(code, 0, "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn nft_fib_daddr_iif_type_local_accepts_ssh_only_to_the_input_interfaces_own_address() {
    let (code, out) = trace(NFT, IN_PACKETS, PLACED);
    assert_eq!(code, 0, "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn iptables_limit_iface_out_accepts_only_sources_local_on_the_output_interface() {
    let (code, out) = trace(IPT, OUT_PACKETS, PLACED);
    assert_eq!(code, 0, "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn nft_fib_saddr_oif_type_local_accepts_only_sources_local_on_the_output_interface() {
    let (code, out) = trace(NFT, OUT_PACKETS, PLACED);
    assert_eq!(code, 0, "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn an_address_without_its_interface_leaves_the_limited_test_two_branches_and_exits_1() {
    for rules in [IPT, NFT] {
        let (code, out) = trace(rules, IN_PACKETS, UNPLACED);
        assert_eq!(code, 1, "{out}");
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        // 198.18.0.5 on an unknown interface: accepted or dropped.
        assert_eq!(lines[0]["verdict"], "depends", "{out}");
        // 198.18.1.5 is on eth1: exactly as with every interface known.
        assert_eq!(lines[1]["verdict"], "drop", "{out}");
        assert_eq!(lines[2]["verdict"], "depends", "{out}");
    }
}

#[test]
fn a_malformed_local_item_is_a_usage_error_naming_the_fix() {
    for (item, says) in [
        ("198.18.0.5%", "is not an interface name"),
        ("198.18.0.5%eth/0", "is not an interface name"),
        (
            "198.18.0.5%averyveryverylongname",
            "is not an interface name",
        ),
        ("198.18.0.500%eth0", "is not an IP address"),
    ] {
        let (code, _, err) = run(&[
            "trace",
            "--ruleset",
            "x",
            "--local",
            item,
            "--src",
            "198.18.7.7",
            "--dst",
            "198.18.0.5",
            "--proto",
            "tcp",
            "--dport",
            "22",
        ]);
        assert_eq!(code, 2, "{item}: {err}");
        assert!(err.contains(says), "{item}: {err}");
        assert!(err.contains("e.g."), "{item}: {err}");
    }
}
