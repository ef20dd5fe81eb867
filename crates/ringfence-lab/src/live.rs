//! `ringfence probe`: from the machine it runs on, connect to every
//! destination and port of the site's flows whose sources include it.
//!
//! It is no general scanner: every target is a destination of a site flow,
//! or (`--to`) an address inside the site's zones (checked again right
//! before probing). Concurrency and a rate limit keep
//! it polite; UDP uses protocol-shaped requests and says "open|filtered"
//! when silence cannot tell the two apart.

pub use crate::engine::Tally;
use crate::engine::{Attempt, EngineStats, Pace, Timing};
use crate::rtt::RttBounds;
use crate::site_lab::{representatives, sample_ports, Proto};
use crate::{Outcome, Transport};
use ipnet::IpNet;
use ringfence_site::{FlowAction, Protocol, ResolvedSite};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

/// One target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The flow it belongs to (for a negative check: the flow whose destination it is).
    pub flow: String,
    /// The local address it is probed from (the source the flow names).
    pub src: Ipv4Addr,
    /// Destination.
    pub dst: Ipv4Addr,
    /// Protocol.
    pub proto: Proto,
    /// Port.
    pub port: u16,
    /// Whether an allow flow requires it open (false: a negative check).
    pub required: bool,
}

/// What a live probe saw, in nmap's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum State {
    /// Connected / answered.
    #[serde(rename = "open")]
    Open,
    /// Reset or ICMP unreachable.
    #[serde(rename = "closed")]
    Closed,
    /// No answer to a TCP SYN.
    #[serde(rename = "filtered")]
    Filtered,
    /// No answer to a UDP request: open and silent, or dropped.
    #[serde(rename = "open|filtered")]
    OpenFiltered,
}

impl State {
    /// nmap's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Closed => "closed",
            State::Filtered => "filtered",
            State::OpenFiltered => "open|filtered",
        }
    }
}

/// What `--expect` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Required open, negative checks closed.
    Auto,
    /// Everything open.
    Open,
    /// Everything closed.
    Closed,
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveResult {
    /// The target.
    #[serde(flatten)]
    pub target: Target,
    /// What came back.
    pub state: State,
    /// Whether it meets the expectation (`None`: no expectation, or UDP silence that cannot tell).
    pub ok: Option<bool>,
}

/// The IPv4 addresses of this machine's interfaces (`ip -4 -o addr`).
pub fn local_addrs() -> std::io::Result<Vec<Ipv4Addr>> {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.position(|x| x == "inet")?;
            w.next()?.split('/').next()?.parse().ok()
        })
        .filter(|a: &Ipv4Addr| !a.is_loopback())
        .collect())
}

/// The local addresses that lie in `zone` (or in any zone, for `None`).
pub fn addrs_in_zone(
    zones: &std::collections::BTreeMap<String, Vec<IpNet>>,
    zone: Option<&str>,
    local: &[Ipv4Addr],
) -> Vec<Ipv4Addr> {
    local
        .iter()
        .copied()
        .filter(|a| {
            zones
                .iter()
                .filter(|(z, _)| zone.is_none_or(|q| q == z.as_str()))
                .any(|(_, ns)| ns.iter().any(|n| n.contains(&IpAddr::V4(*a))))
        })
        .collect()
}

const NEGATIVE_PORTS: [u16; 4] = [9, 2222, 12345, 40404];

/// Every target for flows whose sources hold one of `srcs`: every
/// destination host (a network's first, middle and last usable address), every port
/// (ranges in full, or `sample` ports of each range), plus one negative
/// check per destination on a port no allow flow opens.
pub fn targets(
    site: &ResolvedSite,
    srcs: &[Ipv4Addr],
    flows: Option<&[String]>,
    sample: Option<usize>,
) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    let mut have: std::collections::HashSet<(Ipv4Addr, Ipv4Addr, Proto, u16)> =
        std::collections::HashSet::new();
    let split = site.split_by_destination();
    for f in split.allowed() {
        if flows.is_some_and(|w| !w.contains(&f.id)) {
            continue;
        }
        for (sn, dn) in f.network_pairs() {
            let (IpNet::V4(_), IpNet::V4(d4)) = (sn, dn) else {
                continue;
            };
            if d4.prefix_len() == 0 {
                continue;
            }
            for &src in srcs.iter().filter(|s| sn.contains(&IpAddr::V4(**s))) {
                for dst in representatives(&d4) {
                    if dst == src {
                        continue;
                    }
                    for sv in &f.services {
                        let proto = match sv.protocol {
                            Protocol::Tcp => Proto::Tcp,
                            Protocol::Udp => Proto::Udp,
                            _ => continue,
                        };
                        let first = sv.ports.first.max(1);
                        let ports: Vec<u16> = match sample {
                            Some(n) => sample_ports(first, sv.ports.last, n),
                            None => (first..=sv.ports.last).collect(),
                        };
                        for port in ports {
                            if have.insert((src, dst, proto, port)) {
                                out.push(Target {
                                    flow: f.id.clone(),
                                    src,
                                    dst,
                                    proto,
                                    port,
                                    required: true,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    let mut negatives = Vec::new();
    let mut seen: Vec<(Ipv4Addr, Ipv4Addr)> = Vec::new();
    for t in &out {
        if seen.contains(&(t.src, t.dst)) {
            continue;
        }
        seen.push((t.src, t.dst));
        if let Some(port) = NEGATIVE_PORTS
            .iter()
            .copied()
            .find(|&p| !allowed(site, t.src, t.dst, Proto::Tcp, p))
        {
            negatives.push(Target {
                flow: t.flow.clone(),
                src: t.src,
                dst: t.dst,
                proto: Proto::Tcp,
                port,
                required: false,
            });
        }
    }
    // Negative checks first: a dropped one waits out its timeout while the rest run.
    negatives.extend(out);
    negatives
}

/// One item of `--ports`: a protocol and a port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// TCP or UDP.
    pub proto: Proto,
    /// First port.
    pub first: u16,
    /// Last port (inclusive).
    pub last: u16,
}

/// Why an item of `--ports` or `--to` was refused: its 1-based position in
/// the list, the item as given, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// 1-based position in the comma-separated list.
    pub index: usize,
    /// The item as given.
    pub item: String,
    /// What is wrong with it.
    pub why: String,
    /// How to fix it, when known.
    pub help: Option<String>,
}

impl std::fmt::Display for ItemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "item {} `{}`: {}", self.index, self.item, self.why)
    }
}

/// Parse `--ports`: comma-separated ports and ranges (`22,80,30000-32767`),
/// each TCP unless prefixed `udp:` (or `tcp:`).
pub fn parse_ports(items: &[String]) -> Result<Vec<PortRange>, ItemError> {
    let mut out = Vec::new();
    for (n, raw) in items.iter().enumerate() {
        let err = |why: String| {
            ItemError {
            index: n + 1,
            item: raw.clone(),
            why,
            help: Some("ports are 1-65535, ranges FIRST-LAST, optionally prefixed tcp: or udp: (e.g. 22,udp:53,30000-32767)".into()),
        }
        };
        let item = raw.trim();
        let (proto, rest) = match item.split_once(':') {
            Some((p, r)) if p.eq_ignore_ascii_case("tcp") => (Proto::Tcp, r),
            Some((p, r)) if p.eq_ignore_ascii_case("udp") => (Proto::Udp, r),
            Some((p, _)) => return Err(err(format!("`{p}` is not a protocol (tcp or udp)"))),
            None => (Proto::Tcp, item),
        };
        let port = |t: &str| -> Result<u16, ItemError> {
            match t.trim().parse::<u16>() {
                Ok(p) if p > 0 => Ok(p),
                _ => Err(err(format!("`{}` is not a port (1-65535)", t.trim()))),
            }
        };
        let (first, last) = match rest.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(rest)?;
                (p, p)
            }
        };
        if first > last {
            return Err(err(format!("the range {first}-{last} runs backwards")));
        }
        out.push(PortRange { proto, first, last });
    }
    Ok(out)
}

/// The most addresses one `--to` CIDR may name (a /20): every address of a
/// CIDR is probed, so a wider one is almost certainly a mistake for its zone.
pub const MAX_CIDR_HOSTS: u32 = 4096;

/// Resolve `--to`: zone names (their IPv4 networks' representative hosts,
/// as flows are probed), addresses and CIDRs (every usable address). Every
/// address must lie in a network of one of the site's zones.
pub fn resolve_to(
    items: &[String],
    zones: &std::collections::BTreeMap<String, Vec<IpNet>>,
) -> Result<Vec<Ipv4Addr>, ItemError> {
    let zone_nets: Vec<ipnet::Ipv4Net> = zones
        .values()
        .flatten()
        .filter_map(|n| match n {
            IpNet::V4(n) if n.prefix_len() > 0 => Some(*n),
            _ => None,
        })
        .collect();
    let names = zones.keys().cloned().collect::<Vec<_>>().join(", ");
    let mut out: Vec<Ipv4Addr> = Vec::new();
    for (n, raw) in items.iter().enumerate() {
        let item = raw.trim();
        let err = |why: String, help: Option<String>| ItemError {
            index: n + 1,
            item: raw.clone(),
            why,
            help,
        };
        let outside = || {
            err(
                "it is outside every zone of the site; probe only targets inside the site".into(),
                Some(format!("zones of this site: {names}")),
            )
        };
        let hosts: Vec<Ipv4Addr> = if let Some(nets) = zones.get(item) {
            let v: Vec<Ipv4Addr> = nets
                .iter()
                .filter_map(|n| match n {
                    IpNet::V4(n) if n.prefix_len() > 0 => Some(representatives(n)),
                    _ => None,
                })
                .flatten()
                .collect();
            if v.is_empty() {
                return Err(err("the zone has no IPv4 network to probe".into(), None));
            }
            v
        } else if let Ok(a) = item.parse::<Ipv4Addr>() {
            if !zone_nets.iter().any(|z| z.contains(&a)) {
                return Err(outside());
            }
            vec![a]
        } else if let Ok(net) = item.parse::<ipnet::Ipv4Net>() {
            if !zone_nets.iter().any(|z| z.contains(&net)) {
                return Err(outside());
            }
            let size = 1u64 << (32 - net.prefix_len());
            if size > u64::from(MAX_CIDR_HOSTS) {
                return Err(err(
                    format!("{size} addresses; at most {MAX_CIDR_HOSTS} are probed from one CIDR"),
                    Some("name a narrower CIDR, or the zone (its first, middle and last usable addresses)".into()),
                ));
            }
            net.hosts().collect()
        } else {
            let help = match ringfence_diag::closest(item, zones.keys().map(String::as_str)) {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!("zones of this site: {names}"),
            };
            return Err(err(
                "not a zone of the site, an IPv4 address or a CIDR".into(),
                Some(help),
            ));
        };
        for h in hosts {
            if !out.contains(&h) {
                out.push(h);
            }
        }
    }
    Ok(out)
}

/// Targets of an ad-hoc probe: from each of `srcs` to every destination of
/// `to` (or, without it, the destinations the site's flows give `srcs`), on
/// `ports` (or, without them, the ports those flows open to each
/// destination). A target is required when an allow flow opens it; its
/// flow is that flow's id, or `-`. `flows` and `sample` narrow the flows
/// and port ranges as for [`targets`].
pub fn adhoc_targets(
    site: &ResolvedSite,
    srcs: &[Ipv4Addr],
    to: Option<&[Ipv4Addr]>,
    ports: Option<&[PortRange]>,
    flows: Option<&[String]>,
    sample: Option<usize>,
) -> Vec<Target> {
    let from_flows = targets(site, srcs, flows, sample);
    let Some(ports) = ports else {
        // Flow ports, on the chosen destinations only.
        return from_flows
            .into_iter()
            .filter(|t| to.is_none_or(|d| d.contains(&t.dst)))
            .collect();
    };
    let dsts: Vec<Ipv4Addr> = match to {
        Some(d) => d.to_vec(),
        None => {
            let mut v: Vec<Ipv4Addr> = Vec::new();
            for t in &from_flows {
                if !v.contains(&t.dst) {
                    v.push(t.dst);
                }
            }
            v
        }
    };
    let mut out = Vec::new();
    let mut have = std::collections::HashSet::new();
    for &src in srcs {
        for &dst in dsts.iter().filter(|d| **d != src) {
            for r in ports {
                let list: Vec<u16> = match sample {
                    Some(n) => sample_ports(r.first, r.last, n),
                    None => (r.first..=r.last).collect(),
                };
                for port in list {
                    if !have.insert((src, dst, r.proto, port)) {
                        continue;
                    }
                    let flow = opening_flow(site, src, dst, r.proto, port);
                    out.push(Target {
                        required: flow.is_some(),
                        flow: flow.unwrap_or("-").to_string(),
                        src,
                        dst,
                        proto: r.proto,
                        port,
                    });
                }
            }
        }
    }
    out
}

/// Whether an allow flow of the site opens this path.
pub fn allowed(site: &ResolvedSite, s: Ipv4Addr, d: Ipv4Addr, proto: Proto, port: u16) -> bool {
    opening_flow(site, s, d, proto, port).is_some()
}

/// The first allow flow of the site that opens this path.
pub fn opening_flow(
    site: &ResolvedSite,
    s: Ipv4Addr,
    d: Ipv4Addr,
    proto: Proto,
    port: u16,
) -> Option<&str> {
    site.flows
        .iter()
        .filter(|f| f.action == FlowAction::Allow)
        .find(|f| f.admits(IpAddr::V4(s), IpAddr::V4(d), proto.protocol(), port))
        .map(|f| f.id.as_str())
}

/// Whether `dst` is a destination of some flow of the site.
pub fn is_site_destination(site: &ResolvedSite, dst: Ipv4Addr) -> bool {
    site.flows.iter().any(|f| {
        f.destinations
            .iter()
            .any(|n| n.prefix_len() > 0 && n.contains(&IpAddr::V4(dst)))
    })
}

/// Whether `dst` lies in a network the site's flows name, as a source or a
/// destination (`any` excluded): the only hosts `probe` touches.
pub fn is_site_address(site: &ResolvedSite, dst: Ipv4Addr) -> bool {
    is_site_destination(site, dst)
        || site.flows.iter().any(|f| {
            f.sources
                .iter()
                .any(|n| n.prefix_len() > 0 && n.contains(&IpAddr::V4(dst)))
        })
}

/// The most probes in flight by default: large enough that the rate cap, not
/// the window, limits a scan of a lab or a LAN (20,000 probes a second with
/// a 100 ms timeout keep about 2,000 silent probes in flight), and within
/// the usual open-file limit.
pub const DEFAULT_WINDOW: usize = 8192;
/// Probes in flight at the start; the window grows from here while answers
/// come (the old fixed default, so a network that never answers is probed
/// no slower than before).
pub const INITIAL_WINDOW: usize = 512;
/// The default rate cap (probes started per second): stateful firewalls and
/// intrusion detection in a real path count new connections per second, and
/// a scan far above ordinary rates can trip their flood protection and turn
/// answers into drops.
pub const DEFAULT_RATE: u32 = 20_000;
/// Retries of a silent probe by default (a busy host can answer late).
pub const DEFAULT_RETRIES: u8 = 1;
/// The most retries a network whose answers came only on a retry (loss, ICMP
/// rate limiting) can earn: nmap's default `--max-retries`.
pub const MAX_RETRIES: u8 = 10;

/// Probe settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Probes in flight at most (the window's ceiling).
    pub concurrency: usize,
    /// Probes in flight at the start (at least `concurrency`: a fixed window).
    pub initial_window: usize,
    /// A fixed per-attempt timeout (`None`: adaptive within `bounds`).
    pub timeout: Option<Duration>,
    /// The bounds of the adaptive timeout.
    pub bounds: RttBounds,
    /// New probes started per second at most (0: no limit; retries count).
    pub rate: u32,
    /// How many more times a probe that got no answer is tried.
    pub retries: u8,
    /// With the adaptive timeout: the most retries a network whose answers
    /// came only on a retry can earn (see [`MAX_RETRIES`]).
    pub max_retries: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            concurrency: DEFAULT_WINDOW,
            initial_window: INITIAL_WINDOW,
            timeout: None,
            bounds: RttBounds::default(),
            rate: DEFAULT_RATE,
            retries: DEFAULT_RETRIES,
            max_retries: MAX_RETRIES,
        }
    }
}

/// Progress callback: the counts so far.
pub type Progress = Arc<dyn Fn(Tally) + Send + Sync>;

/// Probe every target (refusing any that is not a site destination) and
/// judge each against `expect`. `progress(tally)` runs as probes finish.
pub fn run(
    site: &ResolvedSite,
    targets: Vec<Target>,
    settings: &Settings,
    expect: Option<Expect>,
    progress: Progress,
) -> Result<Vec<LiveResult>, String> {
    run_measured(site, targets, settings, expect, progress).map(|(r, _)| r)
}

/// [`run`], also returning what the engine measured (round trips per host,
/// retries, how the window moved).
pub fn run_measured(
    site: &ResolvedSite,
    targets: Vec<Target>,
    settings: &Settings,
    expect: Option<Expect>,
    progress: Progress,
) -> Result<(Vec<LiveResult>, EngineStats), String> {
    if let Some(t) = targets.iter().find(|t| !is_site_address(site, t.dst)) {
        return Err(format!(
            "refusing {}: it is in no network of the site's flows",
            t.dst
        ));
    }
    let attempts: Vec<Attempt> = targets
        .iter()
        .map(|t| Attempt {
            ns: None,
            src: None,
            dst: SocketAddrV4::new(t.dst, t.port),
            transport: match t.proto {
                Proto::Tcp => Transport::Tcp,
                Proto::Udp => Transport::Udp,
            },
        })
        .collect();
    let pace = Pace {
        window: settings.concurrency,
        initial_window: settings.initial_window,
        timing: match settings.timeout {
            Some(d) => Timing::Fixed(d),
            None => Timing::Adaptive(settings.bounds),
        },
        rate: settings.rate,
        retries: settings.retries,
        max_retries: settings.max_retries,
    };
    let (outcomes, stats) = crate::engine::run(&attempts, &[], pace, &|t| progress(t))
        .map_err(|e| format!("probing: {e}"))?;
    let mut states = Vec::with_capacity(outcomes.len());
    for (t, o) in targets.iter().zip(outcomes) {
        states.push(match (t.proto, o) {
            (_, Ok(Outcome::Connected)) => State::Open,
            (_, Ok(Outcome::Refused)) => State::Closed,
            (Proto::Tcp, Ok(Outcome::Timeout)) => State::Filtered,
            (Proto::Udp, Ok(Outcome::Timeout)) => State::OpenFiltered,
            // This machine's own firewall refused to send it: filtered here.
            (Proto::Tcp, Err(e)) if e.raw_os_error() == Some(libc::EPERM) => State::Filtered,
            (Proto::Udp, Err(e)) if e.raw_os_error() == Some(libc::EPERM) => State::OpenFiltered,
            (_, Err(e)) => {
                return Err(format!(
                    "probing {}:{} ({}): {e}",
                    t.dst,
                    t.port,
                    match t.proto {
                        Proto::Tcp => "tcp",
                        Proto::Udp => "udp",
                    }
                ))
            }
        });
    }
    let results = targets
        .into_iter()
        .zip(states)
        .map(|(target, state)| {
            let want_open = match expect {
                None => None,
                Some(Expect::Auto) => Some(target.required),
                Some(Expect::Open) => Some(true),
                Some(Expect::Closed) => Some(false),
            };
            let ok = want_open.and_then(|w| match state {
                State::OpenFiltered => None,
                State::Open => Some(w),
                State::Closed | State::Filtered => Some(!w),
            });
            LiveResult { target, state, ok }
        })
        .collect();
    Ok((results, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_come_only_from_flows_whose_sources_hold_the_local_address() {
        let site = ringfence_site::example_site().resolve();
        let jump = Ipv4Addr::new(198, 18, 1, 10);
        let t = targets(&site, &[jump], None, Some(4));
        assert!(!t.is_empty());
        assert!(t
            .iter()
            .all(|t| t.src == jump && is_site_destination(&site, t.dst)));
        assert!(t
            .iter()
            .filter(|t| t.required)
            .all(|t| allowed(&site, t.src, t.dst, t.proto, t.port)));
        assert!(t
            .iter()
            .filter(|t| !t.required)
            .all(|t| !allowed(&site, t.src, t.dst, t.proto, t.port)));
        let se = Ipv4Addr::new(198, 18, 30, 1);
        let full = targets(&site, &[se], Some(&["avi-nodeport".to_string()]), None);
        assert_eq!(full.iter().filter(|t| t.required).count(), 2768 * 6);
        assert!(!is_site_destination(&site, Ipv4Addr::new(8, 8, 8, 8)));
    }

    #[test]
    fn the_dns_server_is_open_only_for_dns_and_the_ntp_server_only_for_ntp() {
        let site = ringfence_site::example_site().resolve();
        let node = Ipv4Addr::new(198, 18, 10, 5);
        let (dns, ntp) = (
            Ipv4Addr::new(198, 18, 1, 53),
            Ipv4Addr::new(198, 18, 1, 123),
        );
        assert!(allowed(&site, node, dns, Proto::Udp, 53));
        assert!(allowed(&site, node, dns, Proto::Tcp, 53));
        assert!(allowed(&site, node, ntp, Proto::Udp, 123));
        // The cross product dns-ntp-outbound used to open: an ad-hoc probe of
        // these would be counted as required while the rules close them.
        assert!(!allowed(&site, node, dns, Proto::Udp, 123));
        assert!(!allowed(&site, node, ntp, Proto::Udp, 53));
        assert!(!allowed(&site, node, ntp, Proto::Tcp, 53));
    }

    fn items(s: &str) -> Vec<String> {
        s.split(',').map(str::to_string).collect()
    }

    #[test]
    fn ports_parse_ranges_and_protocol_prefixes_and_refuse_bad_items_by_position() {
        let p = parse_ports(&items("22,udp:53,TCP:30000-32767")).unwrap();
        assert_eq!(
            p,
            vec![
                PortRange {
                    proto: Proto::Tcp,
                    first: 22,
                    last: 22
                },
                PortRange {
                    proto: Proto::Udp,
                    first: 53,
                    last: 53
                },
                PortRange {
                    proto: Proto::Tcp,
                    first: 30000,
                    last: 32767
                },
            ]
        );
        for (bad, index, why) in [
            ("22,70000", 2, "not a port"),
            ("0", 1, "not a port"),
            ("sctp:9", 1, "not a protocol"),
            ("80,90-10", 2, "backwards"),
            ("x", 1, "not a port"),
        ] {
            let e = parse_ports(&items(bad)).unwrap_err();
            assert_eq!(e.index, index, "{bad}: {e}");
            assert!(e.why.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn to_names_zones_addresses_and_cidrs_inside_the_site_and_refuses_the_rest() {
        let site = ringfence_site::example_site();
        let z = &site.zones;
        let w = resolve_to(&items("workload"), z).unwrap();
        assert_eq!(w.len(), 6, "first, middle and last of two /24s: {w:?}");
        let a = resolve_to(&items("198.18.1.20,198.18.20.0/29,harbor"), z).unwrap();
        // harbor is 198.18.1.20 again: listed once.
        assert_eq!(a.len(), 1 + 6);
        let e = resolve_to(&items("harbor,8.8.8.8"), z).unwrap_err();
        assert_eq!((e.index, e.item.as_str()), (2, "8.8.8.8"));
        assert!(e.why.contains("outside every zone"), "{e}");
        // A CIDR that reaches outside its zone network is refused too.
        let e = resolve_to(&items("198.18.20.0/23"), z).unwrap_err();
        assert!(e.why.contains("outside every zone"), "{e}");
        let e = resolve_to(&items("workloda"), z).unwrap_err();
        assert_eq!(e.help.as_deref(), Some("did you mean `workload`?"));
    }

    #[test]
    fn adhoc_targets_cover_every_port_asked_and_are_required_only_where_a_flow_opens_them() {
        let site = ringfence_site::example_site().resolve();
        let se = Ipv4Addr::new(198, 18, 30, 1);
        let node = Ipv4Addr::new(198, 18, 20, 1);
        let ports = parse_ports(&items("22,30000-30009,udp:53")).unwrap();
        let t = adhoc_targets(&site, &[se], Some(&[node]), Some(&ports), None, None);
        assert_eq!(t.len(), 12);
        let nodeport: Vec<_> = t.iter().filter(|t| t.port >= 30000).collect();
        assert!(nodeport
            .iter()
            .all(|t| t.required && t.flow == "avi-nodeport"));
        assert!(t
            .iter()
            .filter(|t| t.port < 30000)
            .all(|t| !t.required && t.flow == "-"));
        // Without --ports: the flows' own ports, on the chosen hosts only.
        let f = adhoc_targets(&site, &[se], Some(&[node]), None, None, Some(6));
        assert!(!f.is_empty() && f.iter().all(|t| t.dst == node));
        assert!(f.iter().any(|t| t.required) && f.iter().any(|t| !t.required));
    }
}
