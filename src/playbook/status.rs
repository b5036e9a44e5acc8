//! `expect_status` of an `http` step: a status code (`200`) or class (`2xx`), or a list
//! of them. Validation judges the value as written; the step parses it once rendered.

use std::fmt;

use serde_json::Value;

/// What an `http` step's response status must be: one of these.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectStatus(Vec<StatusPattern>);

impl ExpectStatus {
    /// Of a rendered step's `expect_status`; any 2xx when there is none.
    pub fn of(value: Option<&Value>) -> anyhow::Result<Self> {
        let status = match value {
            None => vec![StatusPattern::Class(2)],
            Some(Value::Array(items)) => items
                .iter()
                .map(StatusPattern::parse)
                .collect::<anyhow::Result<_>>()?,
            Some(one) => vec![StatusPattern::parse(one)?],
        };
        anyhow::ensure!(!status.is_empty(), "`expect_status` is an empty list");
        Ok(Self(status))
    }

    /// Why `expect_status` (unrendered) is malformed, for validation; None when it is
    /// fine or is a template that only the run can judge.
    pub fn problem(value: &Value) -> Option<String> {
        let items = match value {
            Value::Array(items) if items.is_empty() => {
                return Some("`expect_status` is an empty list".into());
            }
            Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        items
            .into_iter()
            .filter(|v| !v.as_str().is_some_and(crate::template::has_template_syntax))
            .find_map(|v| StatusPattern::parse(v).err().map(|e| e.to_string()))
    }

    pub fn matches(&self, status: u16) -> bool {
        self.0.iter().any(|p| p.matches(status))
    }
}

/// `200 or 2xx`.
impl fmt::Display for ExpectStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let want: Vec<String> = self.0.iter().map(StatusPattern::to_string).collect();
        f.write_str(&want.join(" or "))
    }
}

/// `200`, or a class such as `2xx`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StatusPattern {
    Code(u16),
    Class(u16),
}

impl StatusPattern {
    fn parse(value: &Value) -> anyhow::Result<Self> {
        let text = match value {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.trim().to_ascii_lowercase(),
            other => anyhow::bail!("`expect_status`: {other} is not a status code or class"),
        };
        let bad = || {
            anyhow::anyhow!("`expect_status`: `{text}` is not a status code (200) or class (2xx)")
        };
        if let Some(class) = text.strip_suffix("xx") {
            let digit: u16 = class.parse().map_err(|_| bad())?;
            return (1..=5)
                .contains(&digit)
                .then_some(StatusPattern::Class(digit))
                .ok_or_else(bad);
        }
        let code: u16 = text.parse().map_err(|_| bad())?;
        (100..=599)
            .contains(&code)
            .then_some(StatusPattern::Code(code))
            .ok_or_else(bad)
    }

    fn matches(self, status: u16) -> bool {
        match self {
            StatusPattern::Code(c) => c == status,
            StatusPattern::Class(c) => status / 100 == c,
        }
    }
}

impl fmt::Display for StatusPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusPattern::Code(c) => write!(f, "{c}"),
            StatusPattern::Class(c) => write!(f, "{c}xx"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validation_names_a_bad_expect_status() {
        assert_eq!(ExpectStatus::problem(&json!([200, "2xx"])), None);
        assert_eq!(ExpectStatus::problem(&json!("{{ vars.code }}")), None);
        assert!(
            ExpectStatus::problem(&json!([200, "20"]))
                .unwrap()
                .contains("`20`")
        );
        assert!(ExpectStatus::problem(&json!([])).is_some());
    }

    #[test]
    fn status_patterns_parse_within_bounds_and_display_as_written() {
        use StatusPattern::{Class, Code};
        let good = [
            (json!(200), Code(200)),
            (json!("2xx"), Class(2)),
            (json!("204"), Code(204)),
            (json!(100), Code(100)),
            (json!(599), Code(599)),
            (json!("1xx"), Class(1)),
            (json!("5xx"), Class(5)),
        ];
        for (value, pattern) in good {
            assert_eq!(StatusPattern::parse(&value).unwrap(), pattern, "{value}");
        }
        let bad = [
            json!("9xx"),
            json!("ok"),
            json!(true),
            json!(99),
            json!(600),
            json!("0xx"),
            json!("6xx"),
        ];
        for value in bad {
            assert!(StatusPattern::parse(&value).is_err(), "{value}");
        }
        assert_eq!(Class(3).to_string(), "3xx");
        assert_eq!(Code(418).to_string(), "418");
        assert!(Class(2).matches(204));
        assert!(!Class(2).matches(500));
        assert!(Code(200).matches(200) && !Code(200).matches(201));
        assert!(ExpectStatus::problem(&json!(200)).is_none());
        assert!(ExpectStatus::problem(&json!("abc")).is_some());
    }

    #[test]
    fn a_step_expects_any_2xx_unless_told_and_says_what_it_wanted() {
        let default = ExpectStatus::of(None).unwrap();
        assert!(default.matches(204) && !default.matches(301));
        let listed = ExpectStatus::of(Some(&json!([200, "3xx"]))).unwrap();
        assert_eq!(listed.to_string(), "200 or 3xx");
        assert!(ExpectStatus::of(Some(&json!([]))).is_err());
    }
}
