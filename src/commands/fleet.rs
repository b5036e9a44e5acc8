//! `history` and `status` over an artifacts folder or a tree of many drills' folders.

use std::path::{Path, PathBuf};

use crate::artifact::{self, RunRecord};
use crate::cli::StatusFormat;
use crate::exit::ExitCode;
use crate::fmt::{fmt_secs, plural};
use crate::report::fleet::{self, Brief};
use crate::report::history;

/// The record files under `dir` (exit 2 when it cannot be read).
fn paths(dir: &Path) -> Result<Vec<PathBuf>, ExitCode> {
    artifact::list_tree(dir).map_err(|e| {
        eprintln!("error: cannot read {}: {e}", dir.display());
        ExitCode::Usage
    })
}

/// Reads every file with `read`, on a few threads; a file that cannot be read is a
/// warning naming it.
fn read_all<T: Send>(paths: &[PathBuf], read: fn(&Path) -> anyhow::Result<T>) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    let chunk = paths.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = paths
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|p| read(p)).collect::<Vec<_>>()))
            .collect();
        let mut found = Vec::new();
        for worker in workers {
            for result in worker.join().unwrap_or_default() {
                match result {
                    Ok(t) => found.push(t),
                    Err(e) => eprintln!("warning: {e:#}"),
                }
            }
        }
        found
    })
}

fn read_brief(path: &Path) -> anyhow::Result<Brief> {
    use anyhow::Context as _;
    let text = crate::limits::read_text(path, crate::limits::MAX_RECORD_BYTES)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a restore-drill record", path.display()))
}

/// `history`: a folder's runs, one line each; a tree's drills, one line each.
pub(super) fn history(dir: &Path) -> ExitCode {
    let paths = match paths(dir) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if paths.is_empty() {
        eprintln!("no drills recorded in {}", dir.display());
        return ExitCode::Passed;
    }
    if artifact::is_tree(dir, &paths) {
        let rows = fleet::rows(read_all(&paths, read_brief));
        print!("{}", fleet::table(&rows, now()));
    } else {
        let records: Vec<RunRecord> = read_all(&paths, artifact::read);
        print!("{}", history::table(&records));
    }
    ExitCode::Passed
}

/// `35d` for whole days, else as `fmt_secs` says it.
fn age_text(secs: f64) -> String {
    match secs >= 86_400.0 && secs % 86_400.0 == 0.0 {
        true => format!("{}d", secs / 86_400.0),
        false => fmt_secs(secs),
    }
}

fn now() -> f64 {
    jiff::Timestamp::now().as_millisecond() as f64 / 1000.0
}

/// `status`: one row per drill; exit 1 when a drill (or `--drill`) has not passed within
/// `max_age`. `--format prom` prints when each last passed and always exits 0.
pub(super) fn status(
    dir: &Path,
    max_age: std::time::Duration,
    drill: Option<&str>,
    format: StatusFormat,
) -> ExitCode {
    // A folder that is not there is a mistake in the command (exit 2), not a drill that
    // has not passed.
    let paths = match paths(dir) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut briefs = read_all(&paths, read_brief);
    briefs.retain(|b| drill.is_none_or(|d| b.drill.name == d));
    let rows = fleet::rows(briefs);
    let (now, max_age) = (now(), max_age.as_secs_f64());
    match format {
        StatusFormat::Prom => {
            let mut last = fleet::last_successes(&rows);
            if let Some(d) = drill {
                last.entry(d.to_string()).or_default();
            }
            print!("{}", history::last_success_metric(&last));
            return ExitCode::Passed;
        }
        StatusFormat::Json => print!("{}", fleet::to_json(&rows, now, max_age)),
        StatusFormat::Text if !rows.is_empty() => print!("{}", fleet::table(&rows, now)),
        StatusFormat::Text => {}
    }
    let text = format == StatusFormat::Text;
    let what = |name: &str| format!("drill `{name}`");
    let mut bad = 0;
    for r in &rows {
        let line = match r.last_pass {
            Some(t) if now - t <= max_age => continue,
            Some(t) => format!(
                "stale: the last passing run of {} was {} ago, more than {}",
                what(&r.drill),
                fmt_secs(now - t),
                age_text(max_age)
            ),
            None => format!("missing: no passing run of {}", what(&r.drill)),
        };
        bad += 1;
        if text {
            println!("{line}");
        }
    }
    if rows.is_empty() {
        let what = drill.map_or("any drill".to_string(), what);
        if text {
            println!("missing: no passing run of {what} in {}", dir.display());
        }
        return ExitCode::Failed;
    }
    if bad > 0 {
        return ExitCode::Failed;
    }
    if text {
        let drills = plural(rows.len(), "drill");
        println!("ok: {drills} passed within {}", age_text(max_age));
    }
    ExitCode::Passed
}
