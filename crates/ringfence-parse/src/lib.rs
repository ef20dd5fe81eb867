//! Parsers from iptables-save, nft JSON and NSX DFW exports into the normalized firewall model.
//!
//! [`parse_ruleset`] is the one entry point: it detects the format (or takes
//! it from the caller) and returns a [`Ruleset`] or every input error found,
//! each with its location.

pub mod iptables;
pub mod nft;
pub mod nsx;

use ringfence_diag::{InputError, InputErrors};
use ringfence_model::Ruleset;

/// The ruleset formats ringfence reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulesetFormat {
    /// Decide from the content.
    Auto,
    /// `iptables-save` or `ip6tables-save` output.
    IptablesSave,
    /// `nft -j list ruleset`.
    NftJson,
    /// NSX Policy API JSON.
    NsxJson,
}

impl RulesetFormat {
    /// Parse the CLI spelling (`auto`, `iptables`, `nft`, `nsx`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "auto" => Some(Self::Auto),
            "iptables" | "iptables-save" | "ip6tables" | "ip6tables-save" => {
                Some(Self::IptablesSave)
            }
            "nft" | "nft-json" | "nftables" => Some(Self::NftJson),
            "nsx" | "nsx-json" => Some(Self::NsxJson),
            _ => None,
        }
    }
}

/// Decide the format of `text` from its content.
///
/// JSON with a top-level `"nftables"` key is nft JSON; any other JSON is taken
/// as an NSX export; text with `*table` or `:CHAIN` lines is iptables-save.
pub fn detect_format(text: &str, file: &str) -> Result<RulesetFormat, InputError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text)
        {
            if map.contains_key("nftables") {
                return Ok(RulesetFormat::NftJson);
            }
        }
        return Ok(RulesetFormat::NsxJson);
    }
    let looks_iptables = text.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with('*') || l.starts_with(':') || l.starts_with("-A ")
    });
    if looks_iptables {
        return Ok(RulesetFormat::IptablesSave);
    }
    Err(InputError::whole(
        file,
        "cannot tell the ruleset format: expected iptables-save text (`*filter`, `:CHAIN` lines), \
         nft JSON (a top-level \"nftables\" key) or an NSX Policy API JSON export",
    )
    .with_help("name the format with --ruleset-format iptables|nft|nsx"))
}

/// Parse a ruleset in `format` (or the detected one) into the normalized model.
///
/// `file` is the name used in error messages and rule references.
pub fn parse_ruleset(
    text: &str,
    file: &str,
    format: RulesetFormat,
) -> Result<Ruleset, InputErrors> {
    let format = match format {
        RulesetFormat::Auto => detect_format(text, file)?,
        f => f,
    };
    match format {
        RulesetFormat::Auto => unreachable!("resolved above"),
        RulesetFormat::IptablesSave => iptables::parse(text, file),
        RulesetFormat::NftJson => nft::parse(text, file),
        RulesetFormat::NsxJson => nsx::parse(text, file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_format_from_content() {
        assert_eq!(
            detect_format("{\"nftables\": []}", "f").unwrap(),
            RulesetFormat::NftJson
        );
        assert_eq!(
            detect_format("{\"children\": []}", "f").unwrap(),
            RulesetFormat::NsxJson
        );
        assert_eq!(
            detect_format("# x\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", "f").unwrap(),
            RulesetFormat::IptablesSave
        );
        let e = detect_format("hello world\n", "r.txt").unwrap_err();
        assert_eq!(e.position(), "r.txt");
        assert!(e.message.contains("cannot tell"));
    }
}
