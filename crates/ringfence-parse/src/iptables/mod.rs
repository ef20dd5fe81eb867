//! `iptables-save` / `ip6tables-save` parser (iptables 1.8.x output).
//!
//! Every table is read. The built-in chains of `raw`, `mangle`, `nat`,
//! `filter` and `security` become base chains on their hooks at the kernel's
//! priorities (see [`table_base`]), so a packet meets them in kernel order.
//! Chains of the `filter` table keep their names; chains of the other tables
//! are named `table:CHAIN` (for example `nat:PREROUTING`), which keeps names
//! unique and filter-only output unchanged. Every option the model can
//! express exactly becomes a field of the rule's [`Match`]; any other match
//! extension becomes an [`Opaque`] part (the rule "may match") with a
//! [`ParseNote`], so analyses report what it touches as unknown instead of
//! guessing. Targets are read by `targets::target_effect`: terminal verdicts
//! keep their meaning, targets that only change what the model never reads
//! continue, and targets that change what later rules or routing see make
//! the packets they match unknown.
//!
//! The parser is split by concern: `tokens` splits lines into located
//! words; `tables` reads the `*table` blocks, chain declarations and
//! policies and assembles the chains; `matches` reads match options into a
//! rule's [`Match`]; `targets` reads `-j`/`-g` and their options; `nat` reads
//! the translation targets and the conntrack facts they leave.
//!
//! [`Match`]: ringfence_model::Match
//! [`Opaque`]: ringfence_model::Opaque

mod matches;
mod nat;
mod tables;
mod targets;
mod tokens;

pub use tables::table_base;

use crate::ipset::Sets;
use ringfence_diag::InputErrors;
use ringfence_model::{AddrSet, ParseNote, Ruleset};

/// Address family of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    /// Every address of the family: what a rule matches before `-s`/`-d`,
    /// and the base `!` complements against.
    fn all(self) -> AddrSet {
        match self {
            Family::V4 => AddrSet::all_v4(),
            Family::V6 => AddrSet::all_v6(),
        }
    }
}

/// What reading the rules of one file carries: its name and family, the
/// notes made so far, and the ipset sets given with it.
struct Ctx<'a> {
    file: &'a str,
    family: Family,
    notes: Vec<ParseNote>,
    /// The sets of the `ipset save` files given with the ruleset, if any.
    sets: Option<&'a Sets>,
}

/// Parse iptables-save or ip6tables-save output.
pub fn parse(text: &str, file: &str) -> Result<Ruleset, InputErrors> {
    parse_with_sets(text, file, None)
}

/// Parse iptables-save or ip6tables-save output whose `-m set` matches name
/// the sets of `sets` (the `ipset save` files given with it). Without sets,
/// such matches stay opaque; with them, a set that is not defined is an error.
pub fn parse_with_sets(
    text: &str,
    file: &str,
    sets: Option<&Sets>,
) -> Result<Ruleset, InputErrors> {
    tables::parse_file(text, file, sets)
}
