//! CIS Kubernetes Benchmark scanner with TKG expected-failure profiles.
//!
//! The scanner reads a node — the running host or a mounted node filesystem —
//! without running a single command: component command lines come from
//! `/proc`, static pod manifests and systemd units ([`node`]), files are read
//! through a resolver confined to the node's root ([`rootfs`]), and checks are
//! data ([`benchmark`], embedded from `benchmarks/*.yaml`) evaluated with
//! kube-bench's comparison semantics ([`compare`]). A [`profile`] marks the
//! failures a platform is known to have (TKG 1.5: seven checks of cis-1.6),
//! waivers accept others for a while, and [`report`] sums it all up; [`render`]
//! writes text, Markdown, JSON, JUnit and SARIF.
//!
//! ```no_run
//! use ringfence_cis::{benchmark::Benchmark, node, profile::{Date, Profile}, report};
//! let bench = Benchmark::embedded("cis-1.6").unwrap();
//! let node = node::discover(&node::DiscoverOptions {
//!     root: Some("/mnt/node".into()),
//!     ..Default::default()
//! })
//! .unwrap();
//! let (file, text) = Profile::embedded("tkg-1.5").unwrap();
//! let profile = Profile::parse(&file, text).unwrap();
//! let report = report::scan(&bench, &node, &report::ScanOptions {
//!     targets: None,
//!     checks: None,
//!     profile: Some(&profile),
//!     waivers: &[],
//!     today: Date::today(),
//! });
//! assert_eq!(report.summary.unexpected_fail, 0);
//! ```

pub mod benchmark;
pub mod binver;
pub mod compare;
pub mod component;
pub mod eval;
pub mod flags;
pub mod kubebench;
pub mod node;
pub mod procfs;
pub mod profile;
pub mod render;
pub mod report;
pub mod rootfs;
pub mod select;
pub mod testkit;
pub mod versions;
