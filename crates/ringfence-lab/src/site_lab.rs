//! A whole site on the real kernel: one namespace per representative host
//! address, one router namespace holding the ruleset, listeners on every
//! probed port, probes classified by evidence and compared with `trace`.
//!
//! Addressing: every host namespace holds one address as a /32 on `rf-up`
//! with a default route to the router's link address (the same address on
//! every router-side veth, `onlink`), so traffic between any two hosts, also
//! two hosts of one network, crosses the router and its ruleset.

use crate::topology::{ip, set_sysctls};
use crate::{
    check_address, delete_namespace, list_namespaces, preflight, LabError, Listeners, Outcome,
    Probe, PREFIX,
};
use ipnet::{IpNet, Ipv4Net};
use ringfence_model::{CtStates, Hook, Packet, Ruleset, Verdict};
use ringfence_site::{FlowAction, Protocol, ResolvedSite};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The ruleset languages the router can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RulesetKind {
    /// `nft -f` text.
    Nft,
    /// `iptables-restore` input (iptables-save text).
    Iptables,
}

impl RulesetKind {
    /// Decide from the text: iptables-save has `*table` / `-A` lines.
    pub fn detect(text: &str) -> RulesetKind {
        let ipt = text.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with('*') || l.starts_with("-A ") || l == "COMMIT"
        });
        if ipt {
            RulesetKind::Iptables
        } else {
            RulesetKind::Nft
        }
    }
}

impl RulesetKind {
    /// The tools that load a file of this language (one file).
    pub fn loaders(self) -> Vec<Loader> {
        match self {
            RulesetKind::Nft => vec![Loader::Nft],
            RulesetKind::Iptables => vec![Loader::Iptables],
        }
    }
}

/// The tool that loads one ruleset file into the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loader {
    /// `ipset restore` (an `ipset save` file); loaded before any iptables file.
    Ipset,
    /// `iptables-restore` (iptables-save text for IPv4).
    Iptables,
    /// `ip6tables-restore` (ip6tables-save text).
    Ip6tables,
    /// `nft -f` (nft text; several files are one script, in order).
    Nft,
}

impl Loader {
    /// The name used in reports and errors.
    pub fn name(self) -> &'static str {
        match self {
            Loader::Ipset => "ipset",
            Loader::Iptables => "iptables",
            Loader::Ip6tables => "ip6tables",
            Loader::Nft => "nft",
        }
    }

    /// Decide from the text: `ipset save` output starts with `create`;
    /// iptables-save text is IPv6 when its header names ip6tables or its
    /// first address is an IPv6 one; anything else is nft text.
    pub fn detect(text: &str) -> Loader {
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'));
        if first.is_some_and(|l| l.starts_with("create ")) {
            return Loader::Ipset;
        }
        match RulesetKind::detect(text) {
            RulesetKind::Nft => Loader::Nft,
            RulesetKind::Iptables => {
                if iptables_text_is_v6(text) {
                    Loader::Ip6tables
                } else {
                    Loader::Iptables
                }
            }
        }
    }

    /// The tools this loader runs (to load and to read back).
    pub fn tools(self) -> &'static [&'static str] {
        match self {
            Loader::Ipset => &["ipset"],
            Loader::Iptables => &["iptables-restore", "iptables-save"],
            Loader::Ip6tables => &["ip6tables-restore", "ip6tables-save"],
            Loader::Nft => &["nft"],
        }
    }
}

fn iptables_text_is_v6(text: &str) -> bool {
    for l in text.lines().map(str::trim) {
        if l.starts_with('#') {
            if l.contains("ip6tables") {
                return true;
            }
            continue;
        }
        let mut t = l.split_whitespace();
        while let Some(tok) = t.next() {
            if matches!(tok, "-s" | "-d" | "--source" | "--destination") {
                if let Some(a) = t.next() {
                    let a = a.split('/').next().unwrap_or(a);
                    return a.parse::<std::net::Ipv6Addr>().is_ok();
                }
            }
        }
    }
    false
}

/// One ruleset file for the router: its name (for errors), text and tool.
#[derive(Debug, Clone)]
pub struct RulesetFile {
    /// The file name as the user gave it.
    pub name: String,
    /// Its text.
    pub text: String,
    /// The tool that loads it.
    pub loader: Loader,
}

/// The loaders of `files`, each once, in load order.
pub fn loaders_of(files: &[RulesetFile]) -> Vec<Loader> {
    let mut l: Vec<Loader> = files.iter().map(|f| f.loader).collect();
    l.sort_unstable();
    l.dedup();
    l
}

/// Check that `files` can be loaded together: nft files do not mix with
/// iptables, ip6tables or ipset files (`nft -f` after `flush ruleset` would
/// remove the tables iptables-nft made, and the router would hold two
/// rulesets in two languages), and one family has one iptables file.
pub fn check_files(files: &[RulesetFile]) -> Result<(), String> {
    let count = |l: Loader| files.iter().filter(|f| f.loader == l).count();
    if count(Loader::Nft) > 0 && count(Loader::Nft) < files.len() {
        let names: Vec<String> = files
            .iter()
            .map(|f| format!("{} ({})", f.name, f.loader.name()))
            .collect();
        return Err(format!(
            "nft files cannot be loaded together with iptables, ip6tables or ipset files: {}",
            names.join(", ")
        ));
    }
    for l in [Loader::Iptables, Loader::Ip6tables] {
        if count(l) > 1 {
            let names: Vec<&str> = files
                .iter()
                .filter(|f| f.loader == l)
                .map(|f| f.name.as_str())
                .collect();
            return Err(format!(
                "two {} files ({}): give one iptables-save and one ip6tables-save file",
                l.name(),
                names.join(", ")
            ));
        }
    }
    if count(Loader::Ipset) > 0 && count(Loader::Iptables) + count(Loader::Ip6tables) == 0 {
        return Err("an ipset file alone loads no rules: give the iptables-save file whose `-m set` matches use the sets".into());
    }
    Ok(())
}

/// A transport protocol a probe uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP connect.
    Tcp,
    /// UDP request.
    Udp,
}

impl Proto {
    /// The site's name for this transport.
    pub fn protocol(self) -> Protocol {
        match self {
            Proto::Tcp => Protocol::Tcp,
            Proto::Udp => Protocol::Udp,
        }
    }
}

impl Proto {
    fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
}

/// What happened to (or is predicted for) one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Seen {
    /// Connected / answered: accepted.
    Open,
    /// RST or ICMP unreachable: rejected.
    Refused,
    /// Nothing came back: dropped.
    Filtered,
}

/// One host namespace of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabHost {
    /// Namespace name (`rf-<tag>-h<i>`).
    pub ns: String,
    /// The router's interface towards it (`rf-h<i>`).
    pub iface: String,
    /// Its one address.
    pub addr: Ipv4Addr,
    /// The zones whose networks hold the address (`(outside)` for the extra host).
    pub zones: Vec<String>,
}

/// One planned probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedProbe {
    /// The allow flow that requires it, or for a negative probe the deny flow
    /// that covers it (or `-`).
    pub flow: String,
    /// Index of the source host.
    pub src_host: usize,
    /// Index of the destination host.
    pub dst_host: usize,
    /// Protocol.
    pub proto: Proto,
    /// Destination port.
    pub port: u16,
    /// Whether an allow flow of the site covers it.
    pub required: bool,
}

/// Everything `up` builds and `run` probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Names the lab (`[a-z0-9]`, 1-8 characters).
    pub tag: String,
    /// The router's link address (on every router-side veth).
    pub gateway: Ipv4Addr,
    /// The host namespaces.
    pub hosts: Vec<LabHost>,
    /// The probes.
    pub probes: Vec<PlannedProbe>,
    /// Probes not made and why (ICMP services, IPv6 networks, networks outside the lab).
    pub skipped: Vec<String>,
}

/// How many ports of a range get listeners and probes (both ends included).
pub const RANGE_SAMPLE: usize = 6;

/// Representative addresses of a network: the first and last usable
/// addresses and one in the middle (every address of a /31 or /32).
pub fn representatives(net: &Ipv4Net) -> Vec<Ipv4Addr> {
    let lo = u32::from(net.network());
    let hi = u32::from(net.broadcast());
    let mut v = if net.prefix_len() >= 31 {
        (lo..=hi).collect::<Vec<_>>()
    } else {
        vec![lo + 1, lo + (hi - lo) / 2, hi - 1]
    };
    v.dedup();
    v.into_iter().map(Ipv4Addr::from).collect()
}

/// Sampled ports of a range: all of a short range, else both ends and
/// evenly spaced ports between, `n` in all.
pub fn sample_ports(first: u16, last: u16, n: usize) -> Vec<u16> {
    let len = usize::from(last - first) + 1;
    if len <= n.max(2) {
        return (first..=last).collect();
    }
    let n = n.max(2);
    let mut v: Vec<u16> = (0..n)
        .map(|i| first + ((len - 1) * i / (n - 1)) as u16)
        .collect();
    v.dedup();
    v
}

fn covers(
    site: &ResolvedSite,
    s: Ipv4Addr,
    d: Ipv4Addr,
    proto: Proto,
    port: u16,
    action: FlowAction,
) -> Option<String> {
    site.flows
        .iter()
        .filter(|f| f.action == action)
        .find(|f| f.admits(IpAddr::V4(s), IpAddr::V4(d), proto.protocol(), port))
        .map(|f| f.id.clone())
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 8
        && tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Ports tried for negative probes (first one not covered by an allow flow wins).
const NEGATIVE_PORTS: [u16; 6] = [9, 2222, 8888, 12345, 40404, 65000];

impl Plan {
    /// Plan a lab for `site` (all zone networks must lie in 198.18.0.0/15).
    pub fn new(
        tag: &str,
        zones: &std::collections::BTreeMap<String, Vec<IpNet>>,
        site: &ResolvedSite,
    ) -> Result<Plan, LabError> {
        if !valid_tag(tag) {
            return Err(LabError::BadName(
                tag.into(),
                "a lab name is 1-8 characters of a-z and 0-9".into(),
            ));
        }
        let mut skipped = Vec::new();
        let mut hosts: Vec<LabHost> = Vec::new();
        let mut nets: Vec<Ipv4Net> = Vec::new();
        for (zone, zn) in zones {
            for n in zn {
                let IpNet::V4(n4) = n else {
                    skipped.push(format!(
                        "zone {zone}: IPv6 network {n} (the lab is IPv4-only)"
                    ));
                    continue;
                };
                check_address(n4.network())?;
                check_address(n4.broadcast())?;
                nets.push(*n4);
                for a in representatives(n4) {
                    match hosts.iter_mut().find(|h| h.addr == a) {
                        Some(h) => {
                            if !h.zones.contains(zone) {
                                h.zones.push(zone.clone());
                            }
                        }
                        None => hosts.push(LabHost {
                            ns: String::new(),
                            iface: String::new(),
                            addr: a,
                            zones: vec![zone.clone()],
                        }),
                    }
                }
            }
        }
        let inside = |a: Ipv4Addr| nets.iter().any(|n| n.contains(&a));
        // The gateway and the outside host: the highest lab addresses no zone holds.
        let mut free = (u32::from(Ipv4Addr::new(198, 18, 0, 1))
            ..=u32::from(Ipv4Addr::new(198, 19, 255, 254)))
            .rev()
            .map(Ipv4Addr::from)
            .filter(|a| !inside(*a));
        let gateway = free.next().ok_or_else(|| {
            LabError::BadName(tag.into(), "no free lab address for the router".into())
        })?;
        let outside = free.next().ok_or_else(|| {
            LabError::BadName(
                tag.into(),
                "no free lab address for the outside host".into(),
            )
        })?;
        hosts.push(LabHost {
            ns: String::new(),
            iface: String::new(),
            addr: outside,
            zones: vec!["(outside)".into()],
        });
        for (i, h) in hosts.iter_mut().enumerate() {
            h.ns = format!("{PREFIX}{tag}-h{i}");
            h.iface = format!("{PREFIX}h{i}");
        }

        let mut probes: Vec<PlannedProbe> = Vec::new();
        let push = |p: PlannedProbe, probes: &mut Vec<PlannedProbe>| {
            if !probes.iter().any(|q| {
                q.src_host == p.src_host
                    && q.dst_host == p.dst_host
                    && q.proto == p.proto
                    && q.port == p.port
            }) {
                probes.push(p);
            }
        };
        let in_net = |n: &IpNet, a: Ipv4Addr| n.contains(&IpAddr::V4(a));
        // Required: every allow flow, every pair of lab hosts its networks hold
        // (a flow whose destinations receive different services split per
        // destination, so no destination is probed on another's ports).
        let split = site.split_by_destination();
        for f in split.allowed() {
            let mut ports: Vec<(Proto, u16)> = Vec::new();
            for sv in &f.services {
                match sv.protocol {
                    Protocol::Tcp | Protocol::Udp => {
                        let pr = if sv.protocol == Protocol::Tcp {
                            Proto::Tcp
                        } else {
                            Proto::Udp
                        };
                        for p in sample_ports(sv.ports.first.max(1), sv.ports.last, RANGE_SAMPLE) {
                            ports.push((pr, p));
                        }
                    }
                    Protocol::Any => ports.push((Proto::Tcp, NEGATIVE_PORTS[1])),
                    Protocol::Icmp => skipped.push(format!("flow {}: icmp is not probed", f.id)),
                }
            }
            for (sn, dn) in f.network_pairs() {
                if !matches!(sn, IpNet::V4(_)) {
                    continue;
                }
                for (si, s) in hosts.iter().enumerate() {
                    if !in_net(&sn, s.addr) || (sn.prefix_len() == 0 && s.zones[0] != "(outside)") {
                        continue;
                    }
                    for (di, d) in hosts.iter().enumerate() {
                        if si == di || !in_net(&dn, d.addr) || dn.prefix_len() == 0 {
                            continue;
                        }
                        for &(proto, port) in &ports {
                            push(
                                PlannedProbe {
                                    flow: f.id.clone(),
                                    src_host: si,
                                    dst_host: di,
                                    proto,
                                    port,
                                    required: true,
                                },
                                &mut probes,
                            );
                        }
                    }
                }
            }
        }
        // Negative: other ports on the pairs the flows use, and other zone pairs.
        let required: Vec<PlannedProbe> = probes.clone();
        for p in &required {
            let (s, d) = (hosts[p.src_host].addr, hosts[p.dst_host].addr);
            if let Some(port) = NEGATIVE_PORTS
                .iter()
                .copied()
                .find(|&q| covers(site, s, d, Proto::Tcp, q, FlowAction::Allow).is_none())
            {
                let flow = covers(site, s, d, Proto::Tcp, port, FlowAction::Deny)
                    .unwrap_or_else(|| "-".into());
                push(
                    PlannedProbe {
                        flow,
                        src_host: p.src_host,
                        dst_host: p.dst_host,
                        proto: Proto::Tcp,
                        port,
                        required: false,
                    },
                    &mut probes,
                );
            }
        }
        let mut common_ports: Vec<(Proto, u16)> = vec![
            (Proto::Tcp, 22),
            (Proto::Tcp, 443),
            (Proto::Tcp, 6443),
            (Proto::Udp, 53),
        ];
        common_ports.dedup();
        for si in 0..hosts.len() {
            for di in 0..hosts.len() {
                if si == di || probes.iter().any(|p| p.src_host == si && p.dst_host == di) {
                    continue;
                }
                // One probe set per zone pair is enough: the first host of each.
                let first_of =
                    |i: usize| hosts.iter().position(|h| h.zones == hosts[i].zones) == Some(i);
                if !first_of(si) || !first_of(di) {
                    continue;
                }
                for &(proto, port) in &common_ports {
                    let (s, d) = (hosts[si].addr, hosts[di].addr);
                    let req = covers(site, s, d, proto, port, FlowAction::Allow);
                    let flow = req
                        .clone()
                        .or_else(|| covers(site, s, d, proto, port, FlowAction::Deny))
                        .unwrap_or_else(|| "-".into());
                    push(
                        PlannedProbe {
                            flow,
                            src_host: si,
                            dst_host: di,
                            proto,
                            port,
                            required: req.is_some(),
                        },
                        &mut probes,
                    );
                }
            }
        }
        skipped.sort();
        skipped.dedup();
        Ok(Plan {
            tag: tag.into(),
            gateway,
            hosts,
            probes,
            skipped,
        })
    }

    /// Router namespace name.
    pub fn router_ns(&self) -> String {
        format!("{PREFIX}{}-r", self.tag)
    }

    /// Every namespace, router first.
    pub fn namespaces(&self) -> Vec<String> {
        std::iter::once(self.router_ns())
            .chain(self.hosts.iter().map(|h| h.ns.clone()))
            .collect()
    }
}

/// The state file of a lab: what `down` removes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteLabState {
    /// The lab's tag.
    pub tag: String,
    /// The process that built it.
    pub pid: u32,
    /// Namespaces, in creation order (each recorded before it is created).
    pub namespaces: Vec<String>,
    /// Background processes to stop on `down` (the listener server).
    #[serde(default)]
    pub pids: Vec<u32>,
    /// The plan, once complete.
    #[serde(default)]
    pub plan: Option<Plan>,
    /// The ruleset language loaded.
    #[serde(default)]
    pub ruleset_kind: Option<RulesetKind>,
    /// The tools the ruleset files were loaded with (empty in state files
    /// written before several files were supported: see `ruleset_kind`).
    #[serde(default)]
    pub loaders: Vec<Loader>,
}

impl SiteLabState {
    /// The tools the lab's ruleset was loaded with.
    pub fn loaders(&self) -> Vec<Loader> {
        if self.loaders.is_empty() {
            self.ruleset_kind.unwrap_or(RulesetKind::Nft).loaders()
        } else {
            self.loaders.clone()
        }
    }
}

/// Where the state file of lab `tag` lives under `dir`.
pub fn state_path(dir: &Path, tag: &str) -> PathBuf {
    dir.join(format!("lab-{tag}.json"))
}

/// Default state directory.
pub fn state_dir() -> PathBuf {
    PathBuf::from("/run/ringfence")
}

fn save(path: &Path, st: &SiteLabState) -> Result<(), LabError> {
    let text = serde_json::to_vec_pretty(st).map_err(|e| LabError::Io(std::io::Error::other(e)))?;
    ringfence_diag::write_atomic(path, &text)?;
    Ok(())
}

/// Read a state file.
pub fn load_state(path: &Path) -> Result<SiteLabState, LabError> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| {
        LabError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: not a lab state file: {e}", path.display()),
        ))
    })
}

/// Run `prog args` inside namespace `ns` with `input` on stdin.
pub fn ns_cmd(ns: &str, prog: &str, args: &[&str], input: &str) -> Result<String, LabError> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, prog])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError::Command {
            cmd: format!("ip netns exec {ns} {prog} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Build the namespaces, links and routes of `plan` and load the ruleset,
/// recording each namespace in the state file before creating it. On
/// failure everything made so far is removed again.
pub fn build(
    plan: &Plan,
    ruleset: &str,
    kind: RulesetKind,
    dir: &Path,
) -> Result<PathBuf, LabError> {
    let file = RulesetFile {
        name: "ruleset".into(),
        text: ruleset.to_string(),
        loader: kind.loaders()[0],
    };
    build_files(plan, &[file], dir)
}

/// [`build`] with several ruleset files, each loaded with its own tool
/// ([`load_files`]); `files` must pass [`check_files`].
pub fn build_files(plan: &Plan, files: &[RulesetFile], dir: &Path) -> Result<PathBuf, LabError> {
    check_files(files).map_err(|m| LabError::Command {
        cmd: "load the ruleset files".into(),
        stderr: m,
    })?;
    let loaders = loaders_of(files);
    let tools: Vec<&str> = loaders.iter().flat_map(|l| l.tools()).copied().collect();
    preflight(&tools)?;
    let kind = if loaders.contains(&Loader::Nft) {
        RulesetKind::Nft
    } else {
        RulesetKind::Iptables
    };
    check_address(plan.gateway)?;
    for h in &plan.hosts {
        check_address(h.addr)?;
    }
    std::fs::create_dir_all(dir)?;
    let path = state_path(dir, &plan.tag);
    if path.exists() {
        let old = load_state(&path).ok();
        if let Some(o) = old {
            if o.pid != std::process::id()
                && Path::new(&format!("/proc/{}", o.pid)).exists()
                && o.pids.is_empty()
            {
                return Err(LabError::BadName(
                    plan.tag.clone(),
                    format!(
                        "lab is being built by process {} ({})",
                        o.pid,
                        path.display()
                    ),
                ));
            }
        }
        teardown(&path, &plan.tag)?;
    }
    let existing = list_namespaces()?;
    if let Some(n) = plan.namespaces().iter().find(|n| existing.contains(n)) {
        return Err(LabError::BadName(
            n.clone(),
            format!(
                "namespace already exists; run `ringfence lab down --name {}`",
                plan.tag
            ),
        ));
    }
    let mut st = SiteLabState {
        tag: plan.tag.clone(),
        pid: std::process::id(),
        namespaces: Vec::new(),
        pids: Vec::new(),
        plan: None,
        ruleset_kind: Some(kind),
        loaders: loaders.clone(),
    };
    let r = (|| -> Result<(), LabError> {
        let router = plan.router_ns();
        for ns in plan.namespaces() {
            st.namespaces.push(ns.clone());
            save(&path, &st)?;
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            set_sysctls(&ns, ns == router)?;
        }
        let gw = plan.gateway.to_string();
        for h in &plan.hosts {
            ip(&[
                "-n", &router, "link", "add", &h.iface, "type", "veth", "peer", "name", "rf-up",
                "netns", &h.ns,
            ])?;
            ip(&[
                "-n",
                &router,
                "addr",
                "add",
                &format!("{gw}/32"),
                "dev",
                &h.iface,
            ])?;
            ip(&["-n", &router, "link", "set", &h.iface, "up"])?;
            ip(&[
                "-n",
                &router,
                "route",
                "add",
                &format!("{}/32", h.addr),
                "dev",
                &h.iface,
            ])?;
            ip(&[
                "-n",
                &h.ns,
                "addr",
                "add",
                &format!("{}/32", h.addr),
                "dev",
                "rf-up",
            ])?;
            ip(&["-n", &h.ns, "link", "set", "rf-up", "up"])?;
            ip(&[
                "-n", &h.ns, "route", "add", &gw, "dev", "rf-up", "scope", "link",
            ])?;
            ip(&[
                "-n", &h.ns, "route", "add", "default", "via", &gw, "dev", "rf-up", "onlink",
            ])?;
        }
        load_files(&router, files)?;
        st.plan = Some(plan.clone());
        save(&path, &st)
    })();
    match r {
        Ok(()) => Ok(path),
        Err(e) => {
            let _ = teardown(&path, &plan.tag);
            Err(e)
        }
    }
}

/// Load a ruleset into the router namespace (replacing what it holds).
pub fn load_ruleset(router: &str, ruleset: &str, kind: RulesetKind) -> Result<(), LabError> {
    match kind {
        RulesetKind::Nft => ns_cmd(
            router,
            "nft",
            &["-f", "-"],
            &format!("flush ruleset\n{ruleset}"),
        )
        .map(|_| ()),
        RulesetKind::Iptables => ns_cmd(router, "iptables-restore", &[], ruleset).map(|_| ()),
    }
}

/// Load several files into the router, each with its tool: the `ipset
/// save` files first (`ipset restore`; the sets must exist before a rule
/// names them), then the iptables-save file (`iptables-restore`) and the
/// ip6tables-save file (`ip6tables-restore`); nft files are one script in
/// the order given (`nft -f`, after `flush ruleset`).
pub fn load_files(router: &str, files: &[RulesetFile]) -> Result<(), LabError> {
    let nft: Vec<&str> = files
        .iter()
        .filter(|f| f.loader == Loader::Nft)
        .map(|f| f.text.as_str())
        .collect();
    if !nft.is_empty() {
        load_ruleset(router, &nft.join("\n"), RulesetKind::Nft)?;
    }
    for l in [Loader::Ipset, Loader::Iptables, Loader::Ip6tables] {
        for f in files.iter().filter(|f| f.loader == l) {
            let r = match l {
                Loader::Ipset => ns_cmd(router, "ipset", &["restore"], &f.text),
                Loader::Iptables => ns_cmd(router, "iptables-restore", &[], &f.text),
                _ => ns_cmd(router, "ip6tables-restore", &[], &f.text),
            };
            r.map_err(|e| match e {
                LabError::Command { cmd, stderr } => LabError::Command {
                    cmd: format!("{cmd} < {}", f.name),
                    stderr,
                },
                e => e,
            })?;
        }
    }
    Ok(())
}

/// What the router's kernel holds, parsed into the model (from
/// `nft -j list ruleset` or `iptables-save`: the dump, not the input).
pub fn kernel_ruleset(router: &str, kind: RulesetKind) -> Result<Ruleset, LabError> {
    kernel_ruleset_of(router, &kind.loaders())
}

/// What the router's kernel holds after loading with `loaders`, read back
/// with each tool's dump (`nft -j list ruleset`, `iptables-save`,
/// `ip6tables-save`, `ipset save`) and parsed as one ruleset
/// (`ringfence_parse::parse_rulesets_for`: each iptables dump for its own
/// family, the sets for the `-m set` matches). The lab is IPv4-only, so
/// only IPv4 must be covered.
pub fn kernel_ruleset_of(router: &str, loaders: &[Loader]) -> Result<Ruleset, LabError> {
    let mut dumps = Vec::new();
    for l in loaders {
        let (prog, args): (&str, &[&str]) = match l {
            Loader::Nft => ("nft", &["-j", "list", "ruleset"]),
            Loader::Iptables => ("iptables-save", &[]),
            Loader::Ip6tables => ("ip6tables-save", &[]),
            Loader::Ipset => ("ipset", &["save"]),
        };
        let text = ns_cmd(router, prog, args, "")?;
        dumps.push((text, format!("{router} ({} dump)", l.name())));
    }
    let inputs: Vec<(&str, &str)> = dumps
        .iter()
        .map(|(t, n)| (t.as_str(), n.as_str()))
        .collect();
    let need = ringfence_parse::Families {
        v4: true,
        v6: false,
    };
    ringfence_parse::parse_rulesets_for(&inputs, ringfence_parse::RulesetFormat::Auto, need)
        .map_err(|e| LabError::Command {
            cmd: "parse the kernel's ruleset dump".into(),
            stderr: e.to_string(),
        })
}

fn kill(pid: u32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

/// Remove what the state file at `path` records (processes, namespaces),
/// then every namespace left with the prefix `rf-<tag>-`, then the file.
/// Returns the namespaces removed.
pub fn teardown(path: &Path, tag: &str) -> Result<Vec<String>, LabError> {
    if !valid_tag(tag) {
        return Err(LabError::BadName(
            tag.into(),
            "a lab name is 1-8 characters of a-z and 0-9".into(),
        ));
    }
    let mut removed = Vec::new();
    if path.exists() {
        if let Ok(st) = load_state(path) {
            for pid in &st.pids {
                if *pid != std::process::id() {
                    kill(*pid);
                }
            }
            let existing = list_namespaces()?;
            for ns in st.namespaces.iter().rev() {
                if existing.contains(ns) && ns.starts_with(&format!("{PREFIX}{tag}-")) {
                    delete_namespace(ns)?;
                    removed.push(ns.clone());
                }
            }
        }
    }
    removed.extend(crate::cleanup_prefix(&format!("{PREFIX}{tag}-"))?);
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    Ok(removed)
}

/// Listeners for every probe destination: TCP listeners and UDP responders.
pub struct Servers {
    _listeners: Listeners,
}

/// Raise the open-file limit to its hard maximum (listeners need many).
pub fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    l.current = l.maximum;
    let _ = setrlimit(Resource::Nofile, l);
}

/// Start listeners on every (destination, protocol, port) of the plan.
pub fn serve(plan: &Plan) -> Result<Servers, LabError> {
    raise_nofile();
    let mut tcp = Vec::new();
    let mut udp = Vec::new();
    for p in &plan.probes {
        let h = &plan.hosts[p.dst_host];
        let b = (h.ns.clone(), SocketAddrV4::new(h.addr, p.port));
        match p.proto {
            Proto::Tcp => tcp.push(b),
            Proto::Udp => udp.push(b),
        }
    }
    tcp.sort();
    tcp.dedup();
    udp.sort();
    udp.dedup();
    Ok(Servers {
        _listeners: Listeners::start_with(&tcp, &udp)?,
    })
}

/// The result of one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Flow id (see [`PlannedProbe::flow`]).
    pub flow: String,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol.
    pub proto: Proto,
    /// Destination port.
    pub port: u16,
    /// What the kernel did.
    pub kernel: Seen,
    /// What `trace` predicts from the kernel's own dump of the ruleset.
    pub predicted: Seen,
    /// Whether the trace met a match it cannot evaluate exactly.
    pub uncertain: bool,
    /// Whether the site requires the path open.
    pub required: bool,
}

impl ProbeResult {
    /// Kernel and prediction disagree. A prediction trace marks uncertain
    /// (it met a match the model cannot evaluate, such as an nft
    /// concatenation) is no prediction: it is counted, never a finding.
    pub fn is_finding(&self) -> bool {
        !self.uncertain && self.kernel != self.predicted
    }
}

fn seen_of(v: Verdict) -> Seen {
    match v {
        Verdict::Accept => Seen::Open,
        Verdict::Drop => Seen::Filtered,
        Verdict::Reject => Seen::Refused,
    }
}

/// What trace predicts for a forwarded packet: prerouting, forward and
/// postrouting in turn; the first that does not accept decides.
pub fn predict(rs: &Ruleset, plan: &Plan, p: &PlannedProbe, sport: u16) -> (Seen, bool) {
    let tracer = ringfence_analysis::Tracer::new(rs);
    predict_with(&tracer, plan, p, sport)
}

fn predict_with(
    tracer: &ringfence_analysis::Tracer<'_>,
    plan: &Plan,
    p: &PlannedProbe,
    sport: u16,
) -> (Seen, bool) {
    let (s, d) = (&plan.hosts[p.src_host], &plan.hosts[p.dst_host]);
    let mut uncertain = false;
    for (hook, iif, oif) in [
        (Hook::Prerouting, Some(s.iface.clone()), None),
        (Hook::Forward, Some(s.iface.clone()), Some(d.iface.clone())),
        (Hook::Postrouting, None, Some(d.iface.clone())),
    ] {
        // The probe's opening packet (a TCP SYN, an ICMP echo request).
        let mut pk = Packet {
            src: IpAddr::V4(s.addr),
            dst: IpAddr::V4(d.addr),
            protocol: p.proto.number(),
            sport,
            dport: p.port,
            iif,
            oif,
            ct_state: CtStates::NEW,
            ..Packet::default()
        };
        pk.fill_defaults();
        let t = tracer.trace(hook, &pk);
        uncertain |= t.uncertain;
        if t.verdict != Verdict::Accept {
            return (seen_of(t.verdict), uncertain);
        }
    }
    (Seen::Open, uncertain)
}

fn sport_of(i: usize) -> u16 {
    20000 + (i % 40000) as u16
}

/// Probe every planned probe from its source namespace and compare with the
/// prediction from the router's kernel dump. `progress` is called after each batch.
pub fn run_probes(
    plan: &Plan,
    kind: RulesetKind,
    timeout: Duration,
    concurrency: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<ProbeResult>, LabError> {
    run_probes_loaded(plan, &kind.loaders(), timeout, concurrency, progress)
}

/// [`run_probes`] for a router loaded with `loaders` (several files): the
/// prediction comes from every dump, merged into one model.
pub fn run_probes_loaded(
    plan: &Plan,
    loaders: &[Loader],
    timeout: Duration,
    concurrency: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<ProbeResult>, LabError> {
    let rs = kernel_ruleset_of(&plan.router_ns(), loaders)?;
    let tracer = ringfence_analysis::Tracer::new(&rs);
    let probes: Vec<Probe> = plan
        .probes
        .iter()
        .enumerate()
        .map(|(i, p)| Probe {
            from_ns: plan.hosts[p.src_host].ns.clone(),
            src: SocketAddrV4::new(plan.hosts[p.src_host].addr, sport_of(i)),
            dst: SocketAddrV4::new(plan.hosts[p.dst_host].addr, p.port),
            transport: match p.proto {
                Proto::Tcp => crate::Transport::Tcp,
                // Every lab destination has a responder, so silence means a drop.
                Proto::Udp => crate::Transport::Udp,
            },
        })
        .collect();
    let kernel: Vec<Seen> =
        crate::probe::probe_all_progress(&probes, timeout, concurrency, progress)?
            .into_iter()
            .map(|o| match o {
                Outcome::Connected => Seen::Open,
                Outcome::Refused => Seen::Refused,
                Outcome::Timeout => Seen::Filtered,
            })
            .collect();
    Ok(plan
        .probes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (predicted, uncertain) = predict_with(&tracer, plan, p, sport_of(i));
            ProbeResult {
                flow: p.flow.clone(),
                src: plan.hosts[p.src_host].addr,
                dst: plan.hosts[p.dst_host].addr,
                proto: p.proto,
                port: p.port,
                kernel: kernel[i],
                predicted,
                uncertain,
                required: p.required,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ruleset_file_gets_the_tool_that_loads_it() {
        let v4 = "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -s 198.18.1.0/24 -j ACCEPT\nCOMMIT\n";
        assert_eq!(Loader::detect(v4), Loader::Iptables);
        let v6_by_header = format!("# Generated by ip6tables-save v1.8.9\n{v4}");
        assert_eq!(Loader::detect(&v6_by_header), Loader::Ip6tables);
        let v6_by_address = "*filter\n-A FORWARD -s fd00:18::/64 -j ACCEPT\nCOMMIT\n";
        assert_eq!(Loader::detect(v6_by_address), Loader::Ip6tables);
        let sets = "# sets\ncreate rf-a hash:ip family inet\nadd rf-a 198.18.1.1\n";
        assert_eq!(Loader::detect(sets), Loader::Ipset);
        assert_eq!(Loader::detect("table inet f {\n}\n"), Loader::Nft);
    }

    #[test]
    fn ruleset_files_that_cannot_make_one_router_ruleset_are_refused() {
        let f = |name: &str, loader| RulesetFile {
            name: name.into(),
            text: String::new(),
            loader,
        };
        let ok = [
            f("sets", Loader::Ipset),
            f("v4", Loader::Iptables),
            f("v6", Loader::Ip6tables),
        ];
        assert!(check_files(&ok).is_ok());
        assert_eq!(
            loaders_of(&ok),
            vec![Loader::Ipset, Loader::Iptables, Loader::Ip6tables]
        );
        assert!(check_files(&[f("a", Loader::Nft), f("b", Loader::Nft)]).is_ok());
        let mixed = check_files(&[f("a.nft", Loader::Nft), f("b", Loader::Iptables)]);
        assert!(mixed.unwrap_err().contains("a.nft (nft)"));
        let twice = check_files(&[f("a", Loader::Iptables), f("b", Loader::Iptables)]);
        assert!(twice.unwrap_err().contains("a, b"));
        assert!(check_files(&[f("sets", Loader::Ipset)]).is_err());
    }

    #[test]
    fn representatives_are_first_middle_last_usable() {
        let n: Ipv4Net = "198.18.20.0/24".parse().unwrap();
        assert_eq!(
            representatives(&n),
            vec![
                Ipv4Addr::new(198, 18, 20, 1),
                Ipv4Addr::new(198, 18, 20, 127),
                Ipv4Addr::new(198, 18, 20, 254)
            ]
        );
        let h: Ipv4Net = "198.18.1.10/32".parse().unwrap();
        assert_eq!(representatives(&h), vec![Ipv4Addr::new(198, 18, 1, 10)]);
    }

    #[test]
    fn port_ranges_are_sampled_with_both_ends() {
        let s = sample_ports(30000, 32767, 6);
        assert_eq!(s.len(), 6);
        assert_eq!(s[0], 30000);
        assert_eq!(*s.last().unwrap(), 32767);
        assert_eq!(sample_ports(80, 81, 6), vec![80, 81]);
    }

    #[test]
    fn the_example_site_plans_required_and_negative_probes_inside_the_lab_range() {
        let site = ringfence_site::example_site();
        let plan = Plan::new("t1", &site.zones, &site.resolve()).unwrap();
        assert!(plan.probes.iter().any(|p| p.required));
        assert!(plan.probes.iter().any(|p| !p.required));
        assert!(plan.hosts.iter().all(|h| crate::is_lab_address(h.addr)));
        assert!(plan.hosts.iter().all(|h| h.addr != plan.gateway));
        assert!(Plan::new("Bad-Name", &site.zones, &site.resolve()).is_err());
    }
}
