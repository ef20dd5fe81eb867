//! Rehearse rulesets on the real kernel in network namespaces, and probe live networks.
