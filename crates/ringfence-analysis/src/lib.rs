//! Exact packet-space analysis of firewall rulesets: verify, trace, diff.
