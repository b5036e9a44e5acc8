//! The names a template reads: roots, steps that ran before, their outputs and check
//! names, vars, `drill.*`; and `env.X` without a default (a warning: it is fine when the
//! variable is always set where the drill runs).

use std::collections::HashMap;
use std::ops::Range;

use super::super::engine::EngineSpec;
use super::super::model::Playbook;
use super::super::outputs::step_outputs;
use super::super::spans::Seg;
use super::super::{Layout, MAX_SHOWN, closest};
use super::{Scope, Validator};
use crate::template::{self, DRILL_FIELDS};

/// What a parsed step offers later templates.
pub(super) struct StepNames<'a> {
    kind: &'static str,
    /// None when they cannot be known (an unknown engine: reported on its own).
    outputs: Option<Vec<&'static str>>,
    checks: Vec<&'a str>,
}

/// Every parsed step by id (the first of a duplicate id).
pub(super) fn known_steps<'a>(
    pb: &'a Playbook,
    layout: &Layout,
    engines: &[&EngineSpec],
) -> HashMap<&'a str, StepNames<'a>> {
    let mut known = HashMap::new();
    for (section, _, _, parsed) in &layout.steps {
        let Some(step) = parsed.and_then(|i| pb.section(*section).get(i)) else {
            continue;
        };
        let checks = step.checks.iter().flatten();
        known.entry(step.id.as_str()).or_insert(StepNames {
            kind: step.kind.as_str(),
            outputs: step_outputs(step, engines),
            checks: checks.map(|c| c.name.as_str()).collect(),
        });
    }
    known
}

impl Validator<'_> {
    /// Parses a template (or expression) and checks every name it reads.
    pub(super) fn template(
        &mut self,
        src: &str,
        is_expression: bool,
        scope: &Scope<'_>,
        path: &[Seg<'_>],
    ) {
        if !is_expression && !template::has_template_syntax(src) {
            return;
        }
        let span = self.spans.value(path);
        let mut names: Vec<String> = match template::referenced_names(src, is_expression) {
            Ok(names) => names.into_iter().collect(),
            Err(e) => {
                self.error(format!("template error: {e}"), span);
                return;
            }
        };
        // `steps.verify.checks['row counts match']` reads as `steps.verify.checks`.
        names.extend(
            subscripted_checks(src)
                .into_iter()
                .map(|(id, check)| format!("steps.{id}.checks.{check}")),
        );
        for name in names {
            // Suggestions search every step id: only for the problems that are shown, so
            // that ten thousand bad references stay linear.
            let suggest = self.diags.len() < MAX_SHOWN;
            let at = || within(self.text, span.clone(), src, &name);
            if let Some(problem) = unknown_name(&name, scope, &self.known, suggest) {
                self.error(problem.0, at()).help = problem.1;
            } else if let Some(var) = name.strip_prefix("env.")
                && !has_default(src, var)
            {
                let var = var.split('.').next().unwrap_or(var);
                let warning = self.error(
                    format!("`env.{var}` has no default: the run stops when {var} is not set"),
                    at(),
                );
                warning.warning = true;
                warning.help = Some(format!(
                    "if it may be unset, write `{{{{ env.{var} | default(\"…\") }}}}`"
                ));
            }
        }
    }
}

/// Where the template `src`, the value written at `span` of the playbook `text`, reads
/// `name` (e.g. `steps.bakup.path`): the longest of its dotted beginnings that the
/// template spells out (`steps.bakup` of `steps.bakup['path']`), so the caret stands under
/// the name rather than at the value's first quote. The whole value where the template
/// is not written in it as is (escapes, a multi-line string's trimmed first newline) or
/// does not spell the name out.
fn within(text: &str, span: Option<Range<usize>>, src: &str, name: &str) -> Option<Range<usize>> {
    let span = span?;
    let narrowed = || {
        let start = span.start + text.get(span.clone())?.find(src)?;
        let ends = name.match_indices('.').map(|(i, _)| i).chain([name.len()]);
        let ends: Vec<usize> = ends.collect();
        ends.into_iter().rev().find_map(|end| {
            let spelt = &name[..end];
            let at = src.find(spelt)?;
            Some(start + at..start + at + spelt.len())
        })
    };
    narrowed().or(Some(span))
}

/// Why `name` (e.g. `steps.bakup.path`) cannot be read here, with a hint.
fn unknown_name(
    name: &str,
    scope: &Scope<'_>,
    known: &HashMap<&str, StepNames<'_>>,
    suggest: bool,
) -> Option<(String, Option<String>)> {
    let mut parts = name.splitn(4, '.');
    let root = parts.next()?;
    let member = parts.next();
    if !scope.roots.contains(&root) {
        let hint = closest(root, scope.roots)
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| format!("templates here can read: {}", scope.roots.join(", ")));
        return Some((format!("unknown name `{root}` in template"), Some(hint)));
    }
    let member = member?;
    match root {
        "steps" if !scope.earlier.contains(member) => {
            if scope.all.contains(member) {
                Some((
                    format!("template references step `{member}`, which runs later"),
                    Some("a step can only read the outputs of steps that ran before it".into()),
                ))
            } else {
                let ids: Vec<&str> = match suggest {
                    true => scope.all.iter().copied().collect(),
                    false => Vec::new(),
                };
                Some((
                    format!("template references unknown step `{member}`"),
                    closest(member, &ids).map(|s| format!("did you mean `{s}`?")),
                ))
            }
        }
        "steps" => unknown_output(member, parts.next()?, parts.next(), known.get(member)?),
        "vars" if !scope.vars.contains(&member) => Some((
            format!("template references unknown var `{member}`"),
            closest(member, if suggest { scope.vars } else { &[] })
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| {
                    Some("vars are defined in [vars], and can only use earlier vars".into())
                }),
        )),
        "secrets" if !scope.secrets.contains(&member) => Some((
            format!("template references unknown secret `{member}`"),
            closest(member, if suggest { scope.secrets } else { &[] })
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| {
                    Some(format!(
                        "secrets are declared in [secrets]: `{member} = {{ env = \"VAR\" }}`"
                    ))
                }),
        )),
        "drill" if !DRILL_FIELDS.contains(&member) => Some((
            format!("`drill.{member}` does not exist"),
            Some(format!("drill offers: {}", DRILL_FIELDS.join(", "))),
        )),
        _ => None,
    }
}

/// Why step `id` has no `output` (or no check named `check`), with a hint.
fn unknown_output(
    id: &str,
    output: &str,
    check: Option<&str>,
    step: &StepNames<'_>,
) -> Option<(String, Option<String>)> {
    let outputs = step.outputs.as_ref()?;
    if !outputs.contains(&output) {
        let help = match closest(output, outputs) {
            Some(s) => format!("did you mean `{s}`?"),
            None if output == "table_digests" && outputs.contains(&"table_counts") => {
                "a backup outputs `table_digests` with `digests = true`".to_string()
            }
            None => format!("a {} step outputs: {}", step.kind, outputs.join(", ")),
        };
        return Some((format!("step `{id}` has no output `{output}`"), Some(help)));
    }
    let check = check.filter(|_| output == "checks")?;
    if step.checks.contains(&check) {
        return None;
    }
    let help = match closest(check, &step.checks) {
        Some(s) => format!("did you mean `{s}`?"),
        None if step.checks.is_empty() => format!("step `{id}` has no checks"),
        None => format!("its checks: `{}`", step.checks.join("`, `")),
    };
    Some((format!("step `{id}` has no check `{check}`"), Some(help)))
}

/// The `(id, name)` of each `steps.<id>.checks['<name>']` (or `["<name>"]`) in `src`.
fn subscripted_checks(src: &str) -> Vec<(&str, &str)> {
    let mut found = Vec::new();
    for (at, _) in src.match_indices("steps.") {
        let rest = &src[at + "steps.".len()..];
        let id_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let (id, rest) = rest.split_at(id_len);
        let Some(rest) = rest.strip_prefix(".checks") else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix('[') else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(quote) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') else {
            continue;
        };
        if let Some((name, _)) = rest[1..].split_once(quote) {
            found.push((id, name));
        }
    }
    found
}

/// Whether every `env.<var>` in `src` is followed by a `default` filter or guarded by
/// `is defined`.
fn has_default(src: &str, var: &str) -> bool {
    let needle = format!("env.{var}");
    src.match_indices(&needle).all(|(at, _)| {
        let after = &src[at + needle.len()..];
        let word_ends = !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        let after = after.trim_start();
        let filtered = after
            .strip_prefix('|')
            .map(str::trim_start)
            .is_some_and(|f| {
                f.starts_with("default") || f.starts_with("d(") || f.starts_with("d ")
            });
        !word_ends
            || filtered
            || after.starts_with("is defined")
            || after.starts_with("is not defined")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caret_stands_under_the_name_the_template_spells_out() {
        fn at<'t>(text: &'t str, src: &str, name: &str) -> Option<&'t str> {
            let value = text.find('"').unwrap()..text.len();
            within(text, Some(value), src, name).map(|r| &text[r])
        }
        let text = r#"from = "{{ steps.bakup.path }}""#;
        assert_eq!(
            at(text, "{{ steps.bakup.path }}", "steps.bakup.path"),
            Some("steps.bakup.path")
        );
        // A subscript: the dotted part that is spelt out.
        let text = r#"from = "{{ steps.bakup['path'] }}""#;
        let src = "{{ steps.bakup['path'] }}";
        assert_eq!(at(text, src, "steps.bakup.path"), Some("steps.bakup"));
        // Escapes: the template is not written as is, so the whole value.
        let text = r#"run = "echo \"{{ nope }}\"""#;
        assert_eq!(at(text, "echo \"{{ nope }}\"", "nope"), Some(&text[6..]));
        assert_eq!(within(text, None, "x", "nope"), None);
    }

    #[test]
    fn subscripted_checks_are_found_with_either_quote() {
        let src =
            "steps.verify.checks['row counts'] and steps.v2.checks [ \"x y\" ] and steps.a.path";
        assert_eq!(
            subscripted_checks(src),
            [("verify", "row counts"), ("v2", "x y")]
        );
    }

    #[test]
    fn env_defaults_are_recognised() {
        assert!(has_default("{{ env.HOME | default('/') }}", "HOME"));
        assert!(has_default("{{ env.HOME|d('/') }}", "HOME"));
        // Guarded once, read bare once: the bare read still warns.
        assert!(!has_default(
            "{% if env.X is defined %}{{ env.X }}{% endif %}",
            "X"
        ));
        assert!(!has_default("{{ env.HOME }}", "HOME"));
        assert!(!has_default(
            "{{ env.HOME | default('/') }} {{ env.HOME }}",
            "HOME"
        ));
        assert!(has_default("{{ env.HOMEDIR | d('x') }}", "HOMEDIR"));
    }
}
