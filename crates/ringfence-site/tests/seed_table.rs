//! The catalog agrees, row by row, with the firewall table of the source
//! document (`../shared/seeds/`), which is our ground truth.

use ringfence_site::{parse_site, PortRange, Protocol, ResolvedSite, Service};
use std::collections::BTreeSet;

const SEED: &str = "../../../shared/seeds/000_9b0ef0b494ce43fd.txt";

/// (name, service column) of every row in the seed's firewall table.
fn seed_rows() -> Vec<(String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SEED);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the seed document must be beside the repo at {}: {e}",
            path.display()
        )
    });
    let table = text
        .split("Name | Source | Destination")
        .nth(1)
        .expect("seed has the firewall table")
        .split("Expected Test Failures")
        .next()
        .unwrap();
    // Rows may wrap: the mc-pods-internal row continues on the next line.
    let joined = table.replace("CLUSTER_CIDR |\nTCP:", "CLUSTER_CIDR | TCP:");
    let mut rows = Vec::new();
    for line in joined.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() >= 5 && !cols[0].is_empty() && !cols[1].is_empty() && cols[0] != "---" {
            let name = cols[0];
            if name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                rows.push((name.to_string(), cols[3].to_string()));
            }
        }
    }
    rows
}

/// What a seed service cell means, with the API port the site resolves to.
fn seed_services(cell: &str, api: u16) -> BTreeSet<Service> {
    let tcp = |first, last| Service {
        protocol: Protocol::Tcp,
        ports: PortRange { first, last },
    };
    let udp = |p: u16, q: u16| Service {
        protocol: Protocol::Udp,
        ports: PortRange { first: p, last: q },
    };
    let mut out = BTreeSet::new();
    for part in cell.split(',').map(str::trim) {
        match part {
            "all" => {
                out.insert(Service {
                    protocol: Protocol::Any,
                    ports: PortRange::ANY,
                });
            }
            "HTTPS" => {
                out.insert(tcp(443, 443));
            }
            "SSH" => {
                out.insert(tcp(22, 22));
            }
            "DNS" => {
                out.insert(udp(53, 53));
                out.insert(tcp(53, 53));
            }
            "NTP" => {
                out.insert(udp(123, 123));
            }
            "DHCP" => {
                out.insert(udp(67, 68));
            }
            "TCP:" => {
                out.insert(tcp(0, u16::MAX));
            }
            p => {
                let p = p.trim_start_matches("TCP:").trim_end_matches('*');
                let (a, b) = p.split_once('-').unwrap_or((p, p));
                let (a, b): (u16, u16) = (a.parse().unwrap(), b.parse().unwrap());
                // The asterisk marks the overridable API server port.
                let (a, b) = if a == 6443 { (api, api) } else { (a, b) };
                out.insert(tcp(a, b));
            }
        }
    }
    out
}

fn all_features() -> ResolvedSite {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/all-features.yaml"
    ))
    .unwrap();
    parse_site(&text, "all-features.yaml").unwrap().resolve()
}

#[test]
fn seed_table_has_every_row_we_expect() {
    let names: Vec<String> = seed_rows().into_iter().map(|r| r.0).collect();
    assert_eq!(names.len(), 18, "seed rows: {names:?}");
    assert_eq!(names.first().map(String::as_str), Some("workload-to-mgmt"));
    assert_eq!(names.last().map(String::as_str), Some("deny-all"));
}

#[test]
fn all_features_site_matches_the_seed_row_by_row() {
    let resolved = all_features();
    let ids: Vec<&str> = resolved.flows.iter().map(|f| f.id.as_str()).collect();
    for (name, cell) in seed_rows() {
        if name == "avi-nodeportlocal" {
            // NodePortLocal excludes NodePort; checked in its own test below.
            assert!(!ids.contains(&"avi-nodeportlocal"));
            continue;
        }
        let flow = resolved
            .flow(&name)
            .unwrap_or_else(|| panic!("seed row `{name}` missing from the resolved flows {ids:?}"));
        let got: BTreeSet<Service> = flow.services.iter().copied().collect();
        assert_eq!(got, seed_services(&cell, 6443), "services of `{name}`");
    }
    let seed_names: BTreeSet<String> = seed_rows().into_iter().map(|r| r.0).collect();
    for id in &ids {
        assert!(
            seed_names.contains(*id),
            "resolved flow `{id}` is not a seed row"
        );
    }
    assert_eq!(ids.last(), Some(&"deny-all"), "deny-all closes the list");
}

#[test]
fn nodeportlocal_mode_swaps_the_avi_row() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/all-features.yaml"
    ))
    .unwrap()
    .replace("mode: nodeport", "mode: nodeportlocal");
    let r = parse_site(&text, "x.yaml").unwrap().resolve();
    let row = seed_rows()
        .into_iter()
        .find(|r| r.0 == "avi-nodeportlocal")
        .unwrap();
    let f = r
        .flow("avi-nodeportlocal")
        .expect("nodeportlocal row present");
    assert_eq!(
        f.services.iter().copied().collect::<BTreeSet<_>>(),
        seed_services(&row.1, 6443)
    );
    assert!(r.flow("avi-nodeport").is_none());
}

#[test]
fn api_port_override_changes_every_starred_port() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/all-features.yaml"
    ))
    .unwrap()
    .replace("api_server_port: 6443", "api_server_port: 8443");
    let r = parse_site(&text, "x.yaml").unwrap().resolve();
    for (name, cell) in seed_rows() {
        if cell.contains('*') {
            let f = r.flow(&name).unwrap();
            assert_eq!(
                f.services.iter().copied().collect::<BTreeSet<_>>(),
                seed_services(&cell, 8443),
                "`{name}` follows CLUSTER_API_SERVER_PORT"
            );
        }
    }
}
