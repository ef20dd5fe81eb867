//! Rehearse rulesets on the real kernel in network namespaces, and probe live networks.
//!
//! The kernel harness ([`Lab`]) builds a router namespace and host namespaces
//! joined to it by veth pairs, loads a ruleset into the router with the real
//! `nft -f` or `iptables-restore`, runs TCP listeners in destination
//! namespaces and probes TCP connects from source namespaces, classifying each
//! as [`Outcome::Connected`], [`Outcome::Refused`] or [`Outcome::Timeout`].
//!
//! Safety rules enforced in code:
//! - every namespace is named `rf-<tag>-...` ([`PREFIX`]); veths are created
//!   *inside* the router namespace and moved straight into a host namespace,
//!   so the root namespace's links, addresses, routes and rules are never touched;
//! - every address must lie in 198.18.0.0/15 ([`check_address`]), otherwise
//!   the lab refuses to start;
//! - everything created is recorded in a state file before it is created and
//!   removed on drop (also when a test panics); [`cleanup_state`] and
//!   [`cleanup_prefix`] remove leftovers of a run killed with SIGKILL;
//! - it refuses to run without root or without `ip`.

mod engine;
mod netns;
mod probe;
mod topology;

pub mod rtt;

pub mod live;
pub mod remap;
pub mod report;
pub mod site_lab;
pub mod udp;

pub use engine::{EngineStats, HostTiming, Tally, Timing};
pub use netns::in_netns;
pub use probe::{probe_all, Listeners, Outcome, Probe, Transport};
pub use topology::{HostSpec, Lab, LabSpec, LabState};

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every namespace this crate creates starts with this prefix.
pub const PREFIX: &str = "rf-";

/// The only addresses the lab uses: 198.18.0.0/15 (RFC 2544 benchmarking range).
pub const LAB_NET: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 18, 0, 0), 15);

/// Why the lab cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Network namespaces need root.
    #[error("the kernel lab needs root (network namespaces); run as root or skip the lab")]
    NotRoot,
    /// A required program is not installed.
    #[error("`{0}` is not installed or not on PATH; install it (Debian: iproute2 / nftables / iptables)")]
    MissingTool(String),
    /// An address outside 198.18.0.0/15.
    #[error("refusing address {0}: the lab only uses 198.18.0.0/15")]
    UnsafeAddress(String),
    /// A name that does not carry the lab prefix or is malformed.
    #[error("invalid lab name `{0}`: {1}")]
    BadName(String, String),
    /// An external command failed.
    #[error("`{cmd}` failed: {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its standard error.
        stderr: String,
    },
    /// An I/O error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Whether `addr` is inside 198.18.0.0/15.
pub fn is_lab_address(addr: Ipv4Addr) -> bool {
    u32::from(addr) >> (32 - LAB_NET.1) == u32::from(LAB_NET.0) >> (32 - LAB_NET.1)
}

/// Refuse any address outside 198.18.0.0/15.
pub fn check_address(addr: Ipv4Addr) -> Result<(), LabError> {
    if is_lab_address(addr) {
        Ok(())
    } else {
        Err(LabError::UnsafeAddress(addr.to_string()))
    }
}

/// Whether `prog` is an executable on PATH.
pub fn have_tool(prog: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
        .unwrap_or(false)
}

/// Root and the listed tools, or the reason the lab cannot run.
pub fn preflight(tools: &[&str]) -> Result<(), LabError> {
    if !rustix::process::geteuid().is_root() {
        return Err(LabError::NotRoot);
    }
    for t in std::iter::once(&"ip").chain(tools) {
        if !have_tool(t) {
            return Err(LabError::MissingTool(t.to_string()));
        }
    }
    Ok(())
}

/// Run a command, returning its stdout or a [`LabError::Command`].
pub(crate) fn run(cmd: &mut Command) -> Result<String, LabError> {
    let out = cmd.output()?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError::Command {
            cmd: format!("{cmd:?}"),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The network namespaces that exist now (`ip netns list`).
pub fn list_namespaces() -> Result<Vec<String>, LabError> {
    let out = run(Command::new("ip").args(["netns", "list"]))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Delete one namespace (and with it its veths, addresses, routes and rules).
pub(crate) fn delete_namespace(name: &str) -> Result<(), LabError> {
    if !name.starts_with(PREFIX) {
        return Err(LabError::BadName(
            name.into(),
            format!("does not start with {PREFIX}"),
        ));
    }
    run(Command::new("ip").args(["netns", "delete", name])).map(|_| ())
}

/// Remove every namespace whose name starts with `prefix` (which must itself
/// start with [`PREFIX`]): the cleanup for runs killed before they could undo
/// their work. Returns the names removed.
pub fn cleanup_prefix(prefix: &str) -> Result<Vec<String>, LabError> {
    if !prefix.starts_with(PREFIX) || prefix.len() <= PREFIX.len() {
        return Err(LabError::BadName(
            prefix.into(),
            format!("a cleanup prefix must start with {PREFIX} and name a lab"),
        ));
    }
    let mut removed = Vec::new();
    for ns in list_namespaces()? {
        if ns.starts_with(prefix) {
            delete_namespace(&ns)?;
            removed.push(ns);
        }
    }
    Ok(removed)
}

/// Remove what a state file records (namespaces that still exist), then the file.
pub fn cleanup_state(path: &Path) -> Result<Vec<String>, LabError> {
    let text = std::fs::read_to_string(path)?;
    let state: LabState = serde_json::from_str(&text).map_err(|e| {
        LabError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: not a lab state file: {e}", path.display()),
        ))
    })?;
    let existing = list_namespaces()?;
    let mut removed = Vec::new();
    for ns in state.namespaces.iter().rev() {
        if existing.contains(ns) {
            delete_namespace(ns)?;
            removed.push(ns.clone());
        }
    }
    std::fs::remove_file(path)?;
    Ok(removed)
}

/// The default directory for state files.
pub fn default_state_dir() -> PathBuf {
    PathBuf::from("/run/ringfence-lab")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_addresses_are_exactly_198_18_slash_15() {
        assert!(is_lab_address(Ipv4Addr::new(198, 18, 0, 0)));
        assert!(is_lab_address(Ipv4Addr::new(198, 19, 255, 255)));
        assert!(!is_lab_address(Ipv4Addr::new(198, 20, 0, 1)));
        assert!(!is_lab_address(Ipv4Addr::new(198, 17, 255, 255)));
        assert!(!is_lab_address(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(check_address(Ipv4Addr::new(192, 168, 1, 1)).is_err());
    }

    #[test]
    fn cleanup_prefix_refuses_foreign_or_empty_prefixes() {
        assert!(matches!(cleanup_prefix("rf-"), Err(LabError::BadName(..))));
        assert!(matches!(
            cleanup_prefix("netns"),
            Err(LabError::BadName(..))
        ));
        assert!(matches!(
            delete_namespace("other"),
            Err(LabError::BadName(..))
        ));
    }
}
