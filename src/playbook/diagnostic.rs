//! Problems found in a playbook, each pointing at the text that caused it.

use std::fmt::Write as _;
use std::ops::Range;

#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub message: String,
    /// Byte range in the playbook text; `None` when the problem has no single place.
    pub span: Option<Range<usize>>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Self {
            message: message.into(),
            span,
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Renders the problem the way rustc and just do:
    ///
    /// ```text
    /// error: unknown field `tiemout`
    ///  --> playbooks/x.toml:12:1
    ///    |
    /// 12 | tiemout = "5m"
    ///    | ^^^^^^^
    /// ```
    pub fn render(&self, file: &str, text: &str) -> String {
        let mut out = format!("error: {}\n", self.message);
        match &self.span {
            Some(span) => {
                let (line, col) = line_col(text, span.start);
                let line_text = text.lines().nth(line - 1).unwrap_or("");
                let gutter = line.to_string().len();
                let pad = " ".repeat(gutter);
                let width = caret_width(line_text, col, span.len());
                let _ = writeln!(out, "{pad}--> {file}:{line}:{col}");
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{line} | {line_text}");
                let _ = writeln!(out, "{pad} | {}{}", " ".repeat(col - 1), "^".repeat(width));
            }
            None => {
                let _ = writeln!(out, " --> {file}");
            }
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "  = help: {help}");
        }
        out
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..offset].chars().count() + 1;
    (line, col)
}

/// Underline the span, but never past the end of its first line.
fn caret_width(line_text: &str, col: usize, span_len: usize) -> usize {
    let rest = line_text.chars().count().saturating_sub(col - 1);
    span_len.min(rest).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_and_caret() {
        let text = "version = 1\n[drill]\nnmae = \"x\"\n";
        let start = text.find("nmae").unwrap();
        let d = Diagnostic::new("unknown field `nmae`", Some(start..start + 4));
        let out = d.render("p.toml", text);
        assert!(out.contains("--> p.toml:3:1"), "{out}");
        assert!(out.contains("3 | nmae = \"x\""), "{out}");
        assert!(out.contains("  | ^^^^\n"), "{out}");
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(line_col("a\nxé = 1", 5), (2, 3));
    }
}
