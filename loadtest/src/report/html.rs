//! A [`Document`] as one self-contained HTML page: inline CSS and SVG, no
//! JavaScript, nothing fetched, so it opens anywhere and diffs as text.
//!
//! Why it exists: a latency curve or a percentile ladder is read at a
//! glance where a table is not. The page shows everything the document
//! holds, charts included; folded sections become `<details>`.

use std::fmt::Write as _;

use super::{
    doc::{Block, Document, Shown, Style, Table, Text},
    svg::escape,
};

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1000px;color:#222;padding:0 1rem}\
table{border-collapse:collapse;font-size:13px;margin:.5rem 0 1rem}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}\
td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}.pass{color:#176f2c;font-weight:bold}\
.fail{color:#b00;font-weight:bold}details{margin:1rem 0}summary{font-weight:bold;cursor:pointer}svg{display:block;margin:.5rem 0}\
pre{background:#f6f6f6;padding:.5rem;overflow-x:auto}";

/// Inline text as HTML (escaped).
pub fn text(t: &Text) -> String {
    t.0.iter()
        .map(|s| match s.style {
            Style::Plain => escape(&s.text),
            Style::Strong => format!("<b>{}</b>", escape(&s.text)),
            Style::Emphasis => format!("<em>{}</em>", escape(&s.text)),
            Style::Code => format!("<code>{}</code>", escape(&s.text)),
        })
        .collect()
}

/// A table as HTML; `PASSED` and `FAILED…` cells are marked.
pub fn table(t: &Table) -> String {
    let mut out = String::from("<table><tr>");
    for h in &t.headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>");
    for row in &t.rows {
        out.push_str("<tr>");
        for cell in row {
            let class = if cell.starts_with("FAILED") {
                " class=\"fail\""
            } else if cell == "PASSED" {
                " class=\"pass\""
            } else {
                ""
            };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

fn block(out: &mut String, block: &Block) {
    match block {
        Block::Paragraph(t) => {
            let _ = write!(out, "<p>{}</p>", text(t));
        }
        Block::Verdict { passed, text: t } => {
            let class = if *passed { "pass" } else { "fail" };
            let _ = write!(out, "<p class=\"{class}\">{}</p>", text(t));
        }
        Block::Subheading(h) => {
            let _ = write!(out, "<h3>{}</h3>", escape(h));
        }
        Block::Table(t) => out.push_str(&table(t)),
        Block::List(items) => {
            out.push_str("<ul>");
            for item in items {
                let _ = write!(out, "<li>{}</li>", text(item));
            }
            out.push_str("</ul>");
        }
        Block::Preformatted(p) => {
            let _ = write!(out, "<pre>{}</pre>", escape(p));
        }
        Block::Chart(c) => out.push_str(&c.svg),
    }
}

/// The whole page.
pub fn render(doc: &Document) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head><body><h1>{t}</h1>",
        t = escape(&doc.title)
    );
    for b in &doc.lead {
        block(&mut out, b);
    }
    for s in &doc.sections {
        let folded = s.shown != Shown::Open;
        if folded {
            let _ = write!(out, "<details><summary>{}</summary>", escape(&s.heading));
        } else {
            let _ = write!(out, "<h2>{}</h2>", escape(&s.heading));
        }
        for b in &s.blocks {
            block(&mut out, b);
        }
        if folded {
            out.push_str("</details>");
        }
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::doc::Section;

    #[test]
    fn the_page_is_self_contained_escaped_and_folds_what_is_folded() {
        let mut doc = Document::new("t <1>");
        doc.lead.push(Block::Verdict { passed: false, text: "**FAILED** in 1 of 2".into() });
        let mut open = Section::new("Open & shut");
        open.paragraph("see `a<b`").chart("c", "<svg></svg>".into());
        open.push(Block::Preformatted("x < y".into()));
        doc.push(open);
        let mut folded = Section::new("Details").shown(Shown::Folded);
        folded.table(Table { headers: vec!["check".into()], rows: vec![vec!["PASSED".into()]] });
        doc.push(folded);
        let html = render(&doc);
        assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<title>t &lt;1&gt;</title>"));
        assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="));
        assert!(html.contains("<p class=\"fail\"><b>FAILED</b> in 1 of 2</p>"));
        assert!(html.contains("<h2>Open &amp; shut</h2><p>see <code>a&lt;b</code></p><svg></svg><pre>x &lt; y</pre>"));
        assert!(html.contains("<details><summary>Details</summary><table>"));
        assert!(html.contains("<td class=\"pass\">PASSED</td>"));
    }
}
