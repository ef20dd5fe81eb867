//! `trace` follows address translations (issue 15, "Rewrites are part of
//! the packet"): a DNAT or REDIRECT rewrites the packet later stages see and
//! routes it by the new destination, a SNAT or MASQUERADE is reported on the
//! outcome, and each address a translation may choose is an outcome of its
//! own. The batch lines and the text output are pinned with their exit codes.

mod common;
use common::{run_in, write};

/// kube-proxy's shape: a ClusterIP balanced over three endpoints by
/// statistic, the masquerade mark for sources outside the pod network, and
/// FORWARD accepting what was translated.
const CLUSTER_IP: &str = "*nat\n\
:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
:SVC - [0:0]\n:SEP-A - [0:0]\n:SEP-B - [0:0]\n:SEP-C - [0:0]\n:MASQ - [0:0]\n\
-A PREROUTING -d 198.18.32.10/32 -p tcp --dport 80 -j SVC\n\
-A SVC ! -s 198.18.64.0/18 -j MASQ\n\
-A SVC -m statistic --mode random --probability 0.33333 -j SEP-A\n\
-A SVC -m statistic --mode random --probability 0.5 -j SEP-B\n\
-A SVC -j SEP-C\n\
-A SEP-A -p tcp -j DNAT --to-destination 198.18.64.10:8080\n\
-A SEP-B -p tcp -j DNAT --to-destination 198.18.64.11:8080\n\
-A SEP-C -p tcp -j DNAT --to-destination 198.18.64.12:8080\n\
-A MASQ -j MARK --set-xmark 0x4000/0x4000\n\
-A POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE\n\
COMMIT\n\
*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
-A FORWARD -m conntrack --ctstate DNAT -j ACCEPT\n\
COMMIT\n";

/// Run `trace` in a temporary directory holding `rules.rules` (and, for a
/// batch, `packets.jsonl`): (exit code, stdout).
fn trace(rules: &str, packets: Option<&str>, args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "rules.rules", rules);
    let mut all = vec!["trace", "--ruleset", "rules.rules"];
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
fn a_cluster_ip_dnat_balanced_by_statistic_gives_one_outcome_per_endpoint_with_masquerade() {
    let (code, out) = trace(
        CLUSTER_IP,
        Some(concat!(
            "{\"src\":\"198.18.0.10\",\"dst\":\"198.18.32.10\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":80}\n",
            "{\"src\":\"198.18.64.11\",\"dst\":\"198.18.32.10\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":80}\n",
            "{\"src\":\"198.18.0.10\",\"dst\":\"198.18.32.10\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":81}\n",
        )),
        &["--local", "198.18.0.1"],
    );
    assert_eq!(code, 0, "{out}");
    insta::assert_snapshot!("cluster_ip_batch", out);
    let (code, text) = trace(
        CLUSTER_IP,
        None,
        &[
            "--local",
            "198.18.0.1",
            "--src",
            "198.18.0.10",
            "--dst",
            "198.18.32.10",
            "--proto",
            "tcp",
            "--sport",
            "40000",
            "--dport",
            "80",
        ],
    );
    assert_eq!(code, 0, "{text}");
    insta::assert_snapshot!("cluster_ip_text", text);
}

#[test]
fn masquerade_in_postrouting_is_the_outcomes_snat_and_a_snat_names_its_address() {
    let rules = "*nat\n:POSTROUTING ACCEPT [0:0]\n\
        -A POSTROUTING -s 198.18.64.0/24 -o up0 -j MASQUERADE\n\
        -A POSTROUTING -s 198.18.65.0/24 -p tcp -j SNAT --to-source 198.18.1.1:5000\n\
        COMMIT\n\
        *filter\n:FORWARD DROP [0:0]\n\
        -A FORWARD -s 198.18.64.0/23 -j ACCEPT\nCOMMIT\n";
    let (code, out) = trace(
        rules,
        Some(concat!(
            "{\"src\":\"198.18.64.11\",\"dst\":\"198.18.1.2\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":80,\"iif\":\"veth0\",\"oif\":\"up0\"}\n",
            "{\"src\":\"198.18.64.11\",\"dst\":\"198.18.1.2\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":80,\"iif\":\"veth0\",\"oif\":\"veth1\"}\n",
            "{\"src\":\"198.18.65.11\",\"dst\":\"198.18.1.2\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":80,\"iif\":\"veth0\",\"oif\":\"up0\"}\n",
            "{\"src\":\"198.18.66.11\",\"dst\":\"198.18.1.2\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":80,\"iif\":\"veth0\",\"oif\":\"up0\"}\n",
        )),
        &["--local", "198.18.0.1,198.18.1.1"],
    );
    assert_eq!(code, 0, "{out}");
    insta::assert_snapshot!("masquerade_batch", out);
}

#[test]
fn redirect_sends_the_packet_to_the_host_on_the_input_path_or_to_loopback_from_the_host() {
    let rules = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
        -A PREROUTING -p tcp --dport 80 -j REDIRECT --to-ports 3128\n\
        -A OUTPUT -p tcp --dport 80 -j REDIRECT --to-ports 3128\n\
        COMMIT\n\
        *filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
        -A INPUT -p tcp --dport 3128 -j ACCEPT\nCOMMIT\n";
    let packets = concat!(
        "{\"src\":\"198.18.0.10\",\"dst\":\"198.18.9.9\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":80,\"iif\":\"ext0\"}\n",
        "{\"src\":\"198.18.0.1\",\"dst\":\"198.18.9.9\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":80,\"from_host\":true}\n",
        "{\"src\":\"198.18.0.10\",\"dst\":\"198.18.9.9\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":443,\"iif\":\"ext0\"}\n",
    );
    let (code, out) = trace(rules, Some(packets), &["--local", "198.18.0.1"]);
    // The packet the host sends goes to loopback and is followed back
    // through prerouting and input, where the proxy port is accepted:
    // every packet is decided, exit 0.
    assert_eq!(code, 0, "{out}");
    insta::assert_snapshot!("redirect_batch", out);
    // Without the host's addresses the model cannot say where REDIRECT
    // goes: unknown, named by the rule.
    let (code, out) = trace(rules, Some(packets), &[]);
    assert_eq!(code, 1, "{out}");
    insta::assert_snapshot!("redirect_without_local_batch", out);
}

#[test]
fn an_nft_dnat_map_translates_by_element_and_a_wide_range_is_unknown() {
    let rules = "table ip nat {\n\
          chain pre {\n\
            type nat hook prerouting priority dstnat; policy accept;\n\
            dnat to ip daddr map { 198.18.32.1 : 198.18.64.10, 198.18.32.2 : 198.18.64.11 }\n\
            ip daddr 198.18.32.3 tcp dport 80 dnat to 198.18.64.20-198.18.64.21:8080\n\
            ip daddr 198.18.32.4 dnat to 198.18.64.0-198.18.64.255\n\
          }\n\
        }\n\
        table ip filter {\n\
          chain fwd {\n\
            type filter hook forward priority 0; policy drop;\n\
            ct status dnat ip daddr 198.18.64.10 accept\n\
            ct status dnat tcp dport 8080 accept\n\
          }\n\
        }\n";
    let (code, out) = trace(
        rules,
        Some(concat!(
            "{\"src\":\"198.18.0.10\",\"dst\":\"198.18.32.1\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":80}\n",
            "{\"src\":\"198.18.0.10\",\"dst\":\"198.18.32.2\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":80}\n",
            "{\"src\":\"198.18.0.10\",\"dst\":\"198.18.32.3\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":80}\n",
            "{\"src\":\"198.18.0.10\",\"dst\":\"198.18.32.4\",\"proto\":\"tcp\",\"sport\":40000,\"dport\":80}\n",
        )),
        &["--local", "198.18.0.1"],
    );
    // The wide range is unknown: exit 1.
    assert_eq!(code, 1, "{out}");
    insta::assert_snapshot!("nft_map_batch", out);
    // The text says why the wide range is unknown.
    let (code, text) = trace(
        rules,
        None,
        &[
            "--local",
            "198.18.0.1",
            "--src",
            "198.18.0.10",
            "--dst",
            "198.18.32.4",
            "--proto",
            "tcp",
            "--sport",
            "40000",
            "--dport",
            "80",
        ],
    );
    assert_eq!(code, 1, "{text}");
    insta::assert_snapshot!("nft_wide_range_text", text);
}
