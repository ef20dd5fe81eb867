//! Basic accessibility of the HTML report: table headers with scope, a
//! caption on every table, a word (not only colour) in every status cell, text
//! contrast of at least 4.5:1, and no external assets or scripts.

use ringfence_report::palette::{contrast, Palette};
use ringfence_report::{example, render_html};

fn html() -> String {
    render_html(&example::report("2026-01-01 00:00:00 UTC", "t")).unwrap()
}

/// The opening tags named `tag` (`<tag ...>` or `<tag>`).
fn tags<'a>(html: &'a str, tag: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let open = format!("<{tag}");
    let mut rest = html;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        if after.starts_with([' ', '>']) {
            let end = after.find('>').unwrap();
            out.push(&rest[i..i + open.len() + end + 1]);
        }
        rest = &rest[i + open.len()..];
    }
    out
}

#[test]
fn every_table_has_a_caption_and_every_header_cell_a_scope() {
    let h = html();
    let tables: Vec<&str> = h.split("<table").skip(1).collect();
    assert!(tables.len() >= 6, "{} tables", tables.len());
    for t in &tables {
        let body = &t[..t.find("</table>").unwrap()];
        assert!(
            body.contains("<caption>"),
            "table without caption: {:.120}",
            body
        );
        assert!(
            body.contains("<th "),
            "table without header cells: {:.120}",
            body
        );
    }
    let ths = tags(&h, "th");
    assert!(!ths.is_empty());
    for th in ths {
        assert!(
            th.contains("scope=\"col\"") || th.contains("scope=\"row\""),
            "{th}"
        );
    }
}

#[test]
fn every_status_cell_and_badge_carries_a_word_not_only_colour() {
    let h = html();
    let p = Palette::embedded();
    let mut cells = 0;
    for (i, _) in h.match_indices("<td class=\"k-") {
        let cell = &h[i..i + h[i..].find("</td>").unwrap()];
        let kind = p
            .cells
            .iter()
            .find(|k| cell.contains(&format!("data-kind=\"{}\"", k.key)))
            .expect("cell kind");
        assert!(
            cell.contains(&format!("<span class=\"lbl\">{}</span>", kind.label)),
            "cell without its word: {cell}"
        );
        cells += 1;
    }
    assert!(cells >= 100, "only {cells} matrix cells");
    // Badges: symbol hidden from screen readers, the word is text.
    for (i, _) in h.match_indices("<span class=\"badge ") {
        let inner = &h[i..h[i..].find("</span>").map_or(h.len(), |e| i + e)];
        assert!(inner.contains("aria-hidden=\"true\""), "{inner}");
    }
    // Labels are distinct, so the word alone tells the status.
    let mut words: Vec<&str> = p.cells.iter().map(|k| k.label.as_str()).collect();
    words.sort();
    words.dedup();
    assert_eq!(words.len(), p.cells.len());
}

#[test]
fn palette_text_contrast_is_at_least_4_5_to_1() {
    let p = Palette::embedded();
    let mut pairs: Vec<(String, &str, &str)> = vec![
        ("page text".into(), &p.page.fg, &p.page.bg),
        ("muted text".into(), &p.page.muted, &p.page.bg),
        ("links".into(), &p.page.link, &p.page.bg),
        ("header text".into(), &p.page.fg, &p.page.head_bg),
        ("muted on header".into(), &p.page.muted, &p.page.head_bg),
        ("links on header".into(), &p.page.link, &p.page.head_bg),
    ];
    for k in p.cells.iter().chain(&p.cis) {
        pairs.push((format!("{} text", k.key), &k.fg, &k.bg));
        // Muted notes sit inside coloured cells too.
        pairs.push((format!("muted on {}", k.key), &p.page.muted, &k.bg));
    }
    for (what, fg, bg) in pairs {
        let c = contrast(fg, bg).unwrap_or_else(|| panic!("{what}: bad colour {fg} / {bg}"));
        assert!(c >= 4.5, "{what}: {fg} on {bg} is only {c:.2}:1");
    }
    // The arithmetic itself: black on white is 21:1, equal colours 1:1.
    assert!((contrast("#000000", "#ffffff").unwrap() - 21.0).abs() < 1e-9);
    assert!((contrast("#777777", "#777777").unwrap() - 1.0).abs() < 1e-9);
}

#[test]
fn the_page_is_self_contained_and_has_print_styles() {
    let h = html();
    assert!(!h.contains("<script"), "scripts");
    assert!(!h.contains(" src="), "external or embedded sources");
    assert!(!h.contains("href=\"http"), "external links");
    assert!(!h.contains("@import") && !h.contains("url("), "CSS fetches");
    assert!(!h.contains("<link"), "linked resources");
    assert!(h.contains("@media print"));
    assert!(h.contains("<html lang=\"en\">"));
    // Every in-page link points at an element that exists.
    for (i, _) in h.match_indices("href=\"#") {
        let id = &h[i + 7..i + 7 + h[i + 7..].find('"').unwrap()];
        assert!(h.contains(&format!("id=\"{id}\"")), "dangling link #{id}");
    }
}
