//! What ringfence's tests share, so that a new test is a few lines.
//!
//! - [`prereq`]: a test that needs root or a tool says so with
//!   [`require!`](crate::require). Under `CI=true` (or
//!   `RINGFENCE_REQUIRE_ALL=1`) a missing prerequisite fails the test with a
//!   message naming it; otherwise the test is recorded as *skipped* (printed,
//!   and appended to the file `RINGFENCE_SKIP_LOG` names, which
//!   `scripts/test.sh` counts) and never reported as passed.
//! - [`netns`]: a network namespace named `rf-…` that the test created and
//!   that is deleted when the guard drops, on failure too, with helpers to run
//!   commands in it and load nft / iptables rulesets.
//! - [`agent`]: a recorder of the connections a namespace's stack received,
//!   for the tests that compare a trace with what the kernel delivered.
//! - [`rng`]: the seeded generator behind every generated-input test, so a
//!   failing seed replays the same input.
//! - [`repo`]: paths inside the repository (never outside it: tests do not
//!   read the shared folder beside the repository).
//!
//! This crate is a dev-dependency only; nothing in the shipped binary uses it.

pub mod agent;
pub mod netns;
pub mod prereq;
pub mod repo;
pub mod rng;

pub use netns::Netns;
pub use prereq::{is_root, Need};
pub use rng::Rng;
