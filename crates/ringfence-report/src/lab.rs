//! Lab results: per-probe records of a kernel rehearsal (issue 5). The shape is
//! tolerant (docs/report.md): a JSON array of probe records, or an object with
//! a `probes` array. Each record: `flow`, `src`, `dst`, `proto`, `port`,
//! `kernel` (what the kernel did), `predicted` (what the analysis said) and
//! `required` (whether the site requires it). Verdicts may be booleans (true =
//! accepted) or words (`accept`/`accepted`/`allowed`/`open`/`pass`, or
//! `drop`/`dropped`/`reject`/`rejected`/`blocked`/`closed`/`fail`).

use ringfence_diag::InputError;
use serde::Deserialize;

/// One probe.
#[derive(Debug, Clone, Deserialize)]
pub struct Probe {
    /// Flow id (empty for probes outside any flow).
    #[serde(default)]
    pub flow: Option<String>,
    /// Source address.
    #[serde(default)]
    pub src: Option<String>,
    /// Destination address.
    #[serde(default)]
    pub dst: Option<String>,
    /// Protocol.
    #[serde(default)]
    pub proto: Option<String>,
    /// Destination port.
    #[serde(default)]
    pub port: Option<u16>,
    /// What the kernel did.
    pub kernel: serde_json::Value,
    /// What the analysis predicted.
    #[serde(default)]
    pub predicted: Option<serde_json::Value>,
    /// Whether the site requires the probe to pass.
    #[serde(default)]
    pub required: Option<bool>,
}

/// Lab results.
#[derive(Debug, Clone)]
pub struct LabInput {
    /// The file, as given.
    pub file: String,
    /// Probes in file order.
    pub probes: Vec<Probe>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Shape {
    List(Vec<Probe>),
    Wrapped { probes: Vec<Probe> },
}

/// A verdict value as accepted (`Some(true)`), blocked (`Some(false)`) or unreadable (`None`).
pub fn verdict(v: &serde_json::Value) -> Option<bool> {
    match v {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "accept" | "accepted" | "allow" | "allowed" | "open" | "pass" | "connected" => {
                Some(true)
            }
            "drop" | "dropped" | "reject" | "rejected" | "block" | "blocked" | "closed"
            | "fail" | "refused" | "timeout" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Parse a lab result file.
pub fn parse_lab(text: &str, file: &str) -> Result<LabInput, InputError> {
    let shape: Shape = serde_json::from_str(text).map_err(|e| {
        ringfence_diag::json_error(file, &e)
        .with_help("expected an array of probe records {flow, src, dst, proto, port, kernel, predicted, required} or {\"probes\": [...]}; see docs/report.md")
    })?;
    let (probes, prefix) = match shape {
        Shape::List(p) => (p, ""),
        Shape::Wrapped { probes: p } => (p, "/probes"),
    };
    for (i, p) in probes.iter().enumerate() {
        if verdict(&p.kernel).is_none() {
            return Err(InputError::at_pointer(
                file,
                format!("{prefix}/{i}/kernel"),
                format!("cannot read the kernel verdict {}", p.kernel),
            )
            .with_help("use true/false or accepted/blocked"));
        }
    }
    Ok(LabInput {
        file: file.to_string(),
        probes,
    })
}
