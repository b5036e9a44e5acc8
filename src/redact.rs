//! Secrets out of everything a person, a file or a cron mail sees.
//!
//! One `Redactor` holds the values of the playbook's `[secrets]`. The runner scrubs its
//! record with it before every event, so the progress lines, the end summary, the JSON
//! record and every report only ever see `***`; the log and the walkthrough prompts
//! redact their text with the same one.
//!
//! A secret is found as given, with JSON or Rust string escapes (how a value is quoted
//! in a check's detail), without surrounding whitespace, and percent-encoded in any mix
//! (`p%40ss`, `p%40ss%2fw`, `%70@ss`, `+` for a space): how a password sits in a
//! connection url; in any case; as other JSON encoders quote it (`\u00eb`, Go's
//! `\u0026`, PHP's `\/`) and as a web page does (`&amp;`); base64-encoded with what
//! surrounds it (a `Basic` header); line by line (a key file); and in pieces beside a cut
//! marked `…`.

use std::borrow::Cow;
use std::sync::{PoisonError, RwLock};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Replaces every secret value with `***` wherever it appears. Shared (in an `Arc`) by
/// the log, the record's observers and the runner, which adds the credentials of each
/// step as it renders them: each sees them from then on.
#[derive(Debug, Default)]
pub struct Redactor {
    forms: RwLock<Forms>,
}

impl Redactor {
    pub fn add(&self, secret: &str) {
        let mut forms = self.forms.write().unwrap_or_else(PoisonError::into_inner);
        forms.add(secret);
    }

    pub fn is_empty(&self) -> bool {
        let forms = self.forms.read().unwrap_or_else(PoisonError::into_inner);
        forms.literal.is_empty()
    }

    /// `text` itself when it holds no secret (the common case costs no copy).
    pub fn redact_cow<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let forms = self.forms.read().unwrap_or_else(PoisonError::into_inner);
        forms.redact_cow(text)
    }
}

/// The spellings of every secret, the text the redactor looks for.
#[derive(Debug, Default)]
struct Forms {
    /// The literal forms of every secret, longest first.
    literal: Vec<String>,
    /// The secrets as given, longest first, for the percent-encoded search.
    raw: Vec<Vec<u8>>,
    /// Their base64 spellings, longest first (see [`base64_forms`]).
    encoded: Vec<String>,
    /// `literal` lowered, for a case-blind search that copies nothing when it finds none.
    lowered: Vec<String>,
}

impl Forms {
    fn add(&mut self, secret: &str) {
        // Very short values would redact unrelated text; they are not worth hiding.
        if secret.trim().len() < 3 {
            return;
        }
        // Output reaches the log and the record line by line: each line of a key file
        // (a minisign or age key, a PEM) is hidden on its own.
        if secret.trim().contains('\n') {
            for line in secret.lines() {
                self.add(line);
            }
        }
        let escaped = |s: String| s[1..s.len() - 1].to_string();
        let forms = [
            secret.to_string(),
            secret.trim().to_string(),
            escaped(serde_json::to_string(secret).unwrap_or_default()),
            escaped(format!("{secret:?}")),
            // Python's `json.dumps`, Go's `encoding/json`, PHP's `json_encode`.
            json_escaping(secret, |c| !c.is_ascii()),
            json_escaping(secret, |c| "<>&\u{2028}\u{2029}".contains(c)),
            json_escaping(secret, |c| !c.is_ascii() || c == '/'),
            html_escaped(secret),
        ];
        for form in forms {
            if form.len() >= 3 && !self.literal.contains(&form) {
                self.literal.push(form);
            }
        }
        for form in base64_forms(secret) {
            if !self.encoded.contains(&form) {
                self.encoded.push(form);
            }
        }
        for form in [secret, secret.trim()] {
            let form = form.as_bytes().to_vec();
            if !self.raw.contains(&form) {
                self.raw.push(form);
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        self.literal.sort_by_key(|s| std::cmp::Reverse(s.len()));
        self.raw.sort_by_key(|s| std::cmp::Reverse(s.len()));
        self.encoded.sort_by_key(|s| std::cmp::Reverse(s.len()));
        self.lowered = self
            .literal
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
    }

    fn redact_cow<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = mask_url_passwords(text);
        // A tool may change a secret's case (`tr a-z A-Z`, an upper-cased error message).
        // The text is lowered once (again only after a replacement), and not at all
        // without secrets: every line of every step's output passes here.
        if !self.lowered.is_empty() {
            let mut text_lowered = out.to_ascii_lowercase();
            for lowered in &self.lowered {
                if let Some(replaced) = replace_ignoring_case(&out, &text_lowered, lowered) {
                    out = Cow::Owned(replaced);
                    text_lowered = out.to_ascii_lowercase();
                }
            }
        }
        // Base64 tells cases apart: another case is another text.
        for secret in &self.encoded {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), MASK));
            }
        }
        if out.contains('%') || out.contains('+') {
            for secret in &self.raw {
                if let Some(replaced) = replace_encoded(&out, secret) {
                    out = Cow::Owned(replaced);
                }
            }
        }
        if let Some(masked) = self.mask_cut_pieces(&out) {
            out = Cow::Owned(masked);
        }
        out
    }

    /// `text` with the piece of a secret that a cut marked `…` left on either side of it
    /// replaced: a body or a message shortened before it was redacted (`p@s…`), a long
    /// line or a tail cut in the middle of one (`…ss/w`). None when there is none.
    fn mask_cut_pieces(&self, text: &str) -> Option<String> {
        if !text.contains(CUT) {
            return None;
        }
        let mut masked = false;
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find(CUT) {
            let before = &rest[..at];
            let head = self.literal.iter().map(|s| cut_head(before, s)).max();
            out.push_str(&before[..before.len() - head.unwrap_or(0)]);
            if head.unwrap_or(0) > 0 {
                out.push_str(MASK);
                masked = true;
            }
            out.push_str(CUT);
            rest = &rest[at + CUT.len()..];
            let tail = self.literal.iter().map(|s| cut_tail(rest, s)).max();
            if let Some(tail) = tail.filter(|n| *n > 0) {
                out.push_str(MASK);
                rest = &rest[tail..];
                masked = true;
            }
        }
        out.push_str(rest);
        masked.then_some(out)
    }
}

impl Redactor {
    pub fn redact(&self, text: &str) -> String {
        self.redact_cow(text).into_owned()
    }

    /// Redacts every string (and map key) in `value`; true when something was replaced.
    pub fn redact_value(&self, value: &mut Value) -> bool {
        match value {
            Value::String(s) => match self.redact_cow(s) {
                Cow::Borrowed(_) => false,
                Cow::Owned(r) => {
                    *s = r;
                    true
                }
            },
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |changed, v| self.redact_value(v) | changed),
            Value::Object(map) => {
                let keys_leak = map
                    .keys()
                    .any(|k| matches!(self.redact_cow(k), Cow::Owned(_)));
                if keys_leak {
                    *map = std::mem::take(map)
                        .into_iter()
                        .map(|(k, v)| (self.redact(&k), v))
                        .collect::<Map<_, _>>();
                }
                map.values_mut()
                    .fold(keys_leak, |changed, v| self.redact_value(v) | changed)
            }
            _ => false,
        }
    }

    /// Replaces every secret in `item` itself (whatever its fields: it goes through its
    /// serde form) and returns that form, redacted.
    pub fn scrub<T: Serialize + DeserializeOwned>(
        &self,
        item: &mut T,
    ) -> serde_json::Result<Value> {
        let mut value = serde_json::to_value(&*item)?;
        if self.redact_value(&mut value) {
            *item = T::deserialize(&value)?;
        }
        Ok(value)
    }
}

/// `text` with the password of every url's userinfo (`scheme://user:password@host`)
/// replaced by `***`, whether or not it came from `[secrets]`: a connection url's
/// password is a secret wherever it was written (`--var`, a literal, a tool's output).
pub fn mask_url_passwords(text: &str) -> Cow<'_, str> {
    replace_url_passwords(text, |_| MASK.into())
}

/// `text` with the password of every url's userinfo replaced by what `by` makes of it,
/// and the value of every query parameter named as a credential (`?token=`, `&auth=`,
/// `X-Amz-Credential=`: see [`is_secret_name`]).
pub fn replace_url_passwords(text: &str, by: impl Fn(&str) -> String) -> Cow<'_, str> {
    let ends = |c: char, more: &str| c.is_whitespace() || more.contains(c);
    let mut found: Vec<(usize, usize)> = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("://") {
        let start = from + at + 3;
        let len = text[start..]
            .find(|c| ends(c, "/?#\"'`<>"))
            .unwrap_or(text.len() - start);
        let authority = &text[start..start + len];
        from = start + len;
        let userinfo = authority.rfind('@').map(|at| &authority[..at]);
        if let Some(colon) = userinfo.and_then(|u| u.find(':')) {
            let password = &userinfo.unwrap_or_default()[colon + 1..];
            if !password.is_empty() && password != MASK {
                found.push((start + colon + 1, start + colon + 1 + password.len()));
            }
        }
        let url_end = from
            + text[from..]
                .find(|c| ends(c, "#\"'`<>"))
                .unwrap_or(text.len() - from);
        let Some(query) = text[from..url_end].find('?').map(|q| from + q + 1) else {
            continue;
        };
        let mut at = query;
        for param in text[query..url_end].split('&') {
            if let Some((name, value)) = param.split_once('=')
                && is_secret_name(name)
                && !value.is_empty()
                && value != MASK
            {
                let value_at = at + name.len() + 1;
                found.push((value_at, value_at + value.len()));
            }
            at += param.len() + 1;
        }
    }
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    found.sort_unstable();
    let mut out = String::new();
    let mut copied = 0;
    for (start, end) in found {
        // A url inside another's query: its range is within one already replaced.
        if start < copied {
            continue;
        }
        out.push_str(&text[copied..start]);
        out.push_str(&by(&text[start..end]));
        copied = end;
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Parts of a field's name that say its value is a credential wherever they stand in it
/// (`PGPASSWORD`, `secret_key`, `X-Auth-Token`, `X-Amz-Credential`), compared in
/// lowercase.
const SECRET_PARTS: [&str; 14] = [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "signature",
    "cookie",
    "authorization",
    "apikey",
    "api_key",
    "api-key",
    "access_key",
    "private_key",
];

/// Words that say so only as a whole word of the name (split at `_`, `-`, `.` and the
/// like): `MYSQL_PWD`, `auth`, `age_identity`, `X-Amz-Signature`'s `sig=`; not `passed`,
/// `author` or `bypass`.
const SECRET_WORDS: [&str; 6] = ["pass", "pwd", "auth", "private", "identity", "sig"];

/// Whether a field named `name` holds a credential: its value, written in the playbook
/// (a literal, an `env`, a `--var`), is not shown (a `{{ secrets.NAME }}` is masked anyway).
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARTS.iter().any(|part| name.contains(part))
        || name
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| SECRET_WORDS.contains(&word))
}

/// The value of every string field of `value` (at any depth) whose name holds a
/// credential (see [`is_secret_name`]) replaced by `***`, unless it is `keep` (a
/// placeholder that shows nothing) or empty.
pub fn mask_secret_fields(value: &mut Value, keep: &str) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                match field {
                    Value::String(s) if is_secret_name(key) && !s.is_empty() && s != keep => {
                        *s = MASK.into();
                    }
                    other => mask_secret_fields(other, keep),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| mask_secret_fields(v, keep)),
        _ => {}
    }
}

/// The value of every string field of `value` (at any depth) whose name holds a
/// credential (see [`is_secret_name`]): what [`mask_secret_fields`] hides in `plan`.
pub fn secret_field_values(value: &Value) -> Vec<&str> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(key, field)| match field {
                Value::String(s) if is_secret_name(key) => vec![s.as_str()],
                other => secret_field_values(other),
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(secret_field_values).collect(),
        _ => Vec::new(),
    }
}

/// What in a credential field's `value` is secret: all of it, but the scheme of an
/// `Authorization` header (`Bearer <token>` shows as `Bearer ***`, and a server that
/// echoes the token alone shows `***`); nothing when it is a path (`age_identity` names
/// the file that holds the identity: the path is no secret, and errors name it).
pub fn credentials_of(value: &str) -> Option<&str> {
    const SCHEMES: [&str; 6] = ["basic", "bearer", "digest", "negotiate", "token", "apikey"];
    let trimmed = value.trim();
    let path = ["/", "./", "../", "~/"]
        .iter()
        .any(|p| trimmed.starts_with(p));
    if path && !trimmed.contains(char::is_whitespace) {
        return None;
    }
    Some(match trimmed.split_once(' ') {
        Some((scheme, rest)) if SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) => rest,
        _ => value,
    })
}

/// A line of TOML with the quoted value of every `key = "value"` whose key holds a
/// credential (see [`is_secret_name`]) replaced by what `by` makes of it; a value with a
/// template in it (`{{ secrets.NAME }}`) is left as written.
pub fn replace_secret_values(line: &str, by: impl Fn(&str) -> String) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some(eq) = line[from..].find('=').map(|i| from + i) {
        from = eq + 1;
        let key = line[..eq].trim_end();
        let start = key
            .rfind(|c: char| !(c.is_alphanumeric() || "_-\"'".contains(c)))
            .map_or(0, |i| i + 1);
        let key = key[start..].trim_matches(['"', '\'']);
        let rest = &line[eq + 1..];
        let value_at = eq + 1 + (rest.len() - rest.trim_start().len());
        let Some(quote) = line[value_at..]
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
        else {
            continue;
        };
        let body = value_at + 1;
        let mut end = None;
        let mut escaped = false;
        for (i, c) in line[body..].char_indices() {
            match c {
                '\\' if quote == '"' && !escaped => escaped = true,
                c if c == quote && !escaped => {
                    end = Some(body + i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let end = end.unwrap_or(line.len());
        let value = &line[body..end];
        from = end.max(from);
        if !is_secret_name(key) || value.is_empty() || value.contains("{{") {
            continue;
        }
        out.push_str(&line[copied..body]);
        out.push_str(&by(value));
        copied = end;
    }
    if copied == 0 {
        return Cow::Borrowed(line);
    }
    out.push_str(&line[copied..]);
    Cow::Owned(out)
}

/// `secret` as a JSON encoder quotes it that writes the characters `escapes` picks as
/// `\uXXXX` (surrogate pairs beyond the BMP) and `/` as `\/` when it picks that: Python's
/// `\u00eb`, Go's `\u0026`, PHP's `\/`.
fn json_escaping(secret: &str, escapes: impl Fn(char) -> bool) -> String {
    let mut out = String::new();
    for c in secret.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '/' if escapes('/') => out.push_str("\\/"),
            c if !escapes(c) && !c.is_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

/// `secret` as a web page quotes it back (`&amp;`, `&lt;`, `&gt;`, `&quot;`, `&#39;`).
fn html_escaped(secret: &str) -> String {
    secret
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// `text` with a secret replaced in any mix of ASCII cases, found as `wanted` (the secret
/// lowered) in `lowered` (the text lowered); None when it is not there.
fn replace_ignoring_case(text: &str, lowered: &str, wanted: &str) -> Option<String> {
    // Lowering ASCII keeps every byte in place (and leaves other characters alone), so
    // where the lowered secret is in the lowered text, the secret is in the text.
    let mut found = lowered.match_indices(wanted).peekable();
    found.peek()?;
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (at, _) in found {
        out.push_str(&text[copied..at]);
        out.push_str(MASK);
        copied = at + wanted.len();
    }
    out.push_str(&text[copied..]);
    Some(out)
}

/// The base64 spellings of `secret` wherever it sits in what was encoded (`user:secret`
/// in a `Basic` header that `curl -v` prints, a Kubernetes Secret's data): from each of
/// the three byte offsets, the characters that only its own bytes make, with the padded
/// ending too (the secret ends the value), in the standard and the url alphabets.
fn base64_forms(secret: &str) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    /// Fewer characters than this would hide unrelated text.
    const MIN_CHARS: usize = 8;
    let bytes = secret.as_bytes();
    let mut forms = Vec::new();
    for skip in 0..3.min(bytes.len()) {
        let rest = &bytes[skip..];
        let whole = &rest[..rest.len() / 3 * 3];
        for engine in [STANDARD, URL_SAFE] {
            for part in [rest, whole] {
                let mut form = engine.encode(part);
                if part.len() % 3 == 0 {
                    // No padding: the value may go on after the secret.
                    form = form.trim_end_matches('=').to_string();
                }
                if form.trim_end_matches('=').len() >= MIN_CHARS && !forms.contains(&form) {
                    forms.push(form);
                }
            }
        }
    }
    forms
}

/// How text shortened by a cut is marked, where the piece of it was left out.
pub const CUT: &str = "…";

/// The length of the longest beginning of `secret` (not all of it) that ends `before`.
fn cut_head(before: &str, secret: &str) -> usize {
    (1..secret.len())
        .rev()
        .filter(|n| secret.is_char_boundary(*n))
        .find(|n| before.ends_with(&secret[..*n]))
        .unwrap_or(0)
}

/// The length of the longest end of `secret` (not all of it) that begins `after`.
fn cut_tail(after: &str, secret: &str) -> usize {
    (1..secret.len())
        .filter(|n| secret.is_char_boundary(*n))
        .map(|n| &secret[n..])
        .find(|end| after.starts_with(end))
        .map_or(0, str::len)
}

/// `text` with every percent-encoded spelling of `secret` (any mix of raw bytes and `%XX`
/// in either case, `+` for a space) replaced; None when there is none.
fn replace_encoded(text: &str, secret: &[u8]) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::new();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match encoded_match(&bytes[i..], secret) {
            Some(len) => {
                out.extend_from_slice(&bytes[copied..i]);
                out.extend_from_slice(MASK.as_bytes());
                i += len;
                copied = i;
            }
            None => i += 1,
        }
    }
    if copied == 0 {
        return None;
    }
    out.extend_from_slice(&bytes[copied..]);
    // A match starts at `%` or at the secret's first byte (a char's first byte) and ends
    // after a whole char or an escape: the text stays valid UTF-8.
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The length of the spelling of `secret` at the start of `text`, if one is there.
fn encoded_match(text: &[u8], secret: &[u8]) -> Option<usize> {
    let mut j = 0;
    for &want in secret {
        let got = *text.get(j)?;
        if got == want || (want == b' ' && got == b'+') {
            j += 1;
        } else if got == b'%' && hex_byte(text.get(j + 1..j + 3)?) == Some(want) {
            j += 3;
        } else {
            return None;
        }
    }
    Some(j)
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(two[0])? * 16 + digit(two[1])?) as u8)
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
