//! `--remap`: move every site network into 198.18.0.0/15, keeping prefix
//! lengths, and rewrite the ruleset's IPv4 addresses the same way, so a
//! production site can be rehearsed with isolated addresses.

use ipnet::{IpNet, Ipv4Net};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// A consistent mapping of site networks into 198.18.0.0/15.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remap {
    /// Top-level (not nested) site networks and where each goes.
    pub pairs: Vec<(Ipv4Net, Ipv4Net)>,
}

const BASE: u32 = 0xC612_0000; // 198.18.0.0
const END: u32 = 0xC613_FFFF; // 198.19.255.255

impl Remap {
    /// Plan the mapping: largest networks first, each on an aligned block;
    /// a network inside another moves with it.
    pub fn new(zones: &BTreeMap<String, Vec<IpNet>>) -> Result<Remap, String> {
        let mut nets: Vec<Ipv4Net> = zones
            .values()
            .flatten()
            .filter_map(|n| match n {
                IpNet::V4(n) => Some(n.trunc()),
                IpNet::V6(_) => None,
            })
            .collect();
        nets.sort_by_key(|n| (n.prefix_len(), n.network()));
        nets.dedup();
        let mut pairs: Vec<(Ipv4Net, Ipv4Net)> = Vec::new();
        let mut cursor = u64::from(BASE);
        for n in nets {
            if n.prefix_len() < 16 {
                return Err(format!("network {n} is larger than a /16: it cannot be remapped next to the others inside 198.18.0.0/15"));
            }
            if pairs.iter().any(|(o, _)| o.contains(&n)) {
                continue;
            }
            let size = 1u64 << (32 - n.prefix_len());
            cursor = cursor.div_ceil(size) * size;
            // Keep the top /24 free for the lab's router and outside host.
            if cursor + size > u64::from(END) - 255 {
                return Err("the site's networks do not fit into 198.18.0.0/15".into());
            }
            let to =
                Ipv4Net::new(Ipv4Addr::from(cursor as u32), n.prefix_len()).expect("valid prefix");
            pairs.push((n, to));
            cursor += size;
        }
        Ok(Remap { pairs })
    }

    /// Where one address goes (`None`: outside every site network).
    pub fn addr(&self, a: Ipv4Addr) -> Option<Ipv4Addr> {
        self.pairs
            .iter()
            .find(|(o, _)| o.contains(&a))
            .map(|(o, t)| {
                let host = u32::from(a) & !u32::from(o.netmask());
                Ipv4Addr::from(u32::from(t.network()) | host)
            })
    }

    /// Where one network goes.
    pub fn net(&self, n: &Ipv4Net) -> Option<Ipv4Net> {
        self.addr(n.addr())
            .and_then(|a| Ipv4Net::new(a, n.prefix_len()).ok())
    }

    /// The site's zones with every IPv4 network moved.
    pub fn zones(&self, zones: &BTreeMap<String, Vec<IpNet>>) -> BTreeMap<String, Vec<IpNet>> {
        zones
            .iter()
            .map(|(z, ns)| {
                let v = ns
                    .iter()
                    .map(|n| match n {
                        IpNet::V4(n4) => self.net(n4).map(IpNet::V4).unwrap_or(*n),
                        IpNet::V6(_) => *n,
                    })
                    .collect();
                (z.clone(), v)
            })
            .collect()
    }

    /// Rewrite every IPv4 address or network of a ruleset text that lies in
    /// a site network. Addresses outside every site network (pod and service
    /// CIDRs, `0.0.0.0/0`, loopback) stay as they are: no lab host has them,
    /// so the lab never sends a packet there. A network that only partly
    /// overlaps the site's networks (a /8 holding several zones) cannot be
    /// moved consistently and is an error.
    pub fn ruleset(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let word = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b':' || c == b'_';
            if b[i].is_ascii_digit() && (i == 0 || !word(b[i - 1])) {
                let mut j = i;
                while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.' || b[j] == b'/') {
                    j += 1;
                }
                let tok = &text[i..j];
                let tok_trim = tok.trim_end_matches(['.', '/']);
                let end = i + tok_trim.len();
                let boundary = end >= b.len() || !word(b[end]) || b[end] == b'.';
                if boundary {
                    if let Some(rep) = self.token(tok_trim)? {
                        out += &rep;
                        i = end;
                        continue;
                    }
                }
                out += &text[i..end.max(i + 1)];
                i = end.max(i + 1);
                continue;
            }
            let c = text[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
        Ok(out)
    }

    fn token(&self, tok: &str) -> Result<Option<String>, String> {
        let (a, len) = match tok.split_once('/') {
            Some((a, l)) => match (a.parse::<Ipv4Addr>(), l.parse::<u8>()) {
                (Ok(a), Ok(l)) if l <= 32 => (a, Some(l)),
                _ => return Ok(None),
            },
            None => match tok.parse::<Ipv4Addr>() {
                Ok(a) => (a, None),
                Err(_) => return Ok(None),
            },
        };
        if a.is_unspecified() || a.is_loopback() || len == Some(0) {
            return Ok(None);
        }
        let net = Ipv4Net::new(a, len.unwrap_or(32))
            .map_err(|e| e.to_string())?
            .trunc();
        match self.addr(a) {
            Some(m) if self.pairs.iter().any(|(o, _)| o.contains(&net)) => Ok(Some(match len {
                Some(l) => format!("{m}/{l}"),
                None => m.to_string(),
            })),
            _ if self.pairs.iter().any(|(o, _)| net.contains(o) || o.contains(&net.network())) => Err(format!(
                "the ruleset names {tok}, which holds some of the site's networks but not only them; --remap cannot move it consistently"
            )),
            _ => Ok(None),
        }
    }
}

/// Whether every IPv4 network of the site is already inside 198.18.0.0/15.
pub fn site_is_in_lab_range(zones: &BTreeMap<String, Vec<IpNet>>) -> Result<(), String> {
    for (z, ns) in zones {
        for n in ns {
            if let IpNet::V4(n4) = n {
                if !(crate::is_lab_address(n4.network()) && crate::is_lab_address(n4.broadcast())) {
                    return Err(format!("zone {z}: network {n4} is outside 198.18.0.0/15; pass --remap to rehearse it on isolated addresses"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones() -> BTreeMap<String, Vec<IpNet>> {
        let mut z = BTreeMap::new();
        z.insert("mgmt".into(), vec!["10.1.0.0/24".parse().unwrap()]);
        z.insert("wl".into(), vec!["172.16.0.0/16".parse().unwrap()]);
        z.insert(
            "dns".into(),
            vec![
                "10.1.0.53/32".parse().unwrap(),
                "192.168.5.5/32".parse().unwrap(),
            ],
        );
        z
    }

    #[test]
    fn networks_move_into_the_lab_range_keeping_prefix_lengths_and_nesting() {
        let r = Remap::new(&zones()).unwrap();
        let m = r.zones(&zones());
        for ns in m.values() {
            for n in ns {
                let IpNet::V4(n) = n else { unreachable!() };
                assert!(
                    crate::is_lab_address(n.network()) && crate::is_lab_address(n.broadcast()),
                    "{n}"
                );
            }
        }
        assert_eq!(m["wl"][0].prefix_len(), 16);
        assert_eq!(m["mgmt"][0].prefix_len(), 24);
        // The DNS host inside mgmt stays inside mgmt's new block.
        let IpNet::V4(dns) = m["dns"][0] else {
            unreachable!()
        };
        let IpNet::V4(mg) = m["mgmt"][0] else {
            unreachable!()
        };
        assert!(mg.contains(&dns.addr()));
        assert_eq!(dns.addr().octets()[3], 53);
    }

    #[test]
    fn ruleset_addresses_are_rewritten_others_kept_and_partial_overlaps_refused() {
        let r = Remap::new(&zones()).unwrap();
        let text = "ip saddr 10.1.0.0/24 ip daddr { 10.1.0.53, 172.16.4.1 } tcp dport 30000-32767 accept # v1.0.6\n-A FORWARD -s 0.0.0.0/0 -d 192.168.5.5/32 -j ACCEPT\n";
        let out = r.ruleset(text).unwrap();
        assert!(
            !out.contains("10.1.0.") && !out.contains("172.16.") && !out.contains("192.168."),
            "{out}"
        );
        assert!(
            out.contains("30000-32767") && out.contains("0.0.0.0/0") && out.contains("v1.0.6"),
            "{out}"
        );
        assert_eq!(
            r.ruleset("ip daddr 8.8.8.8 accept").unwrap(),
            "ip daddr 8.8.8.8 accept"
        );
        assert!(r
            .ruleset("-A FORWARD -s 10.0.0.0/8 -j ACCEPT")
            .unwrap_err()
            .contains("10.0.0.0/8"));
    }
}
