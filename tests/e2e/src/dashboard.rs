//! The committed Grafana dashboard (`deploy/grafana/dashboards/twinshop.json`)
//! read as what it asks Prometheus: each panel's PromQL targets, with
//! Grafana's template variables put in as Grafana would for one build.
//!
//! Why it exists: Grafana cannot run where the tests do, but its queries
//! can. `tests/dashboards.rs` sends every one of them to a Prometheus that
//! scrapes a running build and fails on a panel that shows no data.

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// A dashboard's panels and template variables.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// Every panel that draws something (rows are only headings), in order,
    /// with the title of the row it is under.
    pub panels: Vec<Panel>,
    pub variables: Vec<Variable>,
}

/// One panel and the queries it sends.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    /// The row heading it is under ("" before the first row).
    pub row: String,
    /// `timeseries`, `stat`, `table`, ...
    pub kind: String,
    /// Grafana's unit of its values (`s`, `bytes`, `reqps`, ...), or "".
    pub unit: String,
    pub targets: Vec<Target>,
}

/// One PromQL query of a panel.
#[derive(Debug, Clone)]
pub struct Target {
    pub ref_id: String,
    /// As written, with `$variables`.
    pub expr: String,
    /// The legend template (`{{route}}`), or `__auto`.
    pub legend: String,
    /// Evaluated once, at the end of the time range (else over the range).
    pub instant: bool,
}

/// A template variable.
#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    /// `query`, `datasource`, `custom`, ...
    pub kind: String,
    /// A `query` variable's `label_values(...)`.
    pub query: Option<String>,
    /// What "All" stands for, when the variable offers it.
    pub all_value: Option<String>,
}

impl Dashboard {
    /// Reads a dashboard JSON file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let json: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        Self::from_json(&json)
    }

    /// The panels (those inside collapsed rows too) and variables of a
    /// dashboard's JSON model. A panel without a PromQL target is an error:
    /// it could show nothing.
    pub fn from_json(json: &Value) -> anyhow::Result<Self> {
        let mut panels = Vec::new();
        let mut row = String::new();
        for panel in json["panels"].as_array().context("no `panels`")? {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            if panel["type"] == "row" {
                row = title;
                for inner in panel["panels"].as_array().into_iter().flatten() {
                    panels.push(Panel::from_json(inner, &row)?);
                }
                continue;
            }
            panels.push(Panel::from_json(panel, &row)?);
        }
        let variables = json["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| Variable {
                name: v["name"].as_str().unwrap_or_default().to_owned(),
                kind: v["type"].as_str().unwrap_or_default().to_owned(),
                query: v["query"]["query"].as_str().or_else(|| v["definition"].as_str()).map(str::to_owned),
                all_value: (v["includeAll"] == true).then(|| v["allValue"].as_str().unwrap_or(".*").to_owned()),
            })
            .collect();
        Ok(Self { panels, variables })
    }

    /// What Grafana puts in for every variable when `build` is chosen and
    /// the others show "All": the given `chosen` values first, then each
    /// variable's "All".
    pub fn values(&self, chosen: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut values: BTreeMap<String, String> =
            chosen.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        for variable in &self.variables {
            if let Some(all) = &variable.all_value {
                values.entry(variable.name.clone()).or_insert_with(|| all.clone());
            }
        }
        values
    }
}

impl Panel {
    fn from_json(panel: &Value, row: &str) -> anyhow::Result<Self> {
        let title = panel["title"].as_str().unwrap_or_default().to_owned();
        let targets: Vec<Target> = panel["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["hide"] != true)
            .map(|t| Target {
                ref_id: t["refId"].as_str().unwrap_or_default().to_owned(),
                expr: t["expr"].as_str().unwrap_or_default().to_owned(),
                legend: t["legendFormat"].as_str().unwrap_or("__auto").to_owned(),
                instant: t["instant"] == true && t["range"] != true,
            })
            .collect();
        if targets.is_empty() || targets.iter().any(|t| t.expr.trim().is_empty()) {
            bail!("panel {title:?} has no PromQL target (or an empty one)");
        }
        Ok(Self {
            title,
            row: row.to_owned(),
            kind: panel["type"].as_str().unwrap_or_default().to_owned(),
            unit: panel["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or_default().to_owned(),
            targets,
        })
    }
}

/// `text` with every `$name` and `${name}` (`${name:format}` too) replaced
/// by its value; an unknown variable is an error naming it. A `$` before
/// anything but a letter or `_` (a regex replacement like `$1`) stays.
pub fn expand(text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
            let inner = &braced[..end];
            (inner.split(':').next().unwrap_or(inner), end + 2)
        } else {
            let len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            (&after[..len], len)
        };
        if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            out.push('$');
            rest = after;
            continue;
        }
        let value = values.get(name).ok_or_else(|| format!("unknown variable ${name} in {text:?}"))?;
        out.push_str(value);
        rest = &after[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `label_values(selector, label)` → `(selector, label)`, as a Grafana
/// Prometheus variable query spells it.
pub fn label_values(query: &str) -> Option<(&str, &str)> {
    let inner = query.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim(), label.trim()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn values() -> BTreeMap<String, String> {
        [("build", "monolith"), ("service", ".+"), ("__rate_interval", "20s")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn variables_are_put_in_in_both_spellings_and_regex_references_stay() {
        let expr = r#"label_replace(rate(x{build="$build", service=~"${service}"}[$__rate_interval]), "a", "$1", "b", "(.*)")"#;
        assert_eq!(
            expand(expr, &values()).as_deref(),
            Ok(r#"label_replace(rate(x{build="monolith", service=~".+"}[20s]), "a", "$1", "b", "(.*)")"#)
        );
        assert_eq!(expand("${build:regex}", &values()).as_deref(), Ok("monolith"));
    }

    #[test]
    fn an_unknown_variable_is_an_error() {
        let err = expand("up{x=\"$nope\"}", &values()).expect_err("unknown");
        assert!(err.contains("$nope"), "{err}");
    }

    #[test]
    fn panels_inside_collapsed_rows_count_and_a_panel_without_a_query_is_an_error() {
        let json = json!({"panels": [
            {"type": "row", "title": "R", "collapsed": true, "panels": [
                {"type": "stat", "title": "inner", "targets": [{"refId": "A", "expr": "up"}]}]},
            {"type": "timeseries", "title": "outer", "targets": [{"refId": "A", "expr": "up", "instant": true}]},
        ]});
        let d = Dashboard::from_json(&json).expect("parses");
        let titles: Vec<_> = d.panels.iter().map(|p| (p.row.as_str(), p.title.as_str())).collect();
        assert_eq!(titles, [("R", "inner"), ("R", "outer")]);
        assert!(d.panels[1].targets[0].instant);
        let empty = json!({"panels": [{"type": "timeseries", "title": "empty", "targets": []}]});
        assert!(Dashboard::from_json(&empty).is_err());
    }

    #[test]
    fn label_values_queries_split_into_selector_and_label() {
        assert_eq!(
            label_values(r#"label_values(up{job="twinshop", build="$build"}, service)"#),
            Some((r#"up{job="twinshop", build="$build"}"#, "service"))
        );
        assert_eq!(label_values("query_result(up)"), None);
    }
}
