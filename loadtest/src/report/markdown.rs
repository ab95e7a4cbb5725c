//! A [`Document`] as GitHub-flavoured Markdown: what gets pasted into a
//! README or a pull request, or committed next to a lab.
//!
//! Why it exists: Markdown is read top-down and as text, so it gets every
//! section but those marked [`Shown::HtmlOnly`], and charts only as links
//! to SVG files written beside it ([`Charts::Linked`]); by default it
//! leaves them out ([`Charts::Omit`]), and a section of charts alone
//! disappears with them.

use std::fmt::Write as _;

use super::doc::{Block, Document, Shown, Style, Table, Text};

/// What to do with the document's charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charts<'a> {
    /// Leave them out (they are in the HTML).
    Omit,
    /// Link each, in document order, to the SVG file of this name.
    Linked(&'a [String]),
}

/// Inline text as Markdown.
pub fn text(t: &Text) -> String {
    t.0.iter()
        .map(|s| match s.style {
            Style::Plain => s.text.clone(),
            Style::Strong => format!("**{}**", s.text),
            Style::Emphasis => format!("*{}*", s.text),
            Style::Code => format!("`{}`", s.text),
        })
        .collect()
}

/// A table as GitHub-flavoured Markdown (pipes in cells escaped).
pub fn table(t: &Table) -> String {
    let cell = |s: &String| s.replace('|', "\\|");
    let mut out = format!("| {} |\n", t.headers.iter().map(cell).collect::<Vec<_>>().join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(t.headers.len())));
    for row in &t.rows {
        out.push_str(&format!("| {} |\n", row.iter().map(cell).collect::<Vec<_>>().join(" | ")));
    }
    out
}

/// The document with its charts left out.
pub fn render(doc: &Document) -> String {
    render_with(doc, Charts::Omit)
}

/// The document, with its charts as `charts` says.
pub fn render_with(doc: &Document, charts: Charts<'_>) -> String {
    let mut out = format!("# {}\n\n", doc.title);
    let mut chart = 0;
    for block in &doc.lead {
        write_block(&mut out, block, charts, &mut chart);
    }
    for section in &doc.sections {
        let charts_only = section.blocks.iter().all(|b| matches!(b, Block::Chart(_)));
        if section.shown == Shown::HtmlOnly || (charts_only && charts == Charts::Omit) {
            chart += section.blocks.iter().filter(|b| matches!(b, Block::Chart(_))).count();
            continue;
        }
        let _ = write!(out, "## {}\n\n", section.heading);
        for block in &section.blocks {
            write_block(&mut out, block, charts, &mut chart);
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

fn write_block(out: &mut String, block: &Block, charts: Charts<'_>, chart: &mut usize) {
    match block {
        Block::Paragraph(t) | Block::Verdict { text: t, .. } => {
            let _ = write!(out, "{}\n\n", text(t));
        }
        Block::Subheading(h) => {
            let _ = write!(out, "### {h}\n\n");
        }
        Block::Table(t) => {
            let _ = writeln!(out, "{}", table(t));
        }
        Block::List(items) => {
            for item in items {
                let _ = writeln!(out, "- {}", text(item));
            }
            out.push('\n');
        }
        Block::Preformatted(p) => {
            let _ = write!(out, "```\n{}\n```\n\n", p.trim_end());
        }
        Block::Chart(c) => {
            if let Charts::Linked(files) = charts
                && let Some(file) = files.get(*chart)
            {
                let _ = write!(out, "![{}]({file})\n\n", c.title);
            }
            *chart += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::doc::{Section, Shown};

    fn sample() -> Document {
        let mut doc = Document::new("Title");
        doc.lead.push(Block::Verdict { passed: true, text: "**PASSED** (2 steps)".into() });
        let mut s = Section::new("Numbers");
        s.paragraph("a `code` word").table(Table { headers: vec!["a".into()], rows: vec![vec!["x|y".into()]] });
        s.push(Block::List(vec!["one".into(), "two".into()]));
        s.push(Block::Preformatted("line 1\nline 2\n".into()));
        doc.push(s);
        let mut charts = Section::new("Charts");
        charts.chart("Latency", "<svg/>".into());
        doc.push(charts);
        let mut hidden = Section::new("Details").shown(Shown::HtmlOnly);
        hidden.paragraph("only in HTML");
        doc.push(hidden);
        doc
    }

    #[test]
    fn every_block_renders_and_html_only_sections_and_lone_charts_are_left_out() {
        let md = render(&sample());
        assert_eq!(
            md,
            "# Title\n\n**PASSED** (2 steps)\n\n## Numbers\n\na `code` word\n\n| a |\n|---|\n| x\\|y |\n\n\
             - one\n- two\n\n```\nline 1\nline 2\n```\n"
        );
    }

    #[test]
    fn linked_charts_point_at_their_files() {
        let files = vec!["latency.svg".to_owned()];
        let md = render_with(&sample(), Charts::Linked(&files));
        assert!(md.ends_with("## Charts\n\n![Latency](latency.svg)\n"), "{md}");
    }
}
