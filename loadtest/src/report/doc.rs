//! The document model every report is built as: a title, a lead, and
//! sections of blocks (paragraphs with a little inline markup, tables,
//! lists, verdicts, preformatted text, SVG charts). It is rendered twice,
//! by [`super::markdown`] and [`super::html`], so the two files of a
//! report always say the same things.
//!
//! Why it exists: a run report, the comparison report and each lab's report
//! are all "some sections of text, tables and charts". Building them as
//! data, not as strings of one format, means each report is written once
//! and the formats cannot drift apart. The model knows nothing of load
//! tests (it depends on std only), so any tool can build a document.

use std::fmt;

/// How a piece of inline text is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// As is.
    Plain,
    /// Bold (`**…**`).
    Strong,
    /// Italic (`*…*`).
    Emphasis,
    /// Monospace (`` `…` ``).
    Code,
}

/// A run of text in one style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The characters, unescaped.
    pub text: String,
    /// How they are set.
    pub style: Style,
}

/// Inline text: spans of plain, strong and code text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(pub Vec<Span>);

impl Text {
    /// Text with no markup at all (asterisks and backticks stay as they are).
    pub fn plain(text: impl Into<String>) -> Self {
        Self(vec![Span { text: text.into(), style: Style::Plain }])
    }

    /// Text with a small markup: `**strong**`, `*emphasis*` and
    /// `` `code` ``. Inside a code span, asterisks are literal; an unclosed
    /// marker runs to the end.
    pub fn markup(text: &str) -> Self {
        let mut spans: Vec<Span> = Vec::new();
        let mut style = Style::Plain;
        let mut current = String::new();
        let mut rest = text;
        while !rest.is_empty() {
            let (toggle, len) = if rest.starts_with('`') {
                (Some(Style::Code), 1)
            } else if style != Style::Code && rest.starts_with("**") {
                (Some(Style::Strong), 2)
            } else if style != Style::Code && rest.starts_with('*') {
                (Some(Style::Emphasis), 1)
            } else {
                (None, rest.chars().next().map_or(1, char::len_utf8))
            };
            match toggle {
                Some(marker) => {
                    if !current.is_empty() {
                        spans.push(Span { text: std::mem::take(&mut current), style });
                    }
                    style = if style == marker { Style::Plain } else { marker };
                }
                None => current.push_str(&rest[..len]),
            }
            rest = &rest[len..];
        }
        if !current.is_empty() {
            spans.push(Span { text: current, style });
        }
        Self(spans)
    }

    /// The text without its styles.
    pub fn to_plain(&self) -> String {
        self.0.iter().map(|s| s.text.as_str()).collect()
    }
}

impl From<&str> for Text {
    fn from(markup: &str) -> Self {
        Self::markup(markup)
    }
}

impl From<String> for Text {
    fn from(markup: String) -> Self {
        Self::markup(&markup)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_plain())
    }
}

/// A table computed once, rendered as Markdown or HTML. Cells that read
/// `PASSED` or start with `FAILED` are marked as verdicts in HTML.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// One per column.
    pub headers: Vec<String>,
    /// One cell per column each.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Self { headers: headers.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }
}

/// A chart, as a complete `<svg>` element (see [`super::svg`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chart {
    /// What it shows, for the Markdown (which links or omits it).
    pub title: String,
    /// The whole `<svg>` element, standalone (it declares its namespace).
    pub svg: String,
}

/// One block of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    /// Running text.
    Paragraph(Text),
    /// A paragraph that says whether something held: green or red in HTML.
    Verdict {
        /// Whether it held.
        passed: bool,
        /// What held or not.
        text: Text,
    },
    /// A heading inside a section.
    Subheading(String),
    /// A table.
    Table(Table),
    /// A bulleted list.
    List(Vec<Text>),
    /// Preformatted text (kept line by line).
    Preformatted(String),
    /// An SVG chart (HTML; a link or nothing in Markdown).
    Chart(Chart),
}

/// Where a section appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// In both formats, open.
    Open,
    /// In both formats; folded away (`<details>`) in HTML.
    Folded,
    /// Only in HTML, folded away: details too long for a README.
    HtmlOnly,
}

/// A titled part of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Its `h2` (or the summary of a folded section).
    pub heading: String,
    /// Its content, in order.
    pub blocks: Vec<Block>,
    /// Where and how it appears.
    pub shown: Shown,
}

impl Section {
    /// An open section with no blocks yet.
    pub fn new(heading: impl Into<String>) -> Self {
        Self { heading: heading.into(), blocks: Vec::new(), shown: Shown::Open }
    }

    /// The same section, shown otherwise.
    #[must_use]
    pub fn shown(mut self, shown: Shown) -> Self {
        self.shown = shown;
        self
    }

    /// Adds a block.
    pub fn push(&mut self, block: Block) -> &mut Self {
        self.blocks.push(block);
        self
    }

    /// Adds a paragraph (with markup).
    pub fn paragraph(&mut self, text: impl Into<Text>) -> &mut Self {
        self.push(Block::Paragraph(text.into()))
    }

    /// Adds a table.
    pub fn table(&mut self, table: Table) -> &mut Self {
        self.push(Block::Table(table))
    }

    /// Adds a chart.
    pub fn chart(&mut self, title: impl Into<String>, svg: String) -> &mut Self {
        self.push(Block::Chart(Chart { title: title.into(), svg }))
    }
}

/// A whole report: a title, a lead under it (the answer first), sections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    /// The `h1` and the page title.
    pub title: String,
    /// What comes before the first section: the answer, first.
    pub lead: Vec<Block>,
    /// The rest, in order.
    pub sections: Vec<Section>,
}

impl Document {
    /// An empty document.
    pub fn new(title: impl Into<String>) -> Self {
        Self { title: title.into(), lead: Vec::new(), sections: Vec::new() }
    }

    /// Adds a section at the end.
    pub fn push(&mut self, section: Section) -> &mut Self {
        self.sections.push(section);
        self
    }

    /// Every chart of the document, in order (lead first).
    pub fn charts(&self) -> impl Iterator<Item = &Chart> {
        self.lead.iter().chain(self.sections.iter().flat_map(|s| s.blocks.iter())).filter_map(|b| match b {
            Block::Chart(c) => Some(c),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(text: &Text) -> Vec<(&str, Style)> {
        text.0.iter().map(|s| (s.text.as_str(), s.style)).collect()
    }

    #[test]
    fn markup_reads_strong_and_code_spans() {
        let t = Text::markup("a **b** `c **d**` *e*");
        assert_eq!(
            spans(&t),
            [
                ("a ", Style::Plain),
                ("b", Style::Strong),
                (" ", Style::Plain),
                ("c **d**", Style::Code),
                (" ", Style::Plain),
                ("e", Style::Emphasis)
            ]
        );
        assert_eq!(t.to_plain(), "a b c **d** e");
        assert_eq!(spans(&Text::markup("**open")), [("open", Style::Strong)]);
        assert_eq!(spans(&Text::markup("µs — ok")), [("µs — ok", Style::Plain)]);
        assert_eq!(spans(&Text::plain("**x**")), [("**x**", Style::Plain)]);
    }

    #[test]
    fn a_document_lists_its_charts_in_order() {
        let mut doc = Document::new("t");
        let mut s = Section::new("s");
        s.chart("one", "<svg/>".into()).paragraph("p").chart("two", "<svg/>".into());
        doc.push(s);
        assert_eq!(doc.charts().map(|c| c.title.as_str()).collect::<Vec<_>>(), ["one", "two"]);
    }
}
