//! What a database holds, read from the catalogs: user tables, indexes and foreign keys,
//! named schema-qualified (`public.accounts`) so that names in different schemas never
//! collide. Shared by the backup (counted in the dump's snapshot) and verification.

use anyhow::Context as _;
use indexmap::IndexMap;
use postgres::GenericClient;

use crate::engines::SchemaFacts;

/// Schemas that belong to PostgreSQL, not to the application.
const USER_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

/// A table as (schema, name).
pub type Table = (String, String);

pub fn qualified((schema, name): &Table) -> String {
    format!("{schema}.{name}")
}

/// The table `name` means, as psql reads it: `schema.table` or, unqualified, the first
/// schema of the search_path holding it; unquoted parts fold to lower case, `"Quoted"`
/// ones are kept as they are. None when it names no table of `existing`.
pub fn resolve(name: &str, search_path: &[String], existing: &[Table]) -> Option<Table> {
    let part = |p: &str| match p.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => p.to_lowercase(),
    };
    let parts = split_name(name);
    let found = |schema: &str, table: &str| {
        existing
            .iter()
            .find(|(s, t)| s == schema && t == table)
            .cloned()
    };
    match parts.as_slice() {
        [table] => search_path
            .iter()
            .find_map(|schema| found(schema, &part(table))),
        [schema, table] => found(&part(schema), &part(table)),
        _ => None,
    }
}

/// `a.b`, `"a.b".c`: the dotted parts of a name, dots inside double quotes kept.
fn split_name(name: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in name.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => {
                parts.push(name[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(name[start..].trim());
    parts
}

/// `"schema"."name"`, quoted for SQL.
pub fn quoted((schema, name): &Table) -> String {
    format!("{}.{}", ident(schema), ident(name))
}

pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Ordinary and partitioned tables of the user schemas, without those that extensions
/// own (their contents come from the extension, not from the dump).
pub fn tables(c: &mut impl GenericClient) -> anyhow::Result<Vec<Table>> {
    let sql = format!(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't' AND {USER_SCHEMAS}
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
         ORDER BY 1, 2"
    );
    Ok(c.query(&sql, &[])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Indexes of user tables, schema-qualified.
pub fn indexes(c: &mut impl GenericClient) -> anyhow::Result<Vec<String>> {
    let sql = format!(
        "SELECT n.nspname || '.' || ic.relname FROM pg_index i
         JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace
         WHERE ic.relpersistence <> 't' AND {USER_SCHEMAS} ORDER BY 1"
    );
    Ok(c.query(&sql, &[])?.iter().map(|r| r.get(0)).collect())
}

/// Exact row counts (`count(*)`) of `tables`, in the client's current snapshot.
pub fn count_rows(
    c: &mut impl GenericClient,
    tables: &[Table],
) -> anyhow::Result<IndexMap<String, u64>> {
    tables
        .iter()
        .map(|t| {
            let n: i64 = c
                .query_one(&format!("SELECT count(*) FROM {}", quoted(t)), &[])
                .with_context(|| format!("cannot count the rows of {}", qualified(t)))?
                .get(0);
            Ok((qualified(t), n as u64))
        })
        .collect()
}

/// Row counts of every user table, indexes and foreign key names.
pub fn schema_facts(c: &mut impl GenericClient) -> anyhow::Result<SchemaFacts> {
    let tables = tables(c)?;
    Ok(SchemaFacts {
        table_counts: count_rows(c, &tables)?,
        indexes: indexes(c)?,
        foreign_keys: foreign_keys(c)?.into_iter().map(|fk| fk.name).collect(),
        objects: objects(c)?,
        table_digests: None,
    })
}

/// Views, materialized views, sequences, triggers, functions and procedures of the user
/// schemas (not those of extensions), and extensions.
pub fn objects(c: &mut impl GenericClient) -> anyhow::Result<Vec<String>> {
    let not_extension = |class: &str, oid: &str| {
        format!(
            "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{class}'::regclass AND d.objid = {oid} AND d.deptype = 'e')"
        )
    };
    let sql = format!(
        "SELECT kind || ' ' || name FROM (
           SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'sequence' END AS kind,
                  n.nspname || '.' || c.relname AS name
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('v', 'm', 'S') AND {USER_SCHEMAS} AND {rel}
           UNION ALL
           SELECT 'trigger', n.nspname || '.' || c.relname || '.' || t.tgname
           FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE NOT t.tgisinternal AND {USER_SCHEMAS}
           UNION ALL
           SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
                  n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE {USER_SCHEMAS} AND {proc}
           UNION ALL
           SELECT 'extension', extname::text FROM pg_extension
         ) o ORDER BY 1",
        rel = not_extension("pg_class", "c.oid"),
        proc = not_extension("pg_proc", "p.oid"),
    );
    Ok(c.query(&sql, &[])?.iter().map(|r| r.get(0)).collect())
}

/// A foreign key constraint and the columns it ties together.
pub struct ForeignKey {
    /// `schema.table.constraint`.
    pub name: String,
    pub validated: bool,
    /// The referencing and the referenced table, as SQL (`regclass` text).
    pub child: String,
    pub parent: String,
    pub child_cols: Vec<String>,
    pub parent_cols: Vec<String>,
    /// MATCH FULL: a row with some but not all key columns null also violates it.
    pub match_full: bool,
}

/// Foreign keys of user tables; on partitioned tables only the parent's constraint (the
/// partitions' copies check the same rows).
pub fn foreign_keys(c: &mut impl GenericClient) -> anyhow::Result<Vec<ForeignKey>> {
    let sql = format!(
        "SELECT n.nspname || '.' || t.relname || '.' || con.conname, con.convalidated,
                con.conrelid::regclass::text, con.confrelid::regclass::text,
                ARRAY(SELECT quote_ident(a.attname) FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
                      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.ord)::text[],
                ARRAY(SELECT quote_ident(a.attname) FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
                      JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.ord)::text[],
                con.confmatchtype = 'f'
         FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE con.contype = 'f' AND con.conparentid = 0 AND {USER_SCHEMAS} ORDER BY 1"
    );
    Ok(c.query(&sql, &[])?
        .iter()
        .map(|r| ForeignKey {
            name: r.get(0),
            validated: r.get(1),
            child: r.get(2),
            parent: r.get(3),
            child_cols: r.get(4),
            parent_cols: r.get(5),
            match_full: r.get(6),
        })
        .collect())
}

impl ForeignKey {
    /// Counts the referencing rows whose key has no referenced row: one query per
    /// constraint, an anti-join the planner runs as a hash or merge anti-join.
    pub fn orphan_query(&self) -> String {
        let all_set = joined(&self.child_cols, " AND ", |col| {
            format!("c.{col} IS NOT NULL")
        });
        let pairs = self.child_cols.iter().zip(&self.parent_cols);
        let join = joined(pairs, " AND ", |(cc, pc)| format!("p.{pc} = c.{cc}"));
        let mut sql = format!(
            "SELECT count(*) FROM {child} c WHERE ({all_set} AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {join}))",
            child = self.child,
            parent = self.parent
        );
        if self.match_full && self.child_cols.len() > 1 {
            let cols = joined(&self.child_cols, ", ", |col| format!("c.{col}"));
            sql.push_str(&format!(
                " OR num_nulls({cols}) BETWEEN 1 AND {}",
                self.child_cols.len() - 1
            ));
        }
        sql
    }
}

/// Each item written by `write`, joined by `sep`.
fn joined<I: IntoIterator>(items: I, sep: &str, write: impl Fn(I::Item) -> String) -> String {
    items.into_iter().map(write).collect::<Vec<_>>().join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_as_psql_reads_them() {
        let t = |s: &str, n: &str| (s.to_string(), n.to_string());
        let existing = [
            t("public", "orders"),
            t("shop", "orders"),
            t("shop", "Items"),
            t("a.b", "c"),
        ];
        let path = ["shop".to_string(), "public".to_string()];
        let resolve = |name: &str| resolve(name, &path, &existing);
        assert_eq!(
            resolve("orders"),
            Some(t("shop", "orders")),
            "the first schema"
        );
        assert_eq!(resolve("ORDERS"), Some(t("shop", "orders")), "folded");
        assert_eq!(resolve("public.orders"), Some(t("public", "orders")));
        assert_eq!(
            resolve("\"Items\""),
            Some(t("shop", "Items")),
            "quoted: as is"
        );
        assert_eq!(resolve("Items"), None, "unquoted: folded to items");
        assert_eq!(resolve("\"a.b\".c"), Some(t("a.b", "c")));
        assert_eq!(resolve("x.y.z"), None);
        assert_eq!(resolve("missing"), None);
        assert_eq!(resolve(""), None);
    }
}
