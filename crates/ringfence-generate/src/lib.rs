//! Firewall rule generation from a resolved site: nftables, iptables, NSX DFW, Aerleon.
