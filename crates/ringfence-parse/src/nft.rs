//! nft JSON (`nft -j list ruleset`) parser. Placeholder until the nft parser lands.

use ringfence_diag::{InputError, InputErrors};
use ringfence_model::Ruleset;

/// Parse `nft -j list ruleset` output.
pub fn parse(_text: &str, file: &str) -> Result<Ruleset, InputErrors> {
    Err(InputError::whole(file, "nft JSON rulesets are not supported yet").into())
}
