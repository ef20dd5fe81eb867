//! The report's colours (data in `templates/palette.json`) and the WCAG
//! contrast arithmetic the accessibility test uses to check them.

use serde::{Deserialize, Serialize};

/// The palette file, embedded.
pub const PALETTE_JSON: &str = include_str!("../templates/palette.json");

/// Page colours.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page {
    /// Body text.
    pub fg: String,
    /// Page background.
    pub bg: String,
    /// Secondary text.
    pub muted: String,
    /// Links.
    pub link: String,
    /// Table borders (decoration only).
    pub border: String,
    /// Table header background.
    pub head_bg: String,
}

/// One status: its symbol, its word and its colours.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kind {
    /// Stable key (`ok`, `blocked`, ...), used as CSS class.
    pub key: String,
    /// A one-character symbol.
    pub symbol: String,
    /// The short word shown next to the symbol.
    pub label: String,
    /// A sentence for the legend.
    #[serde(default)]
    pub long: String,
    /// Text colour.
    pub fg: String,
    /// Background colour.
    pub bg: String,
}

/// The whole palette.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Palette {
    /// Page colours.
    pub page: Page,
    /// Matrix cell kinds.
    pub cells: Vec<Kind>,
    /// CIS result kinds.
    pub cis: Vec<Kind>,
}

impl Palette {
    /// The embedded palette.
    pub fn embedded() -> Palette {
        serde_json::from_str(PALETTE_JSON)
            .expect("templates/palette.json is valid (checked by tests)")
    }

    /// The cell kind with this key.
    pub fn cell(&self, key: &str) -> &Kind {
        self.cells
            .iter()
            .find(|k| k.key == key)
            .unwrap_or_else(|| panic!("palette has no cell kind {key}"))
    }

    /// The CIS kind with this key.
    pub fn cis_kind(&self, key: &str) -> &Kind {
        self.cis
            .iter()
            .find(|k| k.key == key)
            .unwrap_or_else(|| panic!("palette has no CIS kind {key}"))
    }
}

/// `#rrggbb` to 0..=255 channels.
pub fn parse_hex(c: &str) -> Option<[u8; 3]> {
    let h = c.strip_prefix('#')?;
    if h.len() != 6 {
        return None;
    }
    let v = u32::from_str_radix(h, 16).ok()?;
    Some([(v >> 16) as u8, (v >> 8) as u8, v as u8])
}

/// WCAG 2 relative luminance.
pub fn luminance(rgb: [u8; 3]) -> f64 {
    let lin = |c: u8| {
        let s = f64::from(c) / 255.0;
        if s <= 0.04045 {
            s / 12.92
        } else {
            ((s + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(rgb[0]) + 0.7152 * lin(rgb[1]) + 0.0722 * lin(rgb[2])
}

/// WCAG 2 contrast ratio of two `#rrggbb` colours (1.0 ..= 21.0).
pub fn contrast(a: &str, b: &str) -> Option<f64> {
    let la = luminance(parse_hex(a)?);
    let lb = luminance(parse_hex(b)?);
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    Some((hi + 0.05) / (lo + 0.05))
}
