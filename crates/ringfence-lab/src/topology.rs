//! A router namespace with host namespaces around it.

use crate::{
    check_address, cleanup_state, delete_namespace, list_namespaces, preflight, run, LabError,
    PREFIX,
};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One host namespace: its link subnet to the router and its addresses on it.
/// The router takes the subnet's first usable address as the host's gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Short name (`[a-z0-9]`, 1-12 characters); the router-side interface is `rf-<name>`.
    pub name: String,
    /// Link subnet (network address and prefix length), inside 198.18.0.0/15.
    pub subnet: (Ipv4Addr, u8),
    /// The host's addresses on the subnet (not the network, broadcast or gateway address).
    pub addrs: Vec<Ipv4Addr>,
}

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabSpec {
    /// Names the lab: namespaces are `rf-<tag>-r` and `rf-<tag>-<host>` (`[a-z0-9]`, 1-16 characters).
    pub tag: String,
    /// The hosts.
    pub hosts: Vec<HostSpec>,
    /// Where the state file goes (`<tag>.json`).
    pub state_dir: PathBuf,
}

/// What a lab has created, as written to its state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    /// The lab's tag.
    pub tag: String,
    /// The process that made it.
    pub pid: u32,
    /// Namespaces, in creation order (recorded before each is created).
    pub namespaces: Vec<String>,
}

/// A running lab; everything is removed on [`Lab::down`] or drop.
#[derive(Debug)]
pub struct Lab {
    spec: LabSpec,
    state_path: PathBuf,
    state: LabState,
    torn_down: bool,
}

fn valid_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

impl LabSpec {
    fn validate(&self) -> Result<(), LabError> {
        if !valid_label(&self.tag, 16) {
            return Err(LabError::BadName(
                self.tag.clone(),
                "a tag is 1-16 characters of a-z and 0-9".into(),
            ));
        }
        let mut seen: Vec<(u32, u32)> = Vec::new();
        for h in &self.hosts {
            if !valid_label(&h.name, 12) || h.name == "r" {
                return Err(LabError::BadName(
                    h.name.clone(),
                    "a host name is 1-12 characters of a-z and 0-9, not `r`".into(),
                ));
            }
            let (net, len) = h.subnet;
            if len > 30 {
                return Err(LabError::BadName(
                    format!("{net}/{len}"),
                    "a host subnet needs room for a gateway and a host (/30 or wider)".into(),
                ));
            }
            let lo = u32::from(net) & mask(len);
            let hi = lo | !mask(len);
            check_address(Ipv4Addr::from(lo))?;
            check_address(Ipv4Addr::from(hi))?;
            if seen.iter().any(|&(a, b)| lo <= b && a <= hi) {
                return Err(LabError::BadName(
                    format!("{net}/{len}"),
                    "subnets of two hosts overlap".into(),
                ));
            }
            seen.push((lo, hi));
            if h.addrs.is_empty() {
                return Err(LabError::BadName(
                    h.name.clone(),
                    "a host needs at least one address".into(),
                ));
            }
            for a in &h.addrs {
                check_address(*a)?;
                let v = u32::from(*a);
                if v <= lo + 1 || v >= hi {
                    return Err(LabError::BadName(
                        a.to_string(),
                        format!("must be inside {net}/{len} and not its network, gateway or broadcast address"),
                    ));
                }
            }
        }
        if self
            .hosts
            .iter()
            .enumerate()
            .any(|(i, h)| self.hosts[..i].iter().any(|o| o.name == h.name))
        {
            return Err(LabError::BadName(
                self.tag.clone(),
                "host names must be unique".into(),
            ));
        }
        Ok(())
    }
}

/// Run `ip ARGS` (in the root namespace only for `netns add`/`-n NS ...`).
pub(crate) fn ip(args: &[&str]) -> Result<(), LabError> {
    run(Command::new("ip").args(args)).map(|_| ())
}

/// Lab sysctls for namespace `ns`: no ICMP rate limits (a REJECT must never
/// look like a drop), a wide local port range for many bound probes, and
/// forwarding on the router.
pub(crate) fn set_sysctls(ns: &str, router: bool) -> Result<(), LabError> {
    let mut values = vec![
        ("/proc/sys/net/ipv4/icmp_ratelimit", "0"),
        ("/proc/sys/net/ipv4/icmp_msgs_per_sec", "1000000"),
        ("/proc/sys/net/ipv4/icmp_msgs_burst", "1000000"),
        ("/proc/sys/net/ipv4/ip_local_port_range", "20000 60999"),
    ];
    if router {
        values.push(("/proc/sys/net/ipv4/ip_forward", "1"));
    }
    crate::in_netns(ns, || -> std::io::Result<()> {
        for (path, v) in values {
            std::fs::write(path, v)?;
        }
        Ok(())
    })??;
    Ok(())
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl Lab {
    /// Build the lab. Refuses without root or `ip`, with names that do not
    /// fit, or with any address outside 198.18.0.0/15. On any failure,
    /// whatever was already made is removed again.
    pub fn up(spec: LabSpec) -> Result<Lab, LabError> {
        preflight(&[])?;
        spec.validate()?;
        std::fs::create_dir_all(&spec.state_dir)?;
        let state_path = spec.state_dir.join(format!("{}.json", spec.tag));
        if state_path.exists() {
            let old: Option<LabState> = std::fs::read_to_string(&state_path)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            match old {
                Some(o) if o.pid != std::process::id() && pid_alive(o.pid) => {
                    return Err(LabError::BadName(
                        spec.tag.clone(),
                        format!(
                            "lab is in use by process {} ({})",
                            o.pid,
                            state_path.display()
                        ),
                    ))
                }
                _ => {
                    cleanup_state(&state_path)?;
                }
            }
        }
        let router = format!("{PREFIX}{}-r", spec.tag);
        let existing = list_namespaces()?;
        let mut planned = vec![router.clone()];
        planned.extend(
            spec.hosts
                .iter()
                .map(|h| format!("{PREFIX}{}-{}", spec.tag, h.name)),
        );
        if let Some(n) = planned.iter().find(|n| existing.contains(n)) {
            return Err(LabError::BadName(
                n.clone(),
                format!("namespace already exists; remove leftovers with cleanup_prefix(\"{PREFIX}{}-\")", spec.tag),
            ));
        }
        let mut lab = Lab {
            state: LabState {
                tag: spec.tag.clone(),
                pid: std::process::id(),
                namespaces: Vec::new(),
            },
            spec,
            state_path,
            torn_down: false,
        };
        for ns in planned {
            lab.state.namespaces.push(ns.clone());
            lab.save_state()?;
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            set_sysctls(&ns, ns == router)?;
        }
        for h in lab.spec.hosts.clone() {
            let hns = lab.host_ns(&h.name);
            let rif = lab.router_iface(&h.name);
            let (net, len) = h.subnet;
            let gw = Ipv4Addr::from((u32::from(net) & mask(len)) + 1);
            // Created inside the router namespace, the peer goes straight to the host:
            // the root namespace never sees either end.
            ip(&[
                "-n", &router, "link", "add", &rif, "type", "veth", "peer", "name", "rf-up",
                "netns", &hns,
            ])?;
            ip(&[
                "-n",
                &router,
                "addr",
                "add",
                &format!("{gw}/{len}"),
                "dev",
                &rif,
            ])?;
            ip(&["-n", &router, "link", "set", &rif, "up"])?;
            for a in &h.addrs {
                ip(&[
                    "-n",
                    &hns,
                    "addr",
                    "add",
                    &format!("{a}/{len}"),
                    "dev",
                    "rf-up",
                ])?;
            }
            ip(&["-n", &hns, "link", "set", "rf-up", "up"])?;
            ip(&[
                "-n",
                &hns,
                "route",
                "add",
                "default",
                "via",
                &gw.to_string(),
            ])?;
        }
        Ok(lab)
    }

    fn save_state(&self) -> Result<(), LabError> {
        let text = serde_json::to_vec_pretty(&self.state)
            .map_err(|e| LabError::Io(std::io::Error::other(e)))?;
        ringfence_diag::write_atomic(&self.state_path, &text)?;
        Ok(())
    }

    /// The router namespace.
    pub fn router_ns(&self) -> String {
        format!("{PREFIX}{}-r", self.spec.tag)
    }

    /// The namespace of host `name`.
    pub fn host_ns(&self, name: &str) -> String {
        format!("{PREFIX}{}-{name}", self.spec.tag)
    }

    /// The router's interface towards host `name` (what `iifname`/`oifname` see).
    pub fn router_iface(&self, name: &str) -> String {
        format!("{PREFIX}{name}")
    }

    /// The spec the lab was built from.
    pub fn spec(&self) -> &LabSpec {
        &self.spec
    }

    /// Where the state file is.
    pub fn state_path(&self) -> &Path {
        &self.state_path
    }

    fn router_cmd(&self, prog: &str, args: &[&str], input: &str) -> Result<String, LabError> {
        crate::site_lab::ns_cmd(&self.router_ns(), prog, args, input)
    }

    /// Replace the router's nftables ruleset with `text` (`nft -f`).
    pub fn load_nft(&self, text: &str) -> Result<(), LabError> {
        preflight(&["nft"])?;
        self.router_cmd("nft", &["-f", "-"], &format!("flush ruleset\n{text}"))
            .map(|_| ())
    }

    /// What the router's kernel holds now, as `nft -j list ruleset` prints it.
    pub fn dump_nft(&self) -> Result<String, LabError> {
        preflight(&["nft"])?;
        self.router_cmd("nft", &["-j", "list", "ruleset"], "")
    }

    /// Load an iptables-save file into the router (`iptables-restore`, or `ip6tables-restore`).
    pub fn load_iptables(&self, text: &str, v6: bool) -> Result<(), LabError> {
        let prog = if v6 {
            "ip6tables-restore"
        } else {
            "iptables-restore"
        };
        preflight(&[prog])?;
        self.router_cmd(prog, &[], text).map(|_| ())
    }

    /// Remove everything; also done on drop, but this reports errors.
    pub fn down(mut self) -> Result<(), LabError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), LabError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let existing = list_namespaces()?;
        let mut first_err = None;
        for ns in self.state.namespaces.iter().rev() {
            if existing.contains(ns) {
                if let Err(e) = delete_namespace(ns) {
                    first_err.get_or_insert(e);
                }
            }
        }
        if first_err.is_none() {
            let _ = std::fs::remove_file(&self.state_path);
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!(
                "ringfence-lab: cleanup of lab {} failed: {e}",
                self.spec.tag
            );
        }
    }
}
