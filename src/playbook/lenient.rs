//! Reading a section or a step past its bad fields: each field that does not deserialize
//! is reported, left out where it stands (in the deepest table holding it: a check of a
//! list, an `s3` or `ready` table) and the rest read again, so that one bad field hides
//! neither the next (beside it, in a nested table, in another entry of a list) nor the
//! checks of the whole table.

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use super::{Diagnostic, MAX_SHOWN, de};

/// Where a left-out field was: keys, and the entry of a list on the way.
#[derive(Clone)]
enum Part {
    Key(String),
    Entry(usize),
}

/// The value without its bad fields; `None` when a field it cannot do without (a step's
/// `id` or `kind`) was bad: reported already.
pub(super) fn de_lenient<T: DeserializeOwned>(
    item: &Spanned<DeValue<'_>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    let mut item = item.clone();
    // The fields left out, each by its path. Bounded: a table of ten thousand bad fields
    // costs no more reads than the problems that are shown.
    let mut removed: Vec<Vec<Part>> = Vec::new();
    // Lists left out in the end (one of their entries was bad), once the rest of the
    // list has been read for its own problems: by where their key is in the text.
    let mut dropped: Vec<usize> = Vec::new();
    for _ in 0..MAX_SHOWN {
        let before = diags.len();
        if let Some(value) = de::<T>(&item, diags) {
            let DeValue::Table(table) = item.get_mut() else {
                return Some(value);
            };
            if dropped.is_empty() {
                return Some(value);
            }
            drop_keys(table, &std::mem::take(&mut dropped));
            continue;
        }
        let DeValue::Table(table) = item.get_mut() else {
            return None;
        };
        // A required field left out here is not a new problem: in a nested table, that
        // table goes as a whole; at the top, the value stays unread.
        let message = &diags[before].message;
        let left_out = removed.iter().rposition(|p| {
            matches!(p.last(), Some(Part::Key(k)) if *message == format!("missing field `{k}`"))
        });
        if let Some(at) = left_out {
            // Matched once: the same field missing from another entry is its own problem.
            let path = removed.remove(at);
            diags.truncate(before);
            if path.len() == 1 {
                return None;
            }
            leave_out_entry(table, &path, &mut dropped);
            removed.push(path[..1].to_vec());
            continue;
        }
        let at = diags.get(before)?.span.clone()?.start;
        let unknown = diags[before].message.starts_with("unknown field");
        // None (a missing `id`): the value stays unread.
        let path = remove_at(table, at)?;
        // A bad value in a nested table: read on for the other problems, but the table
        // goes as a whole in the end (read without the value, it would look unset).
        if let (false, [Part::Key(top), _, ..]) = (unknown, &path[..]) {
            let start = table.keys().find(|k| **k.get_ref() == **top);
            dropped.extend(start.map(|k| k.span().start));
        }
        if matches!(path.last(), Some(Part::Entry(_))) {
            leave_out_entry(table, &path, &mut dropped);
        }
        removed.push(path);
    }
    None
}

/// Leaves out the last entry of a list on `path` now (the other entries are read on for
/// their own problems) and the list at the end; without a list on the way, the top field
/// now.
fn leave_out_entry(table: &mut DeTable<'_>, path: &[Part], dropped: &mut Vec<usize>) {
    let entry = path.iter().rposition(|p| matches!(p, Part::Entry(_)));
    match entry.and_then(|at| remove_entry(table, &path[..=at])) {
        Some(list) => dropped.push(list),
        None => {
            if let Some(Part::Key(top)) = path.first() {
                table.remove(top.as_str());
            }
        }
    }
}

/// Removes every field whose key starts at one of `starts`, at any depth.
fn drop_keys(table: &mut DeTable<'_>, starts: &[usize]) {
    let gone: Vec<String> = table
        .keys()
        .filter(|k| starts.contains(&k.span().start))
        .map(|k| k.get_ref().to_string())
        .collect();
    for key in gone {
        table.remove(key.as_str());
    }
    for (_, value) in table.iter_mut() {
        match value.get_mut() {
            DeValue::Table(t) => drop_keys(t, starts),
            DeValue::Array(items) => {
                for item in items.iter_mut() {
                    if let DeValue::Table(t) = item.get_mut() {
                        drop_keys(t, starts);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Leaves out the field holding byte `at`, in the deepest table (or table of a list) that
/// holds it; the path to it. A path ending at an entry of a list (the entry as a whole is
/// wrong) leaves it in place: [`leave_out_entry`].
fn remove_at(table: &mut DeTable<'_>, at: usize) -> Option<Vec<Part>> {
    let holds = |from: usize, to: usize| from <= at && at < to;
    let mut found = None;
    for (key, value) in table.iter_mut() {
        let (k, v) = (key.span(), value.span());
        let deeper = match value.get_mut() {
            DeValue::Table(t) => remove_at(t, at),
            DeValue::Array(items) => items.iter_mut().enumerate().find_map(|(i, item)| {
                let span = item.span();
                let inner = match item.get_mut() {
                    DeValue::Table(t) => remove_at(t, at),
                    _ => None,
                };
                // The entry itself (a check lacking its `name`, a value of a list that is
                // not one of its set): the path ends at it.
                let mut path = inner.or_else(|| holds(span.start, span.end).then(Vec::new))?;
                path.insert(0, Part::Entry(i));
                Some(path)
            }),
            _ => None,
        };
        if let Some(mut path) = deeper {
            path.insert(0, Part::Key(key.get_ref().to_string()));
            return Some(path);
        }
        if holds(k.start, v.end) || holds(v.start, v.end) {
            found = Some(key.get_ref().to_string());
            break;
        }
    }
    let key = found?;
    table.remove(key.as_str());
    Some(vec![Part::Key(key)])
}

/// Removes the entry of a list at the end of `path` (keys and entries, then the entry's
/// index); where the list's key starts.
fn remove_entry(table: &mut DeTable<'_>, path: &[Part]) -> Option<usize> {
    let Some((Part::Key(key), rest)) = path.split_first() else {
        return None;
    };
    let (name, value) = table.iter_mut().find(|(k, _)| *k.get_ref() == **key)?;
    match (value.get_mut(), rest) {
        (DeValue::Array(items), [Part::Entry(i)]) if *i < items.len() => {
            let kept = std::mem::replace(items, DeArray::new()).into_iter();
            *items = kept
                .enumerate()
                .filter(|(j, _)| j != i)
                .map(|(_, v)| v)
                .collect();
            Some(name.span().start)
        }
        (DeValue::Table(t), _) => remove_entry(t, rest),
        (DeValue::Array(items), [Part::Entry(i), more @ ..]) => {
            match items.get_mut(*i)?.get_mut() {
                DeValue::Table(t) => remove_entry(t, more),
                _ => None,
            }
        }
        _ => None,
    }
}
