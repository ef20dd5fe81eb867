//! Parsers from iptables-save, nft JSON and NSX DFW exports into the normalized firewall model.

pub mod nft;
pub mod nsx;
