//! Speed and memory against the standard tools, measured side by side in one run.
//!
//!     SIZE_MB=1024 cargo bench --bench speed      (default SIZE_MB=64, RUNS=3)
//!
//! Ours are step durations taken from the drill record (the work itself, without process
//! start-up); theirs are wall times of the standard command. Peak memory is the child's
//! max RSS from wait4(2). A ratio below 1 means restore-drill is faster.

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_restore-drill");

struct Measured {
    wall: Duration,
    max_rss_kib: i64,
}

/// Runs a command, returning its wall time and peak memory.
// The child is reaped by wait4(2), which also gives its rusage; clippy cannot see that.
#[allow(clippy::zombie_processes)]
fn measure(cmd: &mut Command) -> Measured {
    let start = Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id() as i32;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; the pointers are to live locals.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(rc, pid, "wait4 failed");
    let status = std::process::ExitStatus::from_raw(status);
    if !status.success() {
        let mut stderr = String::new();
        use std::io::Read as _;
        let _ = child.stderr.unwrap().read_to_string(&mut stderr);
        panic!("{cmd:?} failed: {status}\n{stderr}");
    }
    Measured {
        wall,
        max_rss_kib: usage.ru_maxrss,
    }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Runs a one-step playbook and returns (duration of step `id`, peak RSS of the run, wall).
fn ours(dir: &Path, name: &str, toml: &str, id: &str) -> (f64, i64, f64) {
    let playbook = dir.join(format!("{name}.toml"));
    std::fs::write(&playbook, toml).unwrap();
    let artifacts = dir.join(format!("artifacts-{name}"));
    let _ = std::fs::remove_dir_all(&artifacts);
    let m = measure(
        Command::new(BIN)
            .arg("run")
            .arg(&playbook)
            .arg("--quiet")
            .arg("--artifacts")
            .arg(&artifacts),
    );
    let json = std::fs::read_dir(&artifacts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let step = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap();
    assert_eq!(step["status"], "passed", "{step}");
    (
        step["duration_s"].as_f64().unwrap(),
        m.max_rss_kib,
        m.wall.as_secs_f64(),
    )
}

/// The two shapes of database the integrity check is measured on.
#[derive(Clone, Copy)]
enum Shape {
    /// Rows of ~500 bytes of incompressible text, one small index per table: checking is
    /// mostly walking the b-trees (`integrity_check` about 2.5× `quick_check`).
    Wide,
    /// Narrow rows with three secondary indexes per table, like an operations database:
    /// checking is mostly looking every row up in every index (`integrity_check` 20-30×
    /// `quick_check`, the proportions of the reference figures, 30 s vs 1.3 s).
    Indexed,
}

fn make_database(path: &Path, size_mb: u64, shape: Shape) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        .unwrap();
    // Four tables, about size_mb in all.
    for t in 0..4 {
        let sql = match shape {
            Shape::Wide => format!(
                "CREATE TABLE t{t} (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, payload TEXT NOT NULL);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
                 INSERT INTO t{t} SELECT i, abs(random()) % 100000, hex(randomblob(240)) FROM n;
                 CREATE INDEX t{t}_k ON t{t}(k);",
                rows = size_mb * 1024 * 1024 / 4 / 520
            ),
            Shape::Indexed => format!(
                "CREATE TABLE t{t} (id INTEGER PRIMARY KEY, a INTEGER NOT NULL, b TEXT NOT NULL, c INTEGER, payload TEXT);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
                 INSERT INTO t{t} SELECT i, abs(random()) % 1000000, hex(randomblob(8)), abs(random()) % 1000, hex(randomblob(30)) FROM n;
                 CREATE INDEX t{t}_a ON t{t}(a); CREATE INDEX t{t}_b ON t{t}(b); CREATE INDEX t{t}_ca ON t{t}(c, a);",
                rows = size_mb * 1024 * 1024 / 4 / 147
            ),
        };
        conn.execute_batch(&sql).unwrap();
    }
}

struct Row {
    what: &'static str,
    ours: f64,
    theirs: Option<(f64, &'static str)>,
    rss_kib: i64,
    target: &'static str,
}

fn main() {
    let size_mb: u64 = std::env::var("SIZE_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let tmp =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let dir = tmp.path();
    let db = dir.join("bench.db");
    eprintln!(
        "generating a {size_mb} MiB SQLite database in {} ...",
        dir.display()
    );
    make_database(&db, size_mb, Shape::Wide);
    let bytes = std::fs::metadata(&db).unwrap().len() as f64;
    let db_s = db.display().to_string();
    let mut rows = Vec::new();

    // backup vs `sqlite3 SRC ".backup DST"`: into the work directory, as drills do (not
    // synced: it is thrown away), and into a kept file (synced, like sqlite3 does).
    let backup_toml = |out: &str| {
        format!(
            "version = 1\n[drill]\nname = \"bench\"\n[[steps]]\nid = \"b\"\nkind = \"backup\"\nengine = \"sqlite\"\nsource = \"{db_s}\"\noutput = \"{out}\"\n"
        )
    };
    let mut theirs = Vec::new();
    if have("sqlite3") {
        for i in 0..runs {
            let copy = dir.join(format!("theirs-{i}.db"));
            theirs.push(
                measure(
                    Command::new("sqlite3")
                        .arg(&db)
                        .arg(format!(".backup '{}'", copy.display())),
                )
                .wall
                .as_secs_f64(),
            );
            std::fs::remove_file(&copy).unwrap();
        }
    }
    let theirs = (!theirs.is_empty()).then(|| (median(theirs), "sqlite3 .backup"));
    for (what, durable) in [("backup", false), ("backup, kept", true)] {
        let (mut o, mut rss) = (Vec::new(), 0);
        for i in 0..runs {
            let out = dir.join(format!("ours-{i}.db"));
            let target = if durable {
                out.display().to_string()
            } else {
                "{{ drill.workdir }}/b.db".into()
            };
            let (d, r, _) = ours(dir, "backup", &backup_toml(&target), "b");
            o.push(d);
            rss = rss.max(r);
            let _ = std::fs::remove_file(&out);
        }
        rows.push(Row {
            what,
            ours: median(o),
            theirs,
            rss_kib: rss,
            target: if durable {
                "(synced, as sqlite3)"
            } else {
                "≤ 0.5 (2× faster)"
            },
        });
    }

    // checksums: sha256 vs sha256sum, blake3 vs b3sum
    for (algo, tool, target) in [
        ("sha256", "sha256sum", "≤ 0.33 (3× faster)"),
        ("blake3", "b3sum", "≤ 1.1"),
    ] {
        let toml = format!(
            "version = 1\n[drill]\nname = \"bench\"\n[[steps]]\nid = \"c\"\nkind = \"checksum\"\nalgorithm = \"{algo}\"\nfiles = [\"{db_s}\"]\nmanifest = \"{}/SUMS-{algo}\"\n",
            dir.display()
        );
        let (mut o, mut t, mut rss) = (Vec::new(), Vec::new(), 0);
        for _ in 0..runs {
            let (d, r, _) = ours(dir, algo, &toml, "c");
            o.push(d);
            rss = rss.max(r);
            if have(tool) {
                t.push(measure(Command::new(tool).arg(&db)).wall.as_secs_f64());
            }
        }
        rows.push(Row {
            what: if algo == "sha256" { "sha256" } else { "blake3" },
            ours: median(o),
            theirs: (!t.is_empty()).then(|| (median(t), tool)),
            rss_kib: rss,
            target,
        });
    }

    // integrity: parallel per-table integrity_check vs the single-threaded pragma, on both
    // shapes of database; quick_check (one pass, nothing to parallelise) on the wide one
    let indexed = dir.join("indexed.db");
    eprintln!("generating a {size_mb} MiB indexed SQLite database ...");
    make_database(&indexed, size_mb, Shape::Indexed);
    let integrity = |db: &Path, quick: bool| {
        format!(
            "version = 1\n[drill]\nname = \"bench\"\n[[steps]]\nid = \"i\"\nkind = \"sql\"\nengine = \"sqlite\"\ndatabase = \"{}\"\n[[steps.checks]]\nname = \"integrity\"\nbuiltin = \"integrity\"\nquick = {quick}\n",
            db.display()
        )
    };
    for (db, quick, what, target) in [
        (&db, false, "integrity, wide rows", "≤ 0.6"),
        (&indexed, false, "integrity, indexed", "≤ 0.6"),
        (&db, true, "quick_check", "≈ 1"),
    ] {
        let (pragma, tool) = if quick {
            ("PRAGMA quick_check", "sqlite3 quick_check")
        } else {
            ("PRAGMA integrity_check", "sqlite3 integrity_check")
        };
        let (mut o, mut t, mut rss) = (Vec::new(), Vec::new(), 0);
        for _ in 0..runs {
            let (d, r, _) = ours(dir, "integrity", &integrity(db, quick), "i");
            o.push(d);
            rss = rss.max(r);
            if have("sqlite3") {
                t.push(
                    measure(Command::new("sqlite3").arg(db).arg(pragma))
                        .wall
                        .as_secs_f64(),
                );
            }
        }
        rows.push(Row {
            what,
            ours: median(o),
            theirs: (!t.is_empty()).then(|| (median(t), tool)),
            rss_kib: rss,
            target,
        });
    }

    // a no-op drill: the runner's own cost
    let noop = "version = 1\n[drill]\nname = \"bench\"\n[[steps]]\nid = \"w\"\nkind = \"wait\"\nduration = \"0s\"\n";
    let (mut walls, mut rss) = (Vec::new(), 0);
    for _ in 0..runs.max(5) {
        let (_, r, wall) = ours(dir, "noop", noop, "w");
        walls.push(wall);
        rss = rss.max(r);
    }
    let noop_wall = median(walls);

    println!(
        "\nrestore-drill speed, {} MiB SQLite database ({} bytes), median of {runs} runs, {} cores",
        size_mb,
        bytes as u64,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<22} {:>10} {:>10} {:>8}  {:<24} {:>10}  target",
        "step", "ours", "theirs", "ratio", "standard tool", "peak RSS"
    );
    for r in &rows {
        let (theirs, ratio, tool) = match r.theirs {
            Some((t, tool)) => (format!("{t:.3}s"), format!("{:.2}", r.ours / t), tool),
            None => ("-".into(), "-".into(), "(not installed)"),
        };
        println!(
            "{:<22} {:>9.3}s {:>10} {:>8}  {:<24} {:>7} MiB  {}",
            r.what,
            r.ours,
            theirs,
            ratio,
            tool,
            r.rss_kib / 1024,
            r.target,
        );
    }
    println!(
        "{:<22} {:>8.1}ms {:>10} {:>8}  {:<24} {:>7} MiB  < 10 ms",
        "no-op drill",
        noop_wall * 1000.0,
        "",
        "",
        "(whole process)",
        rss / 1024
    );
}
