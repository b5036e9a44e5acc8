//! Bounds on templates, so that an absurd one fails with a clear error instead of
//! overflowing the stack, eating the memory or running for ever.
//!
//! - Before minijinja parses a template or expression, [`check_source`] counts the
//!   operators of each `{{ }}` / `{% %}` block and the `elif`s of the template: minijinja's
//!   parser and compiler recurse once per operator of a chain (`not not …`, `1 + 1 + …`,
//!   `a.b.c…`, `x|f|f…`, `elif …`) and would overflow the stack long before the input is
//!   large.
//! - While a template runs, minijinja's fuel bounds the instructions (loops, macros), and a
//!   per-render budget bounds the work done outside instructions: the items and bytes that
//!   printing a value, or a filter that walks a sequence (`join`, `list`, `sort`, ...),
//!   goes through. `[1] * 100000000000` is a lazy sequence that only costs something when
//!   it is walked; the walk is charged before it happens.
//!
//! Templates are code that the playbook's author runs: these are bounds against runaway
//! templates, not a sandbox.

use std::cell::Cell;
use std::time::Duration;

use minijinja::value::Rest;
use minijinja::{Environment, Error, ErrorKind, Output, State, Value};

/// Operators one `{{ }}` or `{% %}` block (or one expression) may hold.
pub const MAX_OPERATORS: usize = 200;
/// `elif` branches one template may hold (each nests one level deeper).
pub const MAX_ELIFS: usize = 200;
/// What one render may spend.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Instructions (minijinja fuel).
    pub fuel: u64,
    /// Items (elements, keys, scalars) printed or handed to walking filters.
    pub items: u64,
    /// Bytes printed.
    pub bytes: u64,
    /// Time, after which the render is abandoned.
    pub time: Duration,
}

/// A field, a var, a `when`, a gate's `check`.
pub const FIELD: Budget = Budget {
    fuel: 1_000_000,
    items: 1_000_000,
    bytes: 64 << 20,
    time: Duration::from_secs(5),
};

/// A report, whose data grows with the drill (steps, checks, gates).
pub const REPORT: Budget = Budget {
    fuel: 50_000_000,
    items: 50_000_000,
    bytes: 512 << 20,
    time: Duration::from_secs(120),
};

/// Nesting one printed or filtered value may have.
const MAX_DEPTH: usize = 200;

fn too_complex(what: String) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("template too complex: {what}; split it up"),
    )
}

/// Refuses a template (or, with `is_expression`, an expression) that minijinja could not
/// parse within a sane stack depth.
pub fn check_source(src: &str, is_expression: bool) -> Result<(), Error> {
    if is_expression {
        let ops = count_operators(src.as_bytes(), 0).0;
        return match ops > MAX_OPERATORS {
            true => Err(too_complex(format!(
                "the expression has more than {MAX_OPERATORS} operators"
            ))),
            false => Ok(()),
        };
    }
    let bytes = src.as_bytes();
    let mut elifs = 0;
    let mut i = 0;
    while let Some(open) = find(bytes, i, b"{") {
        let kind = bytes.get(open + 1).copied();
        let close: &[u8] = match kind {
            Some(b'{') => b"}}",
            Some(b'%') => b"%}",
            Some(b'#') => {
                i = find(bytes, open + 2, b"#}").map_or(bytes.len(), |c| c + 2);
                continue;
            }
            _ => {
                i = open + 1;
                continue;
            }
        };
        let (ops, end) = count_operators(bytes, open + 2);
        let block = &bytes[open + 2..end.min(bytes.len())];
        let line = 1 + bytes[..open].iter().filter(|&&b| b == b'\n').count();
        if ops > MAX_OPERATORS {
            return Err(too_complex(format!(
                "a block on template line {line} has more than {MAX_OPERATORS} operators"
            )));
        }
        let closing = end + close.len();
        if kind == Some(b'%') {
            match first_word(block) {
                b"elif" => {
                    elifs += 1;
                    if elifs > MAX_ELIFS {
                        return Err(too_complex(format!(
                            "more than {MAX_ELIFS} `elif` branches"
                        )));
                    }
                }
                // Nothing is parsed until `{% endraw %}`.
                b"raw" => {
                    i = end_of_raw(bytes, closing);
                    continue;
                }
                _ => {}
            }
        }
        i = closing;
    }
    Ok(())
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The first word of a block, past whitespace control (`{%- raw %}`).
fn first_word(block: &[u8]) -> &[u8] {
    let start = block
        .iter()
        .position(|b| !matches!(b, b'-' | b'+' | b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(block.len());
    let rest = &block[start..];
    let end = rest
        .iter()
        .position(|b| !b.is_ascii_alphanumeric() && *b != b'_')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Where scanning resumes after a `{% raw %}` block: past its `{% endraw %}`.
fn end_of_raw(bytes: &[u8], mut i: usize) -> usize {
    while let Some(open) = find(bytes, i, b"{%") {
        let (_, end) = count_operators(bytes, open + 2);
        if first_word(&bytes[open + 2..end.min(bytes.len())]) == b"endraw" {
            return end + 2;
        }
        i = open + 2;
    }
    bytes.len()
}

/// Counts the operators from `start` to the end of the block (`}}` or `%}` outside a string
/// literal, or the end of the text); returns the count and where the block ends.
/// Over-counts rather than under-counts: `<=` is two, a `-` of whitespace control is one.
fn count_operators(bytes: &[u8], start: usize) -> (usize, usize) {
    let mut ops = 0;
    let mut i = start;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'}' | b'%' if bytes.get(i + 1) == Some(&b'}') => return (ops, i),
            b'\'' | b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'~' | b'|' | b'.' | b'[' | b'(' | b'<' | b'>'
            | b'=' | b'!' => ops += 1,
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let end = bytes[i..]
                    .iter()
                    .position(|c| !c.is_ascii_alphanumeric() && *c != b'_')
                    .map_or(bytes.len(), |p| p + i);
                if matches!(
                    &bytes[i..end],
                    b"not" | b"and" | b"or" | b"in" | b"is" | b"if" | b"else"
                ) {
                    ops += 1;
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    (ops, bytes.len())
}

thread_local! {
    /// What the current render may still spend (items, bytes), out of which budget.
    static BUDGET: Cell<(u64, u64, Budget)> =
        const { Cell::new((FIELD.items, FIELD.bytes, FIELD)) };
}

/// Starts the budget of one render (or evaluation) on this thread.
pub fn start_budget(budget: Budget) {
    BUDGET.with(|b| b.set((budget.items, budget.bytes, budget)));
}

/// Charges walking `value` (its items, nested values and string bytes) to the render's
/// budget, and refuses it when the budget does not cover it. Stops counting as soon as
/// the budget is exceeded, so charging a huge lazy sequence costs no more than the budget.
pub fn charge(value: &Value) -> Result<(), Error> {
    BUDGET.with(|cell| {
        let (mut items, mut bytes, budget) = cell.get();
        let mut left = Left {
            items: &mut items,
            bytes: &mut bytes,
            budget,
        };
        let result = walk(value, &mut left);
        cell.set((items, bytes, budget));
        result
    })
}

/// What is left of a render's budget, while a value is walked.
struct Left<'a> {
    items: &'a mut u64,
    bytes: &'a mut u64,
    budget: Budget,
}

fn over_budget(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("template does too much work: {what}"),
    )
}

fn walk(value: &Value, left: &mut Left<'_>) -> Result<(), Error> {
    // Depth first with an explicit stack of iterators: values can nest deeper than the
    // thread's stack could recurse, and the memory used stays proportional to the depth.
    let mut stack: Vec<(Value, minijinja::value::ValueIter)> = Vec::new();
    let mut next = Some(value.clone());
    loop {
        if let Some(v) = next.take() {
            visit(&v, left)?;
            if v.as_object().is_some()
                && v.as_str().is_none()
                && let Ok(iter) = v.try_iter()
            {
                if stack.len() >= MAX_DEPTH {
                    return Err(over_budget(&format!(
                        "a value nests more than {MAX_DEPTH} levels deep"
                    )));
                }
                stack.push((v, iter));
            }
        }
        let Some((parent, iter)) = stack.last_mut() else {
            return Ok(());
        };
        match iter.next() {
            // A map's keys are walked, and so are their values.
            Some(key) if parent.kind() == minijinja::value::ValueKind::Map => {
                visit(&key, left)?;
                next = parent.get_item(&key).ok();
            }
            Some(item) => next = Some(item),
            None => {
                stack.pop();
            }
        }
    }
}

/// Charges one value (not its items); a sized sequence larger than what is left of the
/// budget is refused before it is walked.
fn visit(v: &Value, left: &mut Left<'_>) -> Result<(), Error> {
    let Budget { items, bytes, .. } = left.budget;
    *left.items = left
        .items
        .checked_sub(1)
        .ok_or_else(|| over_budget(&format!("more than {items} items")))?;
    if let Some(s) = v.as_str() {
        *left.bytes = left
            .bytes
            .checked_sub(s.len() as u64)
            .ok_or_else(|| over_budget(&format!("more than {} MiB of text", bytes >> 20)))?;
    } else if v.as_object().is_some()
        && let Some(n) = v.len()
        && n as u64 > *left.items
    {
        return Err(over_budget(&format!(
            "a sequence of {n} items (the limit is {items})"
        )));
    }
    Ok(())
}

/// Installs the bounds in the environment: fuel, a printing formatter that charges what it
/// prints, and walking filters that charge what they walk.
pub fn install(env: &mut Environment<'_>, budget: Budget) {
    env.set_fuel(Some(budget.fuel));
    env.set_formatter(|out: &mut Output, state: &State, value: &Value| {
        charge(value)?;
        minijinja::escape_formatter(out, state, value)
    });
    for (name, original) in walking_filters() {
        env.add_filter(name, move |state: &State, args: Rest<Value>| {
            for arg in args.iter() {
                charge(arg)?;
            }
            original.call(state, &args)
        });
    }
}

/// Builtin filters that walk their input (its items, nested values or text) before they
/// return, as values that can be called.
fn walking_filters() -> Vec<(&'static str, Value)> {
    use minijinja::filters as f;
    vec![
        ("join", Value::from_function(f::join)),
        ("list", Value::from_function(f::list)),
        ("sum", Value::from_function(f::sum)),
        ("sort", Value::from_function(f::sort)),
        ("unique", Value::from_function(f::unique)),
        ("reverse", Value::from_function(f::reverse)),
        ("last", Value::from_function(f::last)),
        ("max", Value::from_function(f::max)),
        ("min", Value::from_function(f::min)),
        ("items", Value::from_function(f::items)),
        ("dictsort", Value::from_function(f::dictsort)),
        ("tojson", Value::from_function(f::tojson)),
        ("pprint", Value::from_function(f::pprint)),
        ("string", Value::from_function(f::string)),
        ("batch", Value::from_function(f::batch)),
        ("slice", Value::from_function(f::slice)),
        ("groupby", Value::from_function(f::groupby)),
        ("map", Value::from_function(f::map)),
        ("select", Value::from_function(f::select)),
        ("reject", Value::from_function(f::reject)),
        ("selectattr", Value::from_function(f::selectattr)),
        ("rejectattr", Value::from_function(f::rejectattr)),
        ("chain", Value::from_function(f::chain)),
        ("zip", Value::from_function(f::zip)),
        ("lines", Value::from_function(f::lines)),
        ("indent", Value::from_function(f::indent)),
        ("format", Value::from_function(f::format)),
        ("replace", Value::from_function(f::replace)),
        ("trim", Value::from_function(f::trim)),
        ("upper", Value::from_function(f::upper)),
        ("lower", Value::from_function(f::lower)),
        ("title", Value::from_function(f::title)),
        ("capitalize", Value::from_function(f::capitalize)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_operator_chains_are_refused() {
        let nots = format!("{}false", "not ".repeat(MAX_OPERATORS + 1));
        assert!(check_source(&nots, true).is_err());
        assert!(check_source(&format!("{{{{ {nots} }}}}"), false).is_err());
        let ok = format!("{}false", "not ".repeat(MAX_OPERATORS));
        assert!(check_source(&ok, true).is_ok());
        let plus = format!("{{{{ {}1 }}}}", "1 + ".repeat(20_000));
        let err = check_source(&plus, false).unwrap_err();
        assert!(err.to_string().contains("template too complex"), "{err}");
    }

    #[test]
    fn operators_in_strings_and_text_do_not_count() {
        let text = format!(
            "{} {{{{ 'a.b.c' ~ \"{}\" }}}}",
            "- ".repeat(5000),
            "+".repeat(5000)
        );
        assert!(check_source(&text, false).is_ok());
        let raw = format!("{{% raw %}}{{{{ {} }}}}{{% endraw %}}", "+".repeat(5000));
        assert!(check_source(&raw, false).is_ok());
        let comment = format!("{{# {} #}}", "+".repeat(5000));
        assert!(check_source(&comment, false).is_ok());
    }

    #[test]
    fn elif_chains_are_bounded() {
        let chain = |n| format!("{{% if a %}}{}{{% endif %}}", "{% elif a %}x".repeat(n));
        assert!(check_source(&chain(MAX_ELIFS), false).is_ok());
        assert!(check_source(&chain(MAX_ELIFS + 1), false).is_err());
    }

    #[test]
    fn guarded_filters_keep_their_arguments() {
        let mut env = Environment::new();
        install(&mut env, FIELD);
        let ctx = minijinja::context! { rows => vec![
            minijinja::context! { a => 2, b => "x" },
            minijinja::context! { a => 1, b => "y" },
        ] };
        let render = |src: &str| {
            start_budget(FIELD);
            env.render_str(src, &ctx).unwrap()
        };
        assert_eq!(
            render("{{ [3, 1, 2] | sort(reverse=true) | join(',') }}"),
            "3,2,1"
        );
        assert_eq!(
            render("{{ rows | sort(attribute='a') | map(attribute='b') | join }}"),
            "yx"
        );
        assert_eq!(
            render("{{ rows | selectattr('a', 'equalto', 1) | list | length }}"),
            "1"
        );
        assert_eq!(
            render("{{ {'b': 1, 'a': 2} | dictsort(by='value') | first | first }}"),
            "b"
        );
        assert_eq!(
            render("{{ [1, 2] | tojson(indent=2) | length > 5 }}"),
            "True"
        );
        assert_eq!(render("{{ '%s-%s' | format(1, 2) }}"), "1-2");
        let err = {
            start_budget(FIELD);
            env.render_str("{{ ([1] * 100000000000) | join }}", &ctx)
                .unwrap_err()
        };
        assert!(err.to_string().contains("too much work"), "{err}");
    }

    #[test]
    fn the_builtin_reports_pass() {
        for src in [
            include_str!("../../templates/report.md.j2"),
            include_str!("../../templates/report.html.j2"),
        ] {
            check_source(src, false).unwrap();
        }
    }
}
