//! Exact packet-space analysis of firewall rulesets: verify, trace, diff.
//!
//! - [`trace`] / [`Tracer`]: one packet's verdict by a direct first-match walk
//!   (the fast path for batch tracing and kernel differential tests).
//! - [`Engine`]: chains compiled into ordered box lists, for set-level
//!   questions: what a hook accepts in a region, shadowed and redundant
//!   rules, what is accepted beyond an allowed set, differences between two
//!   rulesets.
//! - [`verify`] and [`diff`]: the reports behind `ringfence verify` and `ringfence diff`.
//! - [`packet_line`]: the JSON-lines packets batch `trace` reads.

pub mod diff;
pub mod engine;
pub mod fingerprint;
pub mod incremental;
pub mod index;
pub mod packet_line;
pub mod space;
pub mod trace;
pub mod verify;

pub use engine::{Anomalies, Anomaly, Engine, Fate, Outcome, OverBudget};
pub use space::{IfaceUniverse, PBox};
pub use trace::{trace, TraceResult, Tracer};
