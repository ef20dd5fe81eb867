//! The normalized firewall model: every ruleset parser produces it, every analysis consumes it.
