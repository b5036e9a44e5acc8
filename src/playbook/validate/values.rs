//! Fields of an engine that take one of a closed set of values (`method`, `format`,
//! `compression`, `isolation`, ...), as the engine declares them in its spec
//! (`KindSpec::methods`, `KindSpec::values`, and `Method::values` for the sets of one backup
//! method). Another value is refused at its place, naming the set, in the one pass of every
//! other problem: the step would fail mid-drill, after the backup. A templated value is
//! known only to the run, which checks it again.

use std::ops::Range;

use super::super::closest;
use super::super::engine::{KindSpec, Method, Values, one_of, unknown_method};
use super::super::model::Step;
use super::super::spans::Seg;
use super::Validator;
use crate::template::has_template_syntax;

impl Validator<'_> {
    /// The step's `method` and the fields that method refuses, then each field's value
    /// against its engine's set (and its method's, when the method is known).
    pub(super) fn closed_values(
        &mut self,
        step: &Step,
        spec: &KindSpec,
        path: &[Seg<'_>],
        present: &[(String, Range<usize>)],
    ) {
        let method = self.step_method(step, spec.methods, path, present);
        let of_kind = spec.values.iter().map(|v| (v, None));
        let of_method = method
            .into_iter()
            .flat_map(|m| m.values.iter().map(move |v| (v, Some(m))));
        for (values, by) in of_kind.chain(of_method) {
            self.closed_value(step, spec.methods, values, by, path);
        }
        if let Some(method) = method {
            self.clash(method, path);
        }
    }

    /// Two written values the method does not take together, at the second's place.
    fn clash(&mut self, method: &Method, path: &[Seg<'_>]) {
        let written = |field: &str| self.spans.find(&[path, &[Seg::Key(field)]].concat());
        let has = |field: &str, value: &str| {
            written(field).is_some_and(|w| w.get_ref().as_str() == Some(value))
        };
        let Some(clash) = method.clash(has) else {
            return;
        };
        let span = written(clash.second.0).map(|w| w.span());
        self.error(clash.message(), span).help = Some(clash.why.into());
    }

    /// The value of `field` among `allowed` (those of method `by` when given).
    fn closed_value(
        &mut self,
        step: &Step,
        methods: &[Method],
        &(field, allowed): &Values,
        by: Option<&Method>,
        path: &[Seg<'_>],
    ) {
        let Some(written) = self.spans.find(&[path, &[Seg::Key(field)]].concat()) else {
            return;
        };
        let Some(given) = written.get_ref().as_str() else {
            return;
        };
        if has_template_syntax(given) || allowed.contains(&given) {
            return;
        }
        let (given, span) = (given.to_string(), written.span());
        // A value of another method (`format = "tar"` is pg_basebackup's) says which.
        let other = methods.iter().filter(|_| by.is_some()).find(|m| {
            m.allowed(field)
                .is_some_and(|set| set.contains(&given.as_str()))
        });
        let help = match other {
            Some(m) => Some(format!(
                "\"{given}\" is a `{field}` of `method = \"{}\"` ({})",
                m.name, m.tool
            )),
            None => closest(&given, allowed).map(|s| format!("did you mean `{s}`?")),
        };
        let within = match by {
            Some(m) if methods.len() > 1 => {
                let default = if step.method.is_none() {
                    " (the default)"
                } else {
                    ""
                };
                format!("with `method = \"{}\"`{default}, ", m.name)
            }
            _ => String::new(),
        };
        let set = one_of(allowed);
        let message = format!("{within}`{field}` must be {set}, not \"{given}\"");
        self.error(message, Some(span)).help = help;
    }

    /// The step's `method` among its engine's (a template is known only when the step
    /// runs), and the fields that method refuses, each reported where it stands. The
    /// method, when known.
    fn step_method(
        &mut self,
        step: &Step,
        methods: &'static [Method],
        path: &[Seg<'_>],
        present: &[(String, Range<usize>)],
    ) -> Option<&'static Method> {
        let given = step.method.as_deref();
        if methods.is_empty() || given.is_some_and(has_template_syntax) {
            return None;
        }
        let Some(method) = methods.iter().find(|m| given.is_none_or(|g| g == m.name)) else {
            let span = self.spans.value(&[path, &[Seg::Key("method")]].concat());
            let names: Vec<&str> = methods.iter().map(|m| m.name).collect();
            let given = given.unwrap_or_default();
            let help = closest(given, &names).map(|s| format!("did you mean `{s}`?"));
            self.error(unknown_method(given, methods), span).help = help;
            return None;
        };
        for (key, span) in present {
            if let Some(why) = method.refuses(key) {
                self.error(method.refusal(key), Some(span.clone())).help = Some(why.into());
            }
        }
        Some(method)
    }
}
