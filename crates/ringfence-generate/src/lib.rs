//! Firewall rule generation from a resolved site: nftables, iptables, NSX DFW, Aerleon.
//!
//! [`generate`] turns a [`ResolvedSite`] (the flows a TKG deployment needs,
//! resolved to networks, protocols and ports) plus the site's zones into the
//! input of a real firewall tool. Every target shares one plan ([`plan`]):
//! each allow flow becomes a source side, a destination side (a list of zones,
//! literal networks, or "any") and per-protocol port lists. The closing
//! `deny-all` row is the default drop policy, never a rule (NSX, which has no
//! policy default inside a section, gets an explicit final DROP rule).
//!
//! Flows marked `same_network` (allow-mgmt-subnet, allow-wl-subnet) open each
//! network only to itself: every target expresses them as per-network pairs,
//! never as "zone to zone", so two different workload networks stay apart.
//!
//! Output is deterministic: the same site and options give byte-identical
//! files, each starting with a header naming the site, the catalog and the
//! ringfence version.

pub mod aerleon;
pub mod iptables;
pub mod nftables;
pub mod nsxt;
pub mod plan;

use ipnet::IpNet;
use ringfence_site::{ResolvedSite, Site};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The ringfence version written into every header.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A firewall platform ringfence generates rules for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// An `nft -f` script with its own `inet` table.
    Nftables,
    /// `iptables-restore` and `ip6tables-restore` input.
    Iptables,
    /// An NSX Policy API hierarchical `PATCH /policy/api/v1/infra` body.
    Nsxt,
    /// An Aerleon policy plus its naming definitions, for `aclgen`.
    Aerleon,
}

impl Target {
    /// Every target, in the order `--list-targets` prints them.
    pub const ALL: [Target; 4] = [
        Target::Nftables,
        Target::Iptables,
        Target::Nsxt,
        Target::Aerleon,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Nftables => "nftables",
            Target::Iptables => "iptables",
            Target::Nsxt => "nsxt",
            Target::Aerleon => "aerleon",
        }
    }

    /// One line saying what the target produces.
    pub fn description(self) -> &'static str {
        match self {
            Target::Nftables => {
                "nft -f script: own inet table, zones as interval sets, base chain with policy drop"
            }
            Target::Iptables => {
                "iptables-restore (IPv4) and ip6tables-restore (IPv6) input: one chain per flow, policy DROP"
            }
            Target::Nsxt => {
                "NSX Policy API PATCH /policy/api/v1/infra body: groups, services, one DFW security policy"
            }
            Target::Aerleon => {
                "Aerleon policy YAML plus networks/services definitions, rendered by aclgen for any platform"
            }
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Target {
    type Err = GenerateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| GenerateError::UnknownTarget(s.to_string()))
    }
}

/// The netfilter hook (and built-in chain) the generated rules filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hook {
    /// Traffic routed through this host (a firewall between networks).
    #[default]
    Forward,
    /// Traffic addressed to this host.
    Input,
    /// Traffic this host sends.
    Output,
}

impl Hook {
    /// The nftables hook name.
    pub fn nft_name(self) -> &'static str {
        match self {
            Hook::Forward => "forward",
            Hook::Input => "input",
            Hook::Output => "output",
        }
    }

    /// The iptables built-in chain.
    pub fn iptables_chain(self) -> &'static str {
        match self {
            Hook::Forward => "FORWARD",
            Hook::Input => "INPUT",
            Hook::Output => "OUTPUT",
        }
    }
}

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// Both families, IPv4 first.
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    /// The family of a network.
    pub fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }

    /// `4` or `6`.
    pub fn number(self) -> u8 {
        match self {
            Family::V4 => 4,
            Family::V6 => 6,
        }
    }
}

/// The NSX distributed firewall categories a security policy can belong to
/// (in the order NSX evaluates them).
pub const NSX_CATEGORIES: [&str; 5] = [
    "Ethernet",
    "Emergency",
    "Infrastructure",
    "Environment",
    "Application",
];

/// Generation options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The hook / built-in chain to filter on (nftables, iptables, Aerleon).
    pub hook: Hook,
    /// Restrict output to one address family (`None`: both).
    pub family: Option<Family>,
    /// The NSX DFW category of the security policy.
    pub nsx_category: String,
    /// The NSX groups the policy and its rules apply to (`scope`): group
    /// paths (`/infra/domains/default/groups/tkg-vms`) or group ids in
    /// domain `default`. Empty: the groups of the site's protected zones
    /// (TKG's nodes, jumpbox, bootstrap machine); never ANY.
    pub nsx_scope: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            hook: Hook::Forward,
            family: None,
            nsx_category: "Infrastructure".into(),
            nsx_scope: Vec::new(),
        }
    }
}

impl Options {
    /// The families to generate, IPv4 first.
    pub fn families(&self) -> Vec<Family> {
        match self.family {
            Some(f) => vec![f],
            None => Family::BOTH.to_vec(),
        }
    }
}

/// Why generation could not proceed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenerateError {
    /// A target name that does not exist.
    #[error("unknown target `{0}`; valid targets: nftables, iptables, nsxt, aerleon")]
    UnknownTarget(String),
    /// An NSX category that the Policy API does not define.
    #[error("unknown NSX category `{given}`; valid categories: {}{}", NSX_CATEGORIES.join(", "), .suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownNsxCategory {
        /// What was given.
        given: String,
        /// The closest valid category, if any is close.
        suggestion: Option<String>,
    },
    /// An option that the target does not support.
    #[error("{0}")]
    Unsupported(String),
    /// An NSX scope that is not a group, or no group to scope to.
    #[error("{0}")]
    NsxScope(String),
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Where the file goes, relative to the output directory (`/`-separated),
    /// e.g. `example-dc.v4.rules` or `def/networks.yaml`.
    pub path: String,
    /// A short label: `nftables`, `ipv4`, `ipv6`, `nsxt`, `policy-v4`, `networks`, ...
    pub role: String,
    /// The file's text.
    pub contents: String,
}

/// The generated files of one target (one file for nftables and NSX; one per
/// family for iptables; policies plus definitions for Aerleon).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Which target produced it.
    pub target: Target,
    /// The files, in a fixed order.
    pub files: Vec<OutputFile>,
}

impl Output {
    /// The file with this role.
    pub fn file(&self, role: &str) -> Option<&OutputFile> {
        self.files.iter().find(|f| f.role == role)
    }
}

/// Generate `target`'s rules for a resolved site whose zones are `zones`.
pub fn generate(
    site: &ResolvedSite,
    zones: &BTreeMap<String, Vec<IpNet>>,
    target: Target,
    opts: &Options,
) -> Result<Output, GenerateError> {
    let plan = plan::Plan::new(site, zones);
    let files = match target {
        Target::Nftables => nftables::render(&plan, opts),
        Target::Iptables => iptables::render(&plan, opts),
        Target::Nsxt => nsxt::render(&plan, opts)?,
        Target::Aerleon => aerleon::render(&plan, opts),
    };
    Ok(Output { target, files })
}

/// Resolve `site` and generate `target`'s rules for it.
pub fn generate_site(site: &Site, target: Target, opts: &Options) -> Result<Output, GenerateError> {
    generate(&site.resolve(), &site.zones, target, opts)
}

/// The header lines (without comment markers) every output starts with.
pub(crate) fn header_lines(plan: &plan::Plan, what: &str) -> Vec<String> {
    vec![
        format!("{what} generated by ringfence {VERSION}"),
        format!("site: {}", plan.site),
        format!("catalog: {}", plan.catalog),
        "Do not edit by hand: change the site file and run `ringfence generate` again.".into(),
    ]
}
