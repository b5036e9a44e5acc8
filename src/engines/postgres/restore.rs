//! `pg_restore` into a database the drill created (in a throwaway cluster or as a
//! scratch database), then what the restored database holds.

use std::path::Path;

use anyhow::Context as _;

use super::catalog;
use super::url::{PgUrl, with_password};
use super::zstd;
use crate::engines::SchemaFacts;
use crate::proc::{Cancel, Tool};

pub struct RestoreRequest<'a> {
    pub pg_restore: &'a Path,
    pub archive: &'a Path,
    pub target: &'a PgUrl,
    pub jobs: Option<u32>,
    pub scratch: &'a Path,
    pub cancel: &'a Cancel,
}

/// Restores without owners and privileges: the roles of the source need not exist
/// where a drill restores, and the data and schema are what a drill verifies.
pub fn pg_restore(req: &RestoreRequest<'_>, progress: &dyn Fn(u64, u64)) -> anyhow::Result<()> {
    if !zstd::is_zstd(req.archive) {
        return run(req, Input::File(req.archive), progress);
    }
    if req.jobs.unwrap_or(1) > 1 {
        // Parallel restore needs a seekable archive: decompress it beside the scratch files.
        let plain = req.scratch.join("archive.decompressed");
        let mut file = std::fs::File::create(&plain)?;
        zstd::decompress(req.archive, &mut file)?;
        drop(file);
        let result = run(req, Input::File(&plain), progress);
        let _ = std::fs::remove_file(&plain);
        return result;
    }
    // One job: decompress on the fly into pg_restore's stdin.
    let (pipe_r, mut pipe_w) = os_pipe::pipe()?;
    std::thread::scope(|s| {
        let feeder = s.spawn(move || {
            let fed = zstd::decompress(req.archive, &mut pipe_w);
            drop(pipe_w);
            fed
        });
        let restored = run(req, Input::Pipe(pipe_r), progress);
        let fed = feeder.join().expect("the zstd decompressor panicked");
        // pg_restore's own error explains more than a broken pipe does.
        restored.and(fed)
    })
}

enum Input<'a> {
    File(&'a Path),
    /// pg_restore reads the archive from stdin.
    Pipe(os_pipe::PipeReader),
}

fn run(
    req: &RestoreRequest<'_>,
    input: Input<'_>,
    progress: &dyn Fn(u64, u64),
) -> anyhow::Result<()> {
    let mut args: Vec<String> = vec![
        "--no-owner".into(),
        "--no-privileges".into(),
        "--no-password".into(),
        "--exit-on-error".into(),
        format!("--dbname={}", req.target.public),
    ];
    let jobs = req.jobs.unwrap_or(1).max(1);
    let mut expr = duct::cmd(req.pg_restore, &args);
    match input {
        Input::File(archive) => {
            if jobs > 1 {
                args.push(format!("--jobs={jobs}"));
            }
            args.push(archive.display().to_string());
            expr = duct::cmd(req.pg_restore, &args);
        }
        // Dropped with the expression once started: pg_restore holds the only read end,
        // so the feeder sees a broken pipe if pg_restore dies.
        Input::Pipe(pipe) => expr = expr.stdin_file(pipe),
    }
    let (expr, _passfile) = with_password(expr, req.target, req.scratch)?;
    let total = super::dump::size_of(req.archive);
    let running = Tool::new(expr, "pg_restore")
        .logged(&req.scratch.join("pg_restore.stderr"))
        .start(req.cancel)?;
    let mut db = req.target.connect().ok();
    running.wait_ticking(&mut || {
        // The restored database's size against the archive's: a rough progress.
        if let Some(c) = db.as_mut()
            && let Ok(row) = c.query_one("SELECT pg_database_size(current_database())", &[])
        {
            progress((row.get::<_, i64>(0).max(0) as u64).min(total), total);
        }
    })?;
    progress(total, total);
    Ok(())
}

/// Exact counts of every table of the restored database, its indexes and foreign keys.
pub fn restored_schema(target: &PgUrl) -> anyhow::Result<SchemaFacts> {
    let mut client = target
        .connect()
        .context("cannot connect to the restored database")?;
    catalog::schema_facts(&mut client)
}
