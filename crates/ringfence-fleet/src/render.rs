//! The fleet view as text, JSON, Markdown or HTML.

use crate::merge::{ExpiredWaiver, FleetReport, NodeRow};
use std::fmt::Write;

/// Output format of a fleet report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetFormat {
    /// Aligned columns for a terminal.
    Text,
    /// Stable JSON (docs/cis-merge-json.md).
    Json,
    /// GitHub-flavoured Markdown tables.
    Markdown,
    /// One self-contained HTML page (inline CSS, no scripts).
    Html,
}

/// Render the report.
pub fn render(report: &FleetReport, format: FleetFormat) -> String {
    match format {
        FleetFormat::Text => text(report),
        FleetFormat::Json => json(report),
        FleetFormat::Markdown => markdown(report),
        FleetFormat::Html => html(report),
    }
}

/// At most this many node names are listed per check in text, Markdown and
/// HTML (JSON lists them all).
pub const NODES_LISTED: usize = 10;

fn headline(r: &FleetReport) -> String {
    let bench = r.benchmark.as_deref().unwrap_or("none");
    let profile = if r.profiles.is_empty() {
        "none".to_string()
    } else {
        r.profiles.join(", ")
    };
    format!("benchmark {bench}, profile {profile}")
}

fn counts_line(r: &FleetReport) -> String {
    let s = &r.summary;
    let mut line = format!(
        "{} merged from {}, {}",
        plural(s.nodes, "node"),
        plural(s.files, "file"),
        plural(s.checks, "check")
    );
    if s.files_rejected > 0 {
        let _ = write!(line, "; {} left out", plural(s.files_rejected, "file"));
    }
    line
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn totals_line(r: &FleetReport) -> String {
    let s = &r.summary;
    format!(
        "pass {} (fixed {}), expected fail {}, unexpected fail {}, warn {}, info {}, not assessed {}; expired waivers {}; {} of {} nodes fail unexpectedly, {} of {} with expired waivers",
        s.pass,
        s.fixed,
        s.expected_fail,
        s.unexpected_fail,
        s.warn,
        s.info,
        s.not_assessed,
        s.expired_waivers,
        s.nodes_with_unexpected_fail,
        s.nodes,
        s.nodes_with_expired_waivers,
        s.nodes
    )
}

/// One line per expired waiver, naming its owner.
fn describe_waiver(w: &ExpiredWaiver) -> String {
    format!(
        "{} expired on {}, owner {}: {}",
        w.id, w.expires, w.owner, w.reason
    )
}

fn expired_nodes(r: &FleetReport) -> impl Iterator<Item = &NodeRow> {
    r.nodes.iter().filter(|n| !n.expired_waivers.is_empty())
}

fn listed_nodes(names: &[String]) -> String {
    let mut s = names
        .iter()
        .take(NODES_LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > NODES_LISTED {
        let _ = write!(s, " and {} more", names.len() - NODES_LISTED);
    }
    s
}

fn failing_nodes(r: &FleetReport) -> impl Iterator<Item = &NodeRow> {
    r.nodes.iter().filter(|n| n.unexpected_fail > 0)
}

fn text(r: &FleetReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "CIS fleet report: {}", headline(r));
    let _ = writeln!(o, "{}", counts_line(r));
    let idw = r
        .checks
        .iter()
        .map(|c| c.id.len())
        .max()
        .unwrap_or(2)
        .max(2);
    if !r.checks.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{:<idw$}  {:>6}  {:>5}  {:>8}  {:>10}  {:>6}  {:>6}  {:>12}  TITLE",
            "ID", "PASS", "FIXED", "EXPECTED", "UNEXPECTED", "WARN", "INFO", "NOT-ASSESSED"
        );
        for c in &r.checks {
            let _ = writeln!(
                o,
                "{:<idw$}  {:>6}  {:>5}  {:>8}  {:>10}  {:>6}  {:>6}  {:>12}  {}",
                c.id,
                c.pass,
                c.fixed,
                c.expected_fail,
                c.unexpected_fail,
                c.warn,
                c.info,
                c.not_assessed,
                c.title
            );
        }
    }
    let failing: Vec<&NodeRow> = failing_nodes(r).collect();
    let _ = writeln!(o);
    if failing.is_empty() {
        let _ = writeln!(o, "No node fails a check unexpectedly.");
    } else {
        let _ = writeln!(
            o,
            "Unexpected failures by node ({} of {} nodes):",
            failing.len(),
            r.summary.nodes
        );
        for n in failing {
            let roles = if n.roles.is_empty() {
                String::new()
            } else {
                format!(" [{}]", n.roles.join(","))
            };
            let _ = writeln!(o, "  {}{}", n.name, roles);
            for f in &n.unexpected {
                let _ = writeln!(o, "    {:<idw$}  {}", f.id, f.title);
            }
        }
    }
    let expired: Vec<&NodeRow> = expired_nodes(r).collect();
    if !expired.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "Expired waivers by node ({} of {} nodes; each fails the node):",
            expired.len(),
            r.summary.nodes
        );
        for n in expired {
            let _ = writeln!(o, "  {}", n.name);
            for w in &n.expired_waivers {
                let _ = writeln!(o, "    {}", describe_waiver(w));
            }
        }
    }
    if !r.problems.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "Files left out of the merge ({}):", r.problems.len());
        for p in &r.problems {
            let _ = writeln!(o, "  {}: {}", p.position, p.message);
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "Summary: {}", totals_line(r));
    o
}

fn json(r: &FleetReport) -> String {
    let mut s = serde_json::to_string_pretty(r).expect("the fleet report is plain data");
    s.push('\n');
    s
}

fn md_cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

fn markdown(r: &FleetReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# CIS fleet report\n");
    let _ = writeln!(o, "{}; {}.\n", md_cell(&headline(r)), counts_line(r));
    let _ = writeln!(o, "**Totals:** {}.\n", totals_line(r));
    if !r.checks.is_empty() {
        let _ = writeln!(o, "## Checks\n");
        let _ = writeln!(
            o,
            "| ID | Title | Pass | Fixed | Expected fail | Unexpected fail | Warn | Info | Not assessed | Failing nodes |"
        );
        let _ = writeln!(o, "|---|---|--:|--:|--:|--:|--:|--:|--:|---|");
        for c in &r.checks {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                md_cell(&c.id),
                md_cell(&c.title),
                c.pass,
                c.fixed,
                c.expected_fail,
                c.unexpected_fail,
                c.warn,
                c.info,
                c.not_assessed,
                md_cell(&listed_nodes(&c.unexpected_nodes))
            );
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "## Unexpected failures by node\n");
    let failing: Vec<&NodeRow> = failing_nodes(r).collect();
    if failing.is_empty() {
        let _ = writeln!(o, "No node fails a check unexpectedly.\n");
    } else {
        let _ = writeln!(o, "| Node | Roles | Checks |");
        let _ = writeln!(o, "|---|---|---|");
        for n in failing {
            let ids: Vec<String> = n
                .unexpected
                .iter()
                .map(|f| format!("{} {}", f.id, f.title))
                .collect();
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                md_cell(&n.name),
                md_cell(&n.roles.join(", ")),
                md_cell(&ids.join("; "))
            );
        }
        let _ = writeln!(o);
    }
    let expired: Vec<&NodeRow> = expired_nodes(r).collect();
    if !expired.is_empty() {
        let _ = writeln!(o, "## Expired waivers by node\n");
        let _ = writeln!(o, "Each expired waiver fails its node.\n");
        let _ = writeln!(o, "| Node | Waivers |");
        let _ = writeln!(o, "|---|---|");
        for n in expired {
            let ws: Vec<String> = n.expired_waivers.iter().map(describe_waiver).collect();
            let _ = writeln!(o, "| {} | {} |", md_cell(&n.name), md_cell(&ws.join("; ")));
        }
        let _ = writeln!(o);
    }
    if !r.problems.is_empty() {
        let _ = writeln!(o, "## Files left out of the merge\n");
        for p in &r.problems {
            let _ = writeln!(
                o,
                "- `{}`: {}",
                p.position.replace('`', "'"),
                md_cell(&p.message)
            );
        }
        let _ = writeln!(o);
    }
    o
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#1a1a1a}\
table{border-collapse:collapse;margin:1rem 0}\
th,td{border:1px solid #999;padding:.25rem .5rem;text-align:left;vertical-align:top}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
thead th{background:#e8e8e8}\
tr.bad td{background:#fde2e1}\
caption{text-align:left;font-weight:bold;padding:.25rem 0}";

fn html(r: &FleetReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">"
    );
    let _ = writeln!(
        o,
        "<title>CIS fleet report</title>\n<style>{CSS}</style>\n</head>\n<body>"
    );
    let _ = writeln!(o, "<h1>CIS fleet report</h1>");
    let _ = writeln!(o, "<p>{}; {}.</p>", esc(&headline(r)), esc(&counts_line(r)));
    let _ = writeln!(
        o,
        "<p><strong>Totals:</strong> {}.</p>",
        esc(&totals_line(r))
    );
    if !r.checks.is_empty() {
        let _ = writeln!(
            o,
            "<table>\n<caption>Checks across the fleet</caption>\n<thead><tr>"
        );
        for h in [
            "ID",
            "Title",
            "Pass",
            "Fixed",
            "Expected fail",
            "Unexpected fail",
            "Warn",
            "Info",
            "Not assessed",
            "Failing nodes",
        ] {
            let _ = write!(o, "<th scope=\"col\">{h}</th>");
        }
        let _ = writeln!(o, "</tr></thead>\n<tbody>");
        for c in &r.checks {
            let class = if c.unexpected_fail > 0 {
                " class=\"bad\""
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "<tr{class}><th scope=\"row\">{}</th><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&c.id),
                esc(&c.title),
                c.pass,
                c.fixed,
                c.expected_fail,
                c.unexpected_fail,
                c.warn,
                c.info,
                c.not_assessed,
                esc(&listed_nodes(&c.unexpected_nodes))
            );
        }
        let _ = writeln!(o, "</tbody>\n</table>");
    }
    let failing: Vec<&NodeRow> = failing_nodes(r).collect();
    if failing.is_empty() {
        let _ = writeln!(o, "<p>No node fails a check unexpectedly.</p>");
    } else {
        let _ = writeln!(o, "<table>\n<caption>Unexpected failures by node</caption>\n<thead><tr><th scope=\"col\">Node</th><th scope=\"col\">Roles</th><th scope=\"col\">Checks</th></tr></thead>\n<tbody>");
        for n in failing {
            let items: Vec<String> = n
                .unexpected
                .iter()
                .map(|f| format!("{} {}", esc(&f.id), esc(&f.title)))
                .collect();
            let _ = writeln!(
                o,
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td></tr>",
                esc(&n.name),
                esc(&n.roles.join(", ")),
                items.join("<br>")
            );
        }
        let _ = writeln!(o, "</tbody>\n</table>");
    }
    let expired: Vec<&NodeRow> = expired_nodes(r).collect();
    if !expired.is_empty() {
        let _ = writeln!(o, "<table>\n<caption>Expired waivers by node (each fails its node)</caption>\n<thead><tr><th scope=\"col\">Node</th><th scope=\"col\">Waivers</th></tr></thead>\n<tbody>");
        for n in expired {
            let items: Vec<String> = n
                .expired_waivers
                .iter()
                .map(|w| esc(&describe_waiver(w)))
                .collect();
            let _ = writeln!(
                o,
                "<tr class=\"bad\"><th scope=\"row\">{}</th><td>{}</td></tr>",
                esc(&n.name),
                items.join("<br>")
            );
        }
        let _ = writeln!(o, "</tbody>\n</table>");
    }
    if !r.problems.is_empty() {
        let _ = writeln!(o, "<h2>Files left out of the merge</h2>\n<ul>");
        for p in &r.problems {
            let _ = writeln!(
                o,
                "<li><code>{}</code>: {}</li>",
                esc(&p.position),
                esc(&p.message)
            );
        }
        let _ = writeln!(o, "</ul>");
    }
    let _ = writeln!(o, "</body>\n</html>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::merge_sources;

    #[test]
    fn html_escapes_hostile_text_and_has_header_scopes() {
        let doc = br#"{"benchmark":"cis-1.6","node":{"name":"<n>"},"checks":[{"id":"1.1.1","title":"<script>x</script>","status":"fail"}]}"#;
        let r = merge_sources(&[("a&b.json".into(), doc.to_vec())]);
        let h = render(&r, FleetFormat::Html);
        assert!(!h.contains("<script>"));
        assert!(h.contains("&lt;script&gt;") && h.contains("&lt;n&gt;"));
        assert!(
            h.contains("<th scope=\"col\">ID</th>") && h.contains("<th scope=\"row\">1.1.1</th>")
        );
        assert!(h.contains("<html lang=\"en\">"));
    }

    #[test]
    fn markdown_cells_escape_pipes() {
        let doc = br#"{"benchmark":"cis-1.6","node":{"name":"n"},"checks":[{"id":"1.1.1","title":"a | b","status":"pass"}]}"#;
        let r = merge_sources(&[("a.json".into(), doc.to_vec())]);
        assert!(render(&r, FleetFormat::Markdown).contains("a \\| b"));
    }
}
