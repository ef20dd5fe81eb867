//! Run ringfence's CIS scan across a Kubernetes fleet and read the results as
//! one report.
//!
//! - [`manifest`]: Job and DaemonSet manifests (typed `k8s-openapi` structs,
//!   printed as YAML) that run `ringfence cis scan --root /host --format json`
//!   on nodes, and the DaemonSet that keeps `ringfence watch` following every
//!   node's netfilter rules.
//! - [`merge`]: many node results (the scan's JSON) into one fleet view, with
//!   bad files reported at the end instead of stopping the merge.
//! - [`render`]: the fleet view as text, JSON (docs/cis-merge-json.md),
//!   Markdown or self-contained HTML.

pub mod manifest;
pub mod merge;
pub mod natural;
pub mod render;

pub use merge::{merge_files, merge_sources, FleetReport};
