//! Content digests of tables (`digests = true`, builtin `table_digests`): each row is
//! hashed to 128 bits and a table's digest is the sum of its rows' hashes modulo 2^128,
//! with the number of rows beside it. A sum does not depend on the order the rows come
//! in (nor on the order of the parts it is added up from), so the source and its restore
//! are compared without sorting either; unlike a XOR, two equal rows do not cancel out.
//! What a row's hash covers is each engine's (see docs/digests.md); how hashes add up,
//! how rows are split into key ranges and how a sample is drawn is here, the same for
//! every engine.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, bail};
use indexmap::IndexMap;
use serde_json::{Value, json};

/// Key ranges a table with a single integer key is split into, so that a difference
/// is narrowed to one of them.
pub const BUCKETS: i64 = 16;

/// The modulus of the deterministic sample: a row is in a sample of `s` when its key,
/// scrambled modulo this prime, is below `s * SAMPLE_MOD`.
const SAMPLE_MOD: i64 = 10007;

/// A table's single integer key column and its smallest and largest value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub column: String,
    pub min: i64,
    pub max: i64,
}

/// The key ranges: range `i` holds the keys `lo + i * width ..= lo + (i + 1) * width - 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBuckets {
    pub column: String,
    pub lo: i64,
    pub width: i64,
}

/// How a table is digested, which the source and the restore must agree on.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub table: String,
    pub key: Option<KeyBuckets>,
    /// The fraction of rows hashed (by key); None: every row.
    pub sample: Option<f64>,
}

impl Plan {
    /// The plan of a table whose key is `key` (None: no single integer key, so neither
    /// ranges nor a sample: the whole table in one range).
    pub fn new(table: &str, key: Option<KeyRange>, sample: Option<f64>) -> Self {
        let key = key.and_then(|k| {
            let span = i128::from(k.max) - i128::from(k.min) + 1;
            let width = (span + i128::from(BUCKETS) - 1) / i128::from(BUCKETS);
            // Keys spread over more than half the i64 range: no ranges (their
            // arithmetic could overflow in SQL).
            (span <= i128::from(i64::MAX / 2)).then(|| KeyBuckets {
                column: k.column,
                lo: k.min,
                width: width.max(1) as i64,
            })
        });
        let sample = sample.filter(|s| *s < 1.0 && key.is_some());
        Self {
            table: table.to_string(),
            key,
            sample,
        }
    }

    /// The range of a row whose key is `key`: -1 below the first, `BUCKETS` above the
    /// last, 0 without a key.
    pub fn bucket_of(&self, key: i64) -> i64 {
        match &self.key {
            None => 0,
            Some(k) if key < k.lo => -1,
            Some(k) if i128::from(key) > i128::from(k.lo) + i128::from(BUCKETS * k.width) - 1 => {
                BUCKETS
            }
            Some(k) => (key - k.lo) / k.width,
        }
    }

    /// The SQL condition selecting the sample (`quoted` is the key column), or None.
    pub fn sample_sql(&self, quoted: &str) -> Option<String> {
        let s = self.sample?;
        let below = (s * SAMPLE_MOD as f64).ceil() as i64;
        Some(format!(
            "((({quoted}) % {SAMPLE_MOD} + {SAMPLE_MOD}) % {SAMPLE_MOD}) * 7919 % {SAMPLE_MOD} < {below}"
        ))
    }

    /// For a query of the rows aliased `drill_row_`: the WHERE clause of the sample and
    /// of `piece` (the condition of the engine's choice, or None; empty: every row), the
    /// key quoted by `quote`.
    pub fn filter_sql(&self, quote: impl Fn(&str) -> String, piece: Option<String>) -> String {
        let key = self
            .key
            .as_ref()
            .map_or_else(String::new, |k| format!("drill_row_.{}", quote(&k.column)));
        let conditions: Vec<String> = self.sample_sql(&key).into_iter().chain(piece).collect();
        if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        }
    }

    /// The keys of range `bucket`, as shown in a message.
    fn range_text(&self, bucket: i64) -> String {
        match &self.key {
            None => "the whole table (it has no single integer key)".into(),
            Some(k) if bucket < 0 => format!("{} below {}", k.column, k.lo),
            Some(k) if bucket >= BUCKETS => {
                format!("{} above {}", k.column, k.lo + BUCKETS * k.width - 1)
            }
            Some(k) => {
                let from = k.lo + bucket * k.width;
                format!("{} {}..{}", k.column, from, from + k.width - 1)
            }
        }
    }
}

/// What the rows of one range add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Part {
    pub rows: u64,
    pub sum: u128,
}

impl Part {
    pub fn add_row(&mut self, hash: u128) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add(hash);
    }

    pub fn add(&mut self, other: Part) {
        self.rows += other.rows;
        self.sum = self.sum.wrapping_add(other.sum);
    }

    /// From the sums of the high and the low 64 bits of the rows' hashes (each as the
    /// server added them up, exactly, possibly as signed numbers): `hi * 2^64 + lo`
    /// modulo 2^128.
    pub fn from_halves(rows: u64, hi: &str, lo: &str) -> anyhow::Result<Self> {
        let parse = |s: &str| {
            s.trim()
                .parse::<i128>()
                .with_context(|| format!("bad sum of hashes `{s}`"))
        };
        let (hi, lo) = (parse(hi)? as u128, parse(lo)? as u128);
        Ok(Self {
            rows,
            sum: hi.wrapping_shl(64).wrapping_add(lo),
        })
    }
}

/// The parts of ranges -1 (below the first) to `BUCKETS` (above the last), for engines
/// whose rows are hashed here.
pub struct Ranges([Part; BUCKETS as usize + 2]);

impl Default for Ranges {
    fn default() -> Self {
        Self([Part::default(); BUCKETS as usize + 2])
    }
}

impl Ranges {
    pub fn add_row(&mut self, range: i64, hash: u128) {
        self.0[(range + 1) as usize].add_row(hash);
    }

    /// The ranges that have rows.
    pub fn into_parts(self) -> BTreeMap<i64, Part> {
        let parts = (-1..=BUCKETS).zip(self.0).filter(|(_, p)| p.rows > 0);
        parts.collect()
    }
}

/// A row's hash, the same for every engine: XXH3's 128 bits of its bytes (its encoding,
/// see `RowBytes`, or PostgreSQL's COPY line). Not BLAKE3: rows are short, where BLAKE3
/// cannot use its parallelism, and it took 35-40% of a SQLite digest's time (perf) where
/// XXH3 takes a few percent; neither sum resists crafted collisions (docs/digests.md).
pub fn row_hash(bytes: &[u8]) -> u128 {
    twox_hash::XxHash3_128::oneshot(bytes)
}

/// A row's encoding, column by column in their ordinal order: a type tag, then for
/// values with bytes their length (8 bytes, little-endian) and the bytes. NULL is a tag
/// alone, so it never equals an empty text or blob.
#[derive(Default)]
pub struct RowBytes(pub Vec<u8>);

impl RowBytes {
    pub fn clear(&mut self) {
        self.0.clear();
    }
    pub fn null(&mut self) {
        self.0.push(0);
    }
    pub fn integer(&mut self, i: i64) {
        self.0.push(1);
        self.0.extend_from_slice(&i.to_le_bytes());
    }
    /// A float by its exact bits (so -0.0 and 0.0, and each NaN, are told apart).
    pub fn real(&mut self, f: f64) {
        self.0.push(2);
        self.0.extend_from_slice(&f.to_bits().to_le_bytes());
    }
    pub fn text(&mut self, bytes: &[u8]) {
        self.bytes(3, bytes);
    }
    pub fn blob(&mut self, bytes: &[u8]) {
        self.bytes(4, bytes);
    }
    fn bytes(&mut self, tag: u8, bytes: &[u8]) {
        self.0.push(tag);
        self.0
            .extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        self.0.extend_from_slice(bytes);
    }
    pub fn hash(&self) -> u128 {
        row_hash(&self.0)
    }
}

/// A share of a table's rows that one worker reads: the rows at the engine's positions
/// `from..to` (PostgreSQL: heap pages; SQLite: keys), None at an open end. The pieces of
/// a table cover every row once, so their parts add up to the table's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Piece {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl Piece {
    /// The condition selecting the piece, `at(position)` being the SQL of a position
    /// and `column` what is compared with it; None for the whole table.
    pub fn sql(&self, column: &str, at: impl Fn(i64) -> String) -> Option<String> {
        let from = self.from.map(|f| format!("{column} >= {}", at(f)));
        let to = self.to.map(|t| format!("{column} < {}", at(t)));
        let both: Vec<String> = from.into_iter().chain(to).collect();
        (!both.is_empty()).then(|| both.join(" AND "))
    }

    /// The pieces between ascending `bounds`: `..b1`, `b1..b2`, ..., `bn..`.
    pub fn between(bounds: &[i64]) -> Vec<Piece> {
        let edges: Vec<Option<i64>> = std::iter::once(None)
            .chain(bounds.iter().copied().map(Some))
            .chain(std::iter::once(None))
            .collect();
        edges
            .windows(2)
            .map(|w| Piece {
                from: w[0],
                to: w[1],
            })
            .collect()
    }
}

/// What an engine does for digests, on one connection (or one transaction).
pub trait Digester {
    /// The table's single integer key and its range; None when it has none (or no rows).
    fn key_range(&mut self, table: &str) -> anyhow::Result<Option<KeyRange>>;
    /// Ascending bounds splitting `plan`'s table into up to `n` pieces that workers read
    /// side by side (empty: one piece, the whole table). Asked once per table, so that
    /// every worker splits alike.
    fn split(&mut self, _plan: &Plan, _n: usize) -> anyhow::Result<Vec<i64>> {
        Ok(Vec::new())
    }
    /// The rows of `plan`'s table (its sample) in `piece`, added up per range
    /// (`Plan::bucket_of`).
    fn parts(&mut self, plan: &Plan, piece: Piece) -> anyhow::Result<BTreeMap<i64, Part>>;
}

/// A table's digest: the whole table's, and each key range's.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDigest {
    pub plan: Plan,
    pub total: Part,
    /// Range (-1 and `BUCKETS` are the keys outside the source's ranges) → its part.
    pub parts: BTreeMap<i64, Part>,
}

impl TableDigest {
    pub fn new(plan: Plan, parts: BTreeMap<i64, Part>) -> Self {
        let mut total = Part::default();
        for p in parts.values() {
            total.add(*p);
        }
        Self { plan, total, parts }
    }

    /// As an output: `{rows, digest, key, sample, ranges: [{from, to, rows, digest}]}`.
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "rows": self.total.rows, "digest": hex(self.total.sum) });
        if let Some(k) = &self.plan.key {
            v["key"] = json!(k.column);
            if let Some(s) = self.plan.sample {
                v["sample"] = json!(s);
            }
            let ranges: Vec<Value> = (0..BUCKETS)
                .map(|b| {
                    let p = self.parts.get(&b).copied().unwrap_or_default();
                    let from = k.lo + b * k.width;
                    json!({"from": from, "to": from + k.width - 1, "rows": p.rows, "digest": hex(p.sum)})
                })
                .collect();
            v["ranges"] = json!(ranges);
        }
        v
    }

    /// The plan and digest of `table` as a backup output shows them.
    pub fn from_json(table: &str, v: &Value) -> anyhow::Result<Self> {
        let bad = || format!("`{table}` in `compare_to` is not a table digest: {v}");
        let rows = v["rows"].as_u64().with_context(bad)?;
        let sum = unhex(v["digest"].as_str().with_context(bad)?).with_context(bad)?;
        let ranges = v["ranges"].as_array();
        let key = match (v["key"].as_str(), ranges.and_then(|r| r.first())) {
            (Some(column), Some(first)) => {
                let from = first["from"].as_i64().with_context(bad)?;
                let to = first["to"].as_i64().with_context(bad)?;
                Some(KeyBuckets {
                    column: column.into(),
                    lo: from,
                    width: (to - from + 1).max(1),
                })
            }
            (None, _) => None,
            (Some(_), None) => bail!(bad()),
        };
        let mut parts = BTreeMap::new();
        for (b, r) in ranges.into_iter().flatten().enumerate() {
            let rows = r["rows"].as_u64().with_context(bad)?;
            let sum = unhex(r["digest"].as_str().with_context(bad)?).with_context(bad)?;
            parts.insert(b as i64, Part { rows, sum });
        }
        if key.is_none() {
            parts.insert(0, Part { rows, sum });
        }
        let plan = Plan {
            table: table.into(),
            key,
            sample: v["sample"].as_f64(),
        };
        let mut d = Self::new(plan, parts);
        d.total = Part { rows, sum };
        Ok(d)
    }

    /// What differs in `restored` from this (the source's): None when equal; else the
    /// rows of each and the first key range that differs.
    pub fn difference(&self, restored: &TableDigest) -> Option<String> {
        if self.total == restored.total {
            return None;
        }
        let ranges = self.parts.keys().chain(restored.parts.keys());
        let first = ranges
            .copied()
            .filter(|b| self.parts.get(b) != restored.parts.get(b))
            .min()
            .unwrap_or(0);
        let sampled = match self.plan.sample {
            Some(s) => format!(" (a {:.4}% sample by key)", s * 100.0),
            None => String::new(),
        };
        Some(format!(
            "content differs{sampled}: {} rows hashed, source had {}; first differing range: {}",
            restored.total.rows,
            self.total.rows,
            self.plan.range_text(first)
        ))
    }
}

fn hex(n: u128) -> String {
    format!("{n:032x}")
}

fn unhex(s: &str) -> Option<u128> {
    (s.len() == 32).then(|| u128::from_str_radix(s, 16).ok())?
}

/// Digests of `tables` (a sample of `sample` where they have a key), `first` working on
/// the calling thread and each of `more` on a thread of its own (see `digest_by_plans`).
pub fn digest_tables(
    first: &mut dyn Digester,
    more: Vec<Box<dyn Digester + Send>>,
    tables: &[String],
    sample: Option<f64>,
) -> anyhow::Result<IndexMap<String, TableDigest>> {
    let mut plans = Vec::new();
    for t in tables {
        let key = first
            .key_range(t)
            .with_context(|| format!("digesting {t}"))?;
        plans.push(Plan::new(t, key, sample));
    }
    tables
        .iter()
        .zip(digest_by_plans(first, more, &plans))
        .map(|(t, r)| Ok((t.clone(), r.with_context(|| format!("digesting {t}"))?)))
        .collect()
}

/// The digests of the tables of `plans`: each table split into pieces (`Digester::split`,
/// asked of `first`), and the pieces of all tables spread over `first` (on the calling
/// thread) and each of `more` (on a thread of its own), each taking the next piece not
/// yet taken; a table's parts are the sums of its pieces'.
pub fn digest_by_plans(
    first: &mut dyn Digester,
    more: Vec<Box<dyn Digester + Send>>,
    plans: &[Plan],
) -> Vec<anyhow::Result<TableDigest>> {
    let workers = 1 + more.len();
    let mut sums: Vec<anyhow::Result<BTreeMap<i64, Part>>> = Vec::new();
    let mut pieces: Vec<(usize, Piece)> = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let split = first.split(plan, workers);
        if let Ok(bounds) = &split {
            pieces.extend(Piece::between(bounds).into_iter().map(|p| (i, p)));
        }
        sums.push(split.map(|_| BTreeMap::new()));
    }
    let done = in_parallel(first, more, pieces.len(), |d, k| {
        let (i, piece) = pieces[k];
        d.parts(&plans[i], piece)
    });
    for ((i, _), parts) in pieces.iter().zip(done) {
        match (&mut sums[*i], parts) {
            (Ok(sum), Ok(parts)) => {
                for (range, part) in parts {
                    sum.entry(range).or_default().add(part);
                }
            }
            (sum @ Ok(_), Err(e)) => *sum = Err(e),
            (Err(_), _) => {}
        }
    }
    plans
        .iter()
        .zip(sums)
        .map(|(plan, sum)| Ok(TableDigest::new(plan.clone(), sum?)))
        .collect()
}

/// `work` on items `0..n`, spread over the digesters.
fn in_parallel<T: Send>(
    first: &mut dyn Digester,
    more: Vec<Box<dyn Digester + Send>>,
    n: usize,
    work: impl Fn(&mut dyn Digester, usize) -> anyhow::Result<T> + Sync,
) -> Vec<anyhow::Result<T>> {
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<anyhow::Result<T>>>> = Mutex::new((0..n).map(|_| None).collect());
    let drain = |d: &mut dyn Digester| {
        loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            if i >= n {
                break;
            }
            let r = work(d, i);
            done.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
        }
    };
    std::thread::scope(|s| {
        for mut d in more {
            let drain = &drain;
            s.spawn(move || drain(d.as_mut()));
        }
        drain(first);
    });
    let done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(anyhow::anyhow!("a digest worker stopped"))))
        .collect()
}

/// What a backup step asks for: None without `digests = true`; else the sample (None:
/// every row). A `sample` outside (0, 1], or without `digests`, is an error.
pub fn asked(step: &crate::playbook::Step) -> anyhow::Result<Option<Option<f64>>> {
    if let Some(problem) = step.sample.and_then(crate::limits::sample_problem) {
        bail!(problem);
    }
    match (step.digests, step.sample) {
        (Some(true), sample) => Ok(Some(sample)),
        (_, Some(_)) => bail!("`sample` applies to `digests = true`"),
        _ => Ok(None),
    }
}

/// Digests as an output: table → `TableDigest::to_json`.
pub fn to_json(digests: &IndexMap<String, TableDigest>) -> Value {
    digests
        .iter()
        .map(|(t, d)| (t.clone(), d.to_json()))
        .collect()
}

#[cfg(test)]
#[path = "digest_tests.rs"]
mod tests;
