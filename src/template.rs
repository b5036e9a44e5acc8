//! The one minijinja environment: strict about undefined names, with a few helpers.
//!
//! Every string of a step is a template. A string that is exactly one `{{ expression }}`
//! renders to the expression's native value for the fields that want data rather than
//! text (`compare_to`, `expect`, ...), so `compare_to = "{{ steps.backup.table_counts }}"`
//! yields a map, not its printed form.

mod guard;
mod worker;

use std::collections::BTreeSet;
use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior, Value};

pub use guard::{Budget, FIELD, MAX_ELIFS, MAX_OPERATORS, REPORT};

/// Top-level names a step template may use.
pub const STEP_ROOTS: &[&str] = &["vars", "env", "drill", "steps", "secrets"];
/// Functions registered in the environment (and minijinja's own globals).
const FUNCTIONS: &[&str] = &[
    "path_exists",
    "now",
    "free_port",
    "range",
    "dict",
    "namespace",
    "lipsum",
    "cycler",
    "joiner",
    "debug",
];
/// What `drill.<x>` offers.
pub const DRILL_FIELDS: &[&str] = &[
    "name",
    "title",
    "run_id",
    "ts",
    "workdir",
    "artifacts_dir",
    "playbook_dir",
    "mode",
];

/// The environment of playbook templates (fields, vars, `when`, gates).
pub fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| guarded(FIELD))
}

/// The same environment with a report's budget (its data grows with the drill).
fn report_environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| guarded(REPORT))
}

/// A configured environment whose templates stay within `budget`.
fn guarded(budget: Budget) -> Environment<'static> {
    let mut env = Environment::new();
    configure(&mut env);
    guard::install(&mut env, budget);
    env
}

fn configure(env: &mut Environment<'_>) {
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_function("path_exists", |path: String| {
        std::path::Path::new(&path).exists()
    });
    env.add_function("now", || jiff::Timestamp::now().to_string());
    env.add_function("free_port", free_port);
    env.add_filter("bytes", crate::fmt::human_bytes);
    env.add_filter("secs", crate::fmt::fmt_secs);
    env.add_filter("mark", status_mark);
}

/// A TCP port on 127.0.0.1 that is free right now, for a service the drill starts. The
/// port is released before the service binds it, so use it once, in a var (vars render
/// once, so every step then sees the same port).
fn free_port() -> Result<u16, minijinja::Error> {
    crate::proc::free_port().map_err(|e| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("no free port: {e}"),
        )
    })
}

/// `passed` → ✅ and so on, for reports.
pub fn status_mark(status: String) -> &'static str {
    match status.as_str() {
        "passed" => "✅",
        "failed" | "timed_out" | "error" => "❌",
        "aborted" => "⛔",
        "skipped" => "⏭️",
        "not_evaluated" | "not_run" => "⚪",
        _ => "…",
    }
}

pub fn has_template_syntax(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// The inner expression when `s` is exactly one `{{ ... }}` and nothing else.
pub fn single_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}")).then_some(inner.trim())
}

pub fn render(src: &str, ctx: &Value) -> Result<String, minijinja::Error> {
    if !has_template_syntax(src) {
        return Ok(src.to_string());
    }
    render_bounded(environment(), FIELD, "<string>", src, ctx.clone())
}

/// Renders a report template over `data` (the record), with a report's budget.
pub fn render_report<S: serde::Serialize>(
    name: &str,
    src: &str,
    data: S,
) -> Result<String, minijinja::Error> {
    let data = Value::from_serialize(&data);
    render_bounded(report_environment(), REPORT, name, src, data)
}

/// Renders a template within the bounds of `guard`, on the template worker.
fn render_bounded(
    env: &'static Environment<'static>,
    budget: Budget,
    name: &str,
    src: &str,
    ctx: Value,
) -> Result<String, minijinja::Error> {
    guard::check_source(src, false)?;
    let (name, src) = (name.to_string(), src.to_string());
    worker::run(budget.time, move || {
        guard::start_budget(budget);
        let template = env.template_from_named_str(&name, &src)?;
        let mut out = Capped {
            bytes: Vec::new(),
            limit: budget.bytes,
            full: false,
        };
        match template.render_captured_to(ctx, &mut out) {
            Ok(_) => String::from_utf8(out.bytes).map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::BadSerialization, e.to_string())
            }),
            Err(_) if out.full => Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!(
                    "template does too much work: it renders more than {} MiB",
                    budget.bytes >> 20
                ),
            )),
            Err(e) => Err(e),
        }
    })?
}

/// Output that refuses to grow past `limit`.
struct Capped {
    bytes: Vec<u8>,
    limit: u64,
    full: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if (self.bytes.len() + buf.len()) as u64 > self.limit {
            self.full = true;
            return Err(std::io::Error::other("the rendered text is too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn eval(expr: &str, ctx: &Value) -> Result<Value, minijinja::Error> {
    guard::check_source(expr, true)?;
    let (expr, ctx) = (expr.to_string(), ctx.clone());
    worker::run(FIELD.time, move || eval_here(&expr, &ctx))?
}

/// `eval` on the current thread (the worker), its source already checked.
fn eval_here(expr: &str, ctx: &Value) -> Result<Value, minijinja::Error> {
    guard::start_budget(FIELD);
    let value = environment().compile_expression(expr)?.eval(ctx)?;
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            format!("`{expr}` is undefined"),
        ));
    }
    Ok(value)
}

/// Renders a string field; with `native`, a lone `{{ expr }}` keeps the value's type.
pub fn render_value(
    src: &str,
    ctx: &Value,
    native: bool,
) -> Result<serde_json::Value, minijinja::Error> {
    if native && let Some(expr) = single_expression(src) {
        guard::check_source(expr, true)?;
        let (expr, ctx) = (expr.to_string(), ctx.clone());
        return worker::run(FIELD.time, move || {
            let value = eval_here(&expr, &ctx)?;
            // Converting walks the whole value: charge it first (`[1] * 10**11` costs
            // nothing until it is walked).
            guard::charge(&value)?;
            serde_json::to_value(&value).map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::BadSerialization, e.to_string())
            })
        })?;
    }
    render(src, ctx).map(serde_json::Value::String)
}

/// The dotted names (`steps.backup.path`) a template or expression reads but does not define.
pub fn referenced_names(src: &str, is_expression: bool) -> Result<BTreeSet<String>, String> {
    guard::check_source(src, is_expression).map_err(|e| describe(&e))?;
    let src = src.to_string();
    let names = worker::run(FIELD.time, move || {
        let env = environment();
        let names = if is_expression {
            env.compile_expression(&src)?.undeclared_variables(true)
        } else {
            env.template_from_str(&src)?.undeclared_variables(true)
        };
        Ok::<_, minijinja::Error>(names)
    })
    .and_then(|r| r)
    .map_err(|e| describe(&e))?;
    Ok(names
        .into_iter()
        .filter(|n| !FUNCTIONS.contains(&n.as_str()))
        .collect())
}

/// [`describe`], naming the environment variables `src` reads that are not set: an
/// unset `env.X` is what an undefined value usually is.
pub fn describe_in(src: &str, is_expression: bool, err: &minijinja::Error) -> String {
    let message = describe_at(src, err);
    if err.kind() != minijinja::ErrorKind::UndefinedError {
        return message;
    }
    let unset: Vec<String> = referenced_names(src, is_expression)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.strip_prefix("env.")?.split('.').next())
        .filter(|var| std::env::var_os(var).is_none())
        .map(str::to_string)
        .collect();
    match unset.as_slice() {
        [] => message,
        [var] => format!("environment variable `{var}` is not set ({message})"),
        vars => format!(
            "environment variables `{}` are not set ({message})",
            vars.join("`, `")
        ),
    }
}

/// [`describe`], quoting the part of `src` it failed at (`undefined value` alone names
/// nothing: `at `steps.restore.taget``).
pub fn describe_at(src: &str, err: &minijinja::Error) -> String {
    let message = describe(err);
    // minijinja's range of an attribute lookup starts at its `.`: the name it is looked
    // up on comes first.
    let named = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    let quoted = err
        .range()
        .filter(|r| src.is_char_boundary(r.start))
        .map(|r| src[..r.start].trim_end_matches(named).len()..r.end)
        .and_then(|r| src.get(r))
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty() && s.len() <= 200);
    match quoted {
        Some(s) => format!("{message}, at `{s}`"),
        None => message,
    }
}

/// A one-line description of a minijinja error, without its debug dump.
pub fn describe(err: &minijinja::Error) -> String {
    let mut msg = match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None if err.kind() == minijinja::ErrorKind::OutOfFuel => {
            "template does too much work: it ran out of fuel (its limit of instructions)".into()
        }
        None => err.kind().to_string(),
    };
    if let Some(line) = err.line()
        && line > 1
    {
        msg.push_str(&format!(" (template line {line})"));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An undefined value is named by the expression it failed at, not "undefined value"
    /// alone (a report template's typo named nothing).
    #[test]
    fn an_undefined_value_is_named_by_its_expression() {
        let src = "# {{ drill }}\n{{ steps.restore.taget }} rows";
        let data = serde_json::json!({"drill": "d", "steps": {"restore": {"target": "x"}}});
        let err = render_report("t.md.j2", src, &data).unwrap_err();
        let said = describe_at(src, &err);
        assert!(said.starts_with("undefined value"), "{said}");
        assert!(said.ends_with(", at `steps.restore.taget`"), "{said}");
    }

    #[test]
    fn lone_expression_keeps_its_type() {
        let ctx = Value::from_serialize(serde_json::json!({"steps": {"b": {"counts": {"t": 3}}}}));
        let v = render_value("{{ steps.b.counts }}", &ctx, true).unwrap();
        assert_eq!(v, serde_json::json!({"t": 3}));
        let v = render_value("{{ steps.b.counts.t }} rows", &ctx, true).unwrap();
        assert_eq!(v, serde_json::json!("3 rows"));
    }

    #[test]
    fn free_port_gives_a_bindable_port() {
        let ctx = Value::from_serialize(serde_json::json!({}));
        let port: u16 = render("{{ free_port() }}", &ctx).unwrap().parse().unwrap();
        assert!(port > 0);
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
    }

    #[test]
    fn undefined_names_are_errors() {
        let ctx = Value::from_serialize(serde_json::json!({"vars": {}}));
        assert!(render("{{ vars.missing }}", &ctx).is_err());
        assert!(eval("vars.missing", &ctx).is_err());
    }

    #[test]
    fn finds_referenced_step_outputs() {
        let names = referenced_names("{{ steps.backup.path }}/x {{ vars.a }}", false).unwrap();
        assert!(names.contains("steps.backup.path"), "{names:?}");
        assert!(names.contains("vars.a"), "{names:?}");
    }
}
