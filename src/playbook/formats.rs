//! What a report can be: the one list of formats, for `[report] formats`, `report
//! --format` and the record's `artifacts`, and the built-in templates.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The templates `[report] template = "builtin:<name>"` may name.
pub const BUILTIN_TEMPLATES: &[&str] = &["markdown", "html"];

/// A report written beside the record. Each has a long and a short name (`markdown` and
/// `md`, `prometheus` and `prom`; `html` and `junit` are both), accepted wherever a
/// format is named; the long one is what the record's `artifacts` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    #[serde(alias = "md")]
    Markdown,
    Html,
    Junit,
    #[serde(alias = "prom")]
    Prometheus,
}

impl ReportFormat {
    pub const ALL: [ReportFormat; 4] = [
        ReportFormat::Markdown,
        ReportFormat::Html,
        ReportFormat::Junit,
        ReportFormat::Prometheus,
    ];

    /// `markdown`, `html`, `junit`, `prometheus`.
    pub fn name(self) -> &'static str {
        match self {
            ReportFormat::Markdown => "markdown",
            ReportFormat::Html => "html",
            ReportFormat::Junit => "junit",
            ReportFormat::Prometheus => "prometheus",
        }
    }

    /// `md`, `html`, `junit`, `prom`.
    pub fn short_name(self) -> &'static str {
        match self {
            ReportFormat::Markdown => "md",
            ReportFormat::Prometheus => "prom",
            other => other.name(),
        }
    }

    /// Of the file written beside the record, `restore_drill_<ts>.<extension>`.
    pub fn extension(self) -> &'static str {
        match self {
            ReportFormat::Markdown => "md",
            ReportFormat::Html => "html",
            ReportFormat::Junit => "junit.xml",
            ReportFormat::Prometheus => "prom",
        }
    }

    /// Either name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == name || f.short_name() == name)
    }
}

impl JsonSchema for ReportFormat {
    fn schema_name() -> Cow<'static, str> {
        "ReportFormat".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let mut names: Vec<&str> = Vec::new();
        for f in ReportFormat::ALL {
            names.push(f.name());
            if f.short_name() != f.name() {
                names.push(f.short_name());
            }
        }
        json_schema!({
            "type": "string",
            "enum": names,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_names_of_a_format_are_one_format() {
        for f in ReportFormat::ALL {
            assert_eq!(ReportFormat::parse(f.name()), Some(f));
            assert_eq!(ReportFormat::parse(f.short_name()), Some(f));
            let long: ReportFormat = serde_json::from_value(f.name().into()).unwrap();
            let short: ReportFormat = serde_json::from_value(f.short_name().into()).unwrap();
            assert_eq!((long, short), (f, f));
            assert_eq!(serde_json::to_value(f).unwrap(), f.name());
        }
        assert_eq!(ReportFormat::parse("pdf"), None);
    }
}
