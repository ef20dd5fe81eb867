//! `site import`: derive a site file from TKG cluster configuration files.
