//! One report people want to look at: a self-contained HTML page (or Markdown
//! for a pull-request comment) with the zone × zone connectivity matrix, each
//! required flow's verdict with blocking rules and example packets, the excess
//! regions, shadowed and redundant rules, CIS results per node and lab probes.
//!
//! [`build`] joins the inputs into a [`Report`] (plain data); [`render_html`]
//! and [`render_markdown`] fill the templates in `templates/` with it. Every
//! value is escaped by the template engine (HTML) or by the Markdown formatter.

pub mod cis;
pub mod example;
pub mod history;
pub mod lab;
pub mod palette;
mod view;

pub use view::{build, Inputs, Report, RulesetInput};

use minijinja::{AutoEscape, Environment, Value};

const HTML_TEMPLATE: &str = include_str!("../templates/report.html.j2");
const CSS_TEMPLATE: &str = include_str!("../templates/style.css.j2");
const MD_TEMPLATE: &str = include_str!("../templates/report.md.j2");

/// Escape text for a Markdown table cell or paragraph: characters with a
/// meaning in GitHub-flavoured Markdown or HTML become entities or are
/// backslash-escaped, line breaks become spaces.
pub fn escape_markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn html_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html.j2") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("report.html.j2", HTML_TEMPLATE)
        .expect("report.html.j2 parses (checked by tests)");
    env.add_template("style.css.j2", CSS_TEMPLATE)
        .expect("style.css.j2 parses (checked by tests)");
    env
}

fn md_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::Custom("markdown"));
    // `code`: a Markdown code span that stays inside a table cell.
    env.add_filter("code", |s: String| {
        Value::from_safe_string(format!(
            "`{}`",
            s.replace('`', "'")
                .replace('|', "\\|")
                .replace(['\n', '\r'], " ")
        ))
    });
    // Every interpolated value is Markdown-escaped unless marked safe.
    env.set_formatter(|out, _state, value| {
        if value.is_undefined() || value.is_none() {
            return Ok(());
        }
        let text = value.to_string();
        if value.is_safe() {
            out.write_str(&text)?;
        } else {
            out.write_str(&escape_markdown(&text))?;
        }
        Ok(())
    });
    env.add_template("report.md.j2", MD_TEMPLATE)
        .expect("report.md.j2 parses (checked by tests)");
    env
}

/// Render the report as one self-contained HTML page.
pub fn render_html(report: &Report) -> Result<String, minijinja::Error> {
    let env = html_env();
    let css = env
        .get_template("style.css.j2")?
        .render(minijinja::context! { palette => Value::from_serialize(&report.palette) })?;
    env.get_template("report.html.j2")?
        .render(minijinja::context! {
            r => Value::from_serialize(report),
            css => Value::from_safe_string(css),
        })
}

/// Render the report as GitHub-flavoured Markdown (for a pull-request comment).
pub fn render_markdown(report: &Report) -> Result<String, minijinja::Error> {
    md_env()
        .get_template("report.md.j2")?
        .render(minijinja::context! { r => Value::from_serialize(report) })
}
