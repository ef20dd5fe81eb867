//! NSX DFW Policy API JSON parser. Placeholder until the NSX parser lands.

use ringfence_diag::{InputError, InputErrors};
use ringfence_model::Ruleset;

/// Parse an NSX Policy API export.
pub fn parse(_text: &str, file: &str) -> Result<Ruleset, InputErrors> {
    Err(InputError::whole(file, "NSX DFW exports are not supported yet").into())
}
