//! The TKG flow catalog, site files, and flow resolution.
//!
//! Data flow: the embedded catalog (`catalog/tkg-1.5.yaml`) lists every
//! firewall path TKG needs, with the deployment settings under which each
//! applies. A [`Site`] (a YAML file the user writes, or `site import` derives
//! from TKG cluster configs) names the deployment's settings and the addresses
//! of each zone. [`Site::resolve`] combines the two into [`ResolvedFlow`]s:
//! concrete sources, destinations, protocols and ports. Generation,
//! verification and the lab all start from resolved flows.

pub mod catalog;
pub mod import;
pub mod render;
mod resolve;
pub mod shape;
mod site;

pub use catalog::{Catalog, Condition, EndpointRef, FlowSpec, ServiceSpec};
pub use resolve::{
    DestinationServices, FlowAction, PortRange, Protocol, ResolvedFlow, ResolvedSite, Service,
};
pub use shape::{DisabledFlow, Narrowed, Narrowing};
pub use site::{
    example_site, interface_name_problem, load_site_file, parse_site, read_text_file, AviMode,
    AviSettings, Identity, Site, TkgSettings, EXAMPLE_SITE_YAML,
};
