//! Durations as written: parsed and bounded, and no zero where a zero gives up at once.

use super::super::fields::DURATION_FIELDS;
use super::super::model::Step;
use super::super::spans::Seg;
use super::Validator;
use crate::template;
use toml::de::DeValue;

/// Fields (of a step, its `ready` or its `s3`) where zero would end the wait before it
/// began: a step timed out at once, a request or a download never made.
const NOT_ZERO: &[&str] = &["timeout", "request_timeout"];

impl Validator<'_> {
    pub(super) fn step_durations(&mut self, step: &Step, path: &[Seg<'_>]) {
        for field in DURATION_FIELDS {
            let field_path = [path, &[Seg::Key(field)]].concat();
            if let Some(DeValue::String(s)) = self.spans.find(&field_path).map(|v| v.get_ref()) {
                self.duration(&s.clone(), &field_path);
            }
        }
        if let Some(Some(timeout)) = step.s3.as_ref().map(|s| &s.timeout) {
            self.duration(
                timeout,
                &[path, &[Seg::Key("s3"), Seg::Key("timeout")]].concat(),
            );
        }
        if let Some(Some(timeout)) = step.ready.as_ref().map(|r| &r.timeout) {
            self.duration(
                timeout,
                &[path, &[Seg::Key("ready"), Seg::Key("timeout")]].concat(),
            );
        }
    }

    pub(super) fn duration(&mut self, s: &str, path: &[Seg<'_>]) {
        if template::has_template_syntax(s) {
            return;
        }
        let span = self.spans.value(path);
        match crate::limits::parse_duration(s) {
            Err(e) => {
                self.error(format!("bad duration `{s}`: {e}"), span).help = Some(format!(
                    "durations look like \"90s\", \"15m\", \"1h 30m\", and are at most {}",
                    crate::limits::MAX_DURATION_TEXT
                ));
            }
            Ok(d) if d.is_zero() => match path.last() {
                Some(Seg::Key(field)) if NOT_ZERO.contains(field) => {
                    let why = format!("a `{field}` of `{s}` gives up before anything starts");
                    self.error(why, span).help =
                        Some("leave it out for the default, or give a real bound".into());
                }
                _ => {}
            },
            Ok(_) => {}
        }
    }
}
