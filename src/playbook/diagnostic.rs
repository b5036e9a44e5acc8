//! Problems found in a playbook, each pointing at the text that caused it.

use std::fmt::Write as _;
use std::ops::Range;

#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub message: String,
    /// Byte range in the playbook text; `None` when the problem has no single place.
    pub span: Option<Range<usize>>,
    pub help: Option<String>,
    /// A warning: shown, but the playbook is valid.
    pub warning: bool,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Self {
            message: message.into(),
            span,
            help: None,
            warning: false,
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
        self.render_with(file, &Lines::new(text))
    }

    /// [`render`](Self::render) with the line index built once for every diagnostic.
    /// Long lines (and messages quoting long values) are shown in part, around the problem.
    pub fn render_with(&self, file: &str, lines: &Lines<'_>) -> String {
        let level = if self.warning { "warning" } else { "error" };
        // A url's password written in the playbook is not shown: `***` in the message,
        // a star per character in the quoted line (the caret stays under the problem), as
        // is the value of a credential's field (`password = "..."`) in the quoted line.
        let masked = |text: &str| crate::redact::mask_url_passwords(text).into_owned();
        let mut out = format!("{level}: {}\n", masked(&clip(&self.message)));
        match &self.span {
            Some(span) => {
                let (line, col) = lines.line_col(span.start);
                let (line_text, in_line) = lines.around(span.start);
                let (shown, shown_col) = excerpt(line_text, in_line);
                let stars = |password: &str| "*".repeat(password.chars().count());
                let shown = crate::redact::replace_url_passwords(&shown, stars);
                let shown = crate::redact::replace_secret_values(&shown, stars).into_owned();
                let gutter = line.to_string().len();
                let pad = " ".repeat(gutter);
                let width = caret_width(&shown, shown_col, span.len());
                let _ = writeln!(out, "{pad}--> {file}:{line}:{col}");
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{line} | {shown}");
                let _ = writeln!(
                    out,
                    "{pad} | {}{}",
                    " ".repeat(shown_col - 1),
                    "^".repeat(width)
                );
            }
            None => {
                let _ = writeln!(out, " --> {file}");
            }
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "  = help: {}", masked(&clip(help)));
        }
        out
    }
}

/// Bytes of a line shown before and after the problem when the line is long.
const BEFORE: usize = 60;
const AFTER: usize = 100;
/// Longest message shown whole.
const LONGEST_MESSAGE: usize = 400;

/// The part of a long line around byte `at`, and the 1-based column of `at` in it.
fn excerpt(line: &str, at: usize) -> (String, usize) {
    if line.len() <= BEFORE + AFTER {
        return (line.to_string(), line[..at].chars().count() + 1);
    }
    let from = floor_boundary(line, at.saturating_sub(BEFORE));
    let to = floor_boundary(line, (at + AFTER).min(line.len()));
    let head = if from > 0 { "…" } else { "" };
    let tail = if to < line.len() { "…" } else { "" };
    let col = head.chars().count() + line[from..at].chars().count() + 1;
    (format!("{head}{}{tail}", &line[from..to]), col)
}

/// A message quoting a huge value (a 1 MB field name) is cut in the middle.
fn clip(message: &str) -> std::borrow::Cow<'_, str> {
    if message.len() <= LONGEST_MESSAGE {
        return message.into();
    }
    let head = floor_boundary(message, LONGEST_MESSAGE / 2);
    let tail = floor_boundary(message, message.len() - LONGEST_MESSAGE / 2);
    let cut = message.len() - head - (message.len() - tail);
    format!(
        "{} … ({cut} bytes) … {}",
        &message[..head],
        &message[tail..]
    )
    .into()
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    Lines::new(text).line_col(offset)
}

/// Where each line of a text starts, so that many offsets are turned into line and column
/// in O(log n) each instead of a scan from the start of the text for each.
pub struct Lines<'t> {
    text: &'t str,
    /// Byte offset of the start of each line (the first is 0).
    starts: Vec<usize>,
}

impl<'t> Lines<'t> {
    pub fn new(text: &'t str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { text, starts }
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> usize {
        let offset = self.clamp(offset);
        self.starts.partition_point(|&s| s <= offset)
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = self.clamp(offset);
        let line = self.line(offset);
        let col = self.text[self.starts[line - 1]..offset].chars().count() + 1;
        (line, col)
    }

    /// The line holding a byte offset, and where in that line the offset lies (bytes).
    pub fn around(&self, offset: usize) -> (&'t str, usize) {
        let offset = self.clamp(offset);
        let line = self.line(offset);
        let text = self.line_text(line);
        (text, (offset - self.starts[line - 1]).min(text.len()))
    }

    /// The text of a 1-based line, without its line ending.
    pub fn line_text(&self, line: usize) -> &'t str {
        let Some(&start) = self.starts.get(line.wrapping_sub(1)) else {
            return "";
        };
        let end = self
            .starts
            .get(line)
            .map_or(self.text.len(), |&next| next - 1);
        let text = &self.text[start..end];
        text.strip_suffix('\r').unwrap_or(text)
    }

    /// The offset, moved back onto the text and onto a character boundary.
    fn clamp(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }
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

    #[test]
    fn long_lines_and_messages_are_shown_in_part() {
        let text = format!("x = 'é{}Z{}'\n", "a".repeat(50_000), "b".repeat(50_000));
        let at = text.find('Z').unwrap();
        let d = Diagnostic::new(format!("bad `{}`", &text[..20_000]), Some(at..at + 1));
        let out = d.render("p.toml", &text);
        assert!(out.len() < 2_000, "{} bytes", out.len());
        assert!(out.contains("--> p.toml:1:50007"), "{out}");
        assert!(out.contains("bytes) …"), "{out}");
        let rows: Vec<&str> = out.lines().collect();
        let (shown, caret) = (rows[3], rows[4]);
        assert!(
            shown.starts_with("1 | …a") && shown.ends_with("b…"),
            "{shown}"
        );
        let caret_col = caret.chars().position(|c| c == '^').unwrap();
        assert_eq!(shown.chars().nth(caret_col), Some('Z'), "{shown}\n{caret}");
    }

    #[test]
    fn lines_are_found_by_offset() {
        let lines = Lines::new("ab\r\ncd\n\nef");
        assert_eq!(lines.line_col(0), (1, 1));
        assert_eq!(lines.line_col(4), (2, 1));
        assert_eq!(lines.line_col(7), (3, 1));
        assert_eq!(lines.line_col(9), (4, 2));
        assert_eq!(lines.line_col(99), (4, 3));
        assert_eq!(lines.line_text(1), "ab");
        assert_eq!(lines.line_text(2), "cd");
        assert_eq!(lines.line_text(3), "");
        assert_eq!(lines.line_text(4), "ef");
        assert_eq!(lines.line_text(5), "");
        assert_eq!(lines.line_text(0), "");
    }
}
