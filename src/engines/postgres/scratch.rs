//! A scratch database on an existing server: created by the drill (refused when it
//! already exists, so the drill never writes into a database it did not make), and
//! dropped at teardown.

use anyhow::{Context as _, bail, ensure};

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

/// Creates the scratch database; fails (creating nothing) when it already exists.
pub fn create(target: &PgUrl, db: &str) -> anyhow::Result<()> {
    let mut client = maintenance(target)?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])?
        .is_some();
    ensure!(
        !exists,
        "refusing to restore into `{db}` on {}: the database already exists, and a drill only restores into a scratch database it creates (and drops afterwards). A drill killed outright (SIGKILL, a reboot) leaves its scratch database: if this is one, drop it by hand (DROP DATABASE {})",
        target.server(),
        ident(db)
    );
    client
        .batch_execute(&format!("CREATE DATABASE {} TEMPLATE template0", ident(db)))
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot create the scratch database `{db}`: {}",
                db_message(&e)
            )
        })
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
