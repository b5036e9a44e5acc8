//! A scratch database on an existing server: created by the drill (refused when it
//! already exists, so the drill never writes into a database it did not make, unless its
//! comment proves a killed drill made it: see `engines::scratch`), and dropped at
//! teardown.

use anyhow::{Context as _, bail, ensure};

use crate::engines;

use super::catalog::ident;
use super::conn::db_message;
use super::url::PgUrl;

/// Databases that are never scratch databases.
const RESERVED: &[&str] = &["postgres", "template0", "template1"];

/// Where the drill connects to create and drop: the server's maintenance database.
fn maintenance(target: &PgUrl) -> anyhow::Result<postgres::Client> {
    target
        .with_dbname("postgres")
        .connect()
        .or_else(|_| target.with_dbname("template1").connect())
        .context("cannot connect to the target server's maintenance database (postgres or template1) to create the scratch database")
}

/// Refuses the target before anything is created: no database name, a reserved one,
/// the dump's own source database, or one that exists.
pub fn check_target(target: &PgUrl, source_db: Option<&str>) -> anyhow::Result<String> {
    let Some(db) = target.config.get_dbname().map(str::to_string) else {
        bail!(
            "target_url {} names no database: name the scratch database the drill creates and drops",
            target.public
        );
    };
    ensure!(
        !RESERVED.contains(&db.as_str()),
        "refusing to use `{db}` as the scratch database: it is a system database; name a database that does not exist"
    );
    ensure!(
        source_db != Some(db.as_str()),
        "refusing to restore into `{db}`: the dump was taken from a database of that name; a drill restores into a scratch database with another name"
    );
    Ok(db)
}

/// Creates the scratch database, marked as this run's step `step`'s. One that exists is refused
/// (creating nothing), unless its mark proves a drill that is over made it: that one is
/// dropped first, and the warning to give is returned.
pub fn create(target: &PgUrl, db: &str, step: &str) -> anyhow::Result<Option<String>> {
    let mut client = maintenance(target)?;
    let found = client.query_opt(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
        &[&db],
    )?;
    let mut dropped = None;
    if let Some(row) = found {
        let mark: Option<String> = row.get(0);
        let drop_sql = format!("DROP DATABASE {}", ident(db));
        let server = target.server();
        let warning = engines::scratch::existing(step, db, &server, mark.as_deref(), &drop_sql)?;
        drop_database(target, db)?;
        dropped = Some(warning);
    }
    client
        .batch_execute(&format!("CREATE DATABASE {} TEMPLATE template0", ident(db)))
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot create the scratch database `{db}`: {}",
                db_message(&e)
            )
        })?;
    // The proof for a later run, should this one be killed before its teardown. Without
    // it (a server refusing comments) that run refuses the database, as before marks.
    let mark = engines::scratch::mark_literal(step);
    let _ = client.batch_execute(&format!("COMMENT ON DATABASE {} IS E{mark}", ident(db)));
    Ok(dropped)
}

/// Drops the scratch database, ending the sessions still connected to it.
pub fn drop_database(target: &PgUrl, db: &str) -> anyhow::Result<()> {
    let mut client = maintenance(target)?;
    let forced = client.batch_execute(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        ident(db)
    ));
    if let Err(e) = forced {
        // Before PostgreSQL 13 there is no FORCE: end the sessions, then drop.
        let _ = client.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db],
        );
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {}", ident(db)))
            .map_err(|e2| {
                anyhow::anyhow!(
                    "cannot drop `{db}`: {} (then {})",
                    db_message(&e),
                    db_message(&e2)
                )
            })?;
    }
    Ok(())
}
