//! Interface-name matches: exact names and prefix wildcards (`eth+` in
//! iptables, `eth*` in nftables), possibly negated.

use serde::Serialize;

/// One interface pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum IfacePattern {
    /// The interface with exactly this name.
    Exact(String),
    /// Every interface whose name starts with this prefix (may be empty: every interface).
    Prefix(String),
}

impl IfacePattern {
    /// Parse iptables syntax: a trailing `+` is a prefix wildcard.
    pub fn from_iptables(s: &str) -> Self {
        match s.strip_suffix('+') {
            Some(p) => IfacePattern::Prefix(p.to_string()),
            None => IfacePattern::Exact(s.to_string()),
        }
    }

    /// Parse nftables syntax: a trailing `*` is a prefix wildcard.
    pub fn from_nft(s: &str) -> Self {
        match s.strip_suffix('*') {
            Some(p) => IfacePattern::Prefix(p.to_string()),
            None => IfacePattern::Exact(s.to_string()),
        }
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            IfacePattern::Exact(n) => n == name,
            IfacePattern::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

/// A set of interfaces: the union of `patterns`, or its complement when `negated`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct IfaceSet {
    /// The patterns.
    pub patterns: Vec<IfacePattern>,
    /// True: every interface *except* those the patterns match.
    pub negated: bool,
}

impl IfaceSet {
    /// Every interface (and packets with no interface on this side).
    pub fn any() -> Self {
        Self {
            patterns: Vec::new(),
            negated: true,
        }
    }

    /// Only interfaces matched by one of `patterns`.
    pub fn only(patterns: Vec<IfacePattern>) -> Self {
        Self {
            patterns,
            negated: false,
        }
    }

    /// Every interface except those matched by `patterns`.
    pub fn except(patterns: Vec<IfacePattern>) -> Self {
        Self {
            patterns,
            negated: true,
        }
    }

    /// Whether the set places no restriction.
    pub fn is_any(&self) -> bool {
        self.negated && self.patterns.is_empty()
    }

    /// Whether no interface can match.
    pub fn is_empty(&self) -> bool {
        !self.negated && self.patterns.is_empty()
    }

    /// Whether a packet on interface `name` matches. `None` (no interface on
    /// this side, e.g. `oif` on the input hook) is compared as the empty
    /// name, as the kernel does: `! -o eth1` matches it, `-o eth1` does not.
    pub fn matches(&self, name: Option<&str>) -> bool {
        let n = name.unwrap_or("");
        self.patterns.iter().any(|p| p.matches(n)) != self.negated
    }
}
