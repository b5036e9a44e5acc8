//! The data templates see (`vars`, `env`, `drill`, `steps`, `secrets`) and the rendering
//! of a step's fields just before it runs.

use minijinja::Value as Jinja;
use serde_json::{Map, Value};

use crate::playbook::{NATIVE_FIELDS, NOT_TEMPLATED, Step};
use crate::template;

#[derive(Debug, Clone, Default)]
pub struct Context {
    pub root: Map<String, Value>,
}

impl Context {
    pub fn set(&mut self, key: &str, value: Value) {
        self.root.insert(key.to_string(), value);
    }

    pub fn jinja(&self) -> Jinja {
        Jinja::from_serialize(&self.root)
    }

    pub fn set_var(&mut self, name: &str, value: Value) {
        if let Some(Value::Object(vars)) = self.root.get_mut("vars") {
            vars.insert(name.to_string(), value);
        }
    }

    pub fn set_step(&mut self, id: &str, value: Value) {
        if let Some(Value::Object(steps)) = self.root.get_mut("steps") {
            steps.insert(id.to_string(), value);
        }
    }

    /// Renders every templated string of `step`; errors name the field.
    pub fn render_step(&self, step: &Step) -> Result<Step, String> {
        let ctx = self.jinja();
        let mut value = serde_json::to_value(step).map_err(|e| e.to_string())?;
        render_value(&mut value, &ctx, &mut String::new())?;
        serde_json::from_value(value).map_err(|e| format!("after rendering: {e}"))
    }

    /// One field of a step rendered on its own; None when it cannot be.
    pub fn render_field(&self, key: &str, value: &Value) -> Option<Value> {
        let mut value = value.clone();
        let mut path = key.to_string();
        render_value(&mut value, &self.jinja(), &mut path).ok()?;
        Some(value)
    }

    /// Evaluates a `when` expression (or any boolean expression) for truth.
    pub fn truthy(&self, expr: &str) -> Result<bool, String> {
        template::eval(expr, &self.jinja())
            .map(|v| v.is_true())
            .map_err(|e| template::describe_in(expr, true, &e))
    }
}

fn render_value(value: &mut Value, ctx: &Jinja, path: &mut String) -> Result<(), String> {
    match value {
        Value::String(src) => {
            let field = last_key(path);
            if NOT_TEMPLATED.contains(&field) || !template::has_template_syntax(src) {
                return Ok(());
            }
            let native = NATIVE_FIELDS.contains(&field);
            *value = template::render_value(src, ctx, native).map_err(|e| {
                format!("field `{path}`: {}", template::describe_in(src, false, &e))
            })?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                render_value(item, ctx, path)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                render_value(item, ctx, path)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// `checks[0].compare_to` → `compare_to`.
fn last_key(path: &str) -> &str {
    let tail = path.rsplit('.').next().unwrap_or(path);
    tail.split('[').next().unwrap_or(tail)
}

/// The process environment as the `env` of templates.
pub fn env_value() -> Value {
    Value::Object(
        std::env::vars()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}
