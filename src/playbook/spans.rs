//! Where in the playbook text a value lives, looked up by its path (`steps[2].timeout`).

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a path into the document.
#[derive(Debug, Clone, Copy)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

pub struct SpanIndex<'i> {
    root: Spanned<DeTable<'i>>,
}

impl<'i> SpanIndex<'i> {
    /// The index of a parsed document.
    pub fn new(root: Spanned<DeTable<'i>>) -> Self {
        Self { root }
    }

    /// The span of the value at `path`.
    pub fn value(&self, path: &[Seg<'_>]) -> Option<Range<usize>> {
        if path.is_empty() {
            return Some(self.root.span());
        }
        self.find(path).map(|v| v.span())
    }

    /// The span of the key naming the value at `path` (the item itself for array items).
    pub fn key(&self, path: &[Seg<'_>]) -> Option<Range<usize>> {
        match path.split_last()? {
            (Seg::Key(k), parent) => self
                .table_at(parent)?
                .get_key_value(*k)
                .map(|(key, _)| key.span()),
            (Seg::Index(_), _) => self.value(path),
        }
    }

    /// The keys present in the table at `path`, with their spans.
    pub fn keys(&self, path: &[Seg<'_>]) -> Vec<(String, Range<usize>)> {
        self.table_at(path)
            .map(|t| {
                t.keys()
                    .map(|k| (k.get_ref().to_string(), k.span()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn table_at(&self, path: &[Seg<'_>]) -> Option<&DeTable<'i>> {
        if path.is_empty() {
            return Some(self.root.get_ref());
        }
        self.find(path)?.get_ref().as_table()
    }

    /// The value at `path`, as written in the file.
    pub fn find(&self, path: &[Seg<'_>]) -> Option<&Spanned<DeValue<'i>>> {
        let (Seg::Key(first), rest) = path.split_first()? else {
            return None;
        };
        let mut value = self.root.get_ref().get(*first)?;
        for seg in rest {
            value = match seg {
                Seg::Key(k) => value.get_ref().as_table()?.get(*k)?,
                Seg::Index(i) => value.get_ref().as_array()?.get(*i)?,
            };
        }
        Some(value)
    }
}
