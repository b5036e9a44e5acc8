//! What the repository sources (restic, borg) share: running the backup tool through the
//! step's process runner (`proc::Tool`: its own process group, killed on cancel or
//! timeout), with the repository's password kept out of argv and out of the environment's
//! values, reading its JSON, streaming one file's bytes into a [`Download`], restoring a
//! tree into a new directory.
//!
//! How the password reaches the tool:
//! - restic: `RESTIC_PASSWORD_FILE` names a 0600 file in a private directory of the
//!   work directory, removed as soon as restic ends. (restic takes no descriptor; a
//!   file rather than `RESTIC_PASSWORD` keeps the password out of the environment that
//!   restic passes on to what it starts itself, such as `ssh` for an sftp repository.)
//! - borg: `BORG_PASSPHRASE_FD` names a pipe that borg inherits and reads to its end:
//!   the passphrase is never on disk nor in any environment.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use super::download::{Download, Expect};
use super::{Fetched, Point};
use crate::engines::Ctx;
use crate::proc::{Running, SecretFile, Tool};

/// How a tool is given its password: the environment variable that names it.
#[derive(Debug, Clone, Copy)]
pub enum Via {
    /// The variable names a 0600 file holding it.
    File(&'static str),
    /// The variable names an inherited pipe's descriptor, read to its end.
    Fd(&'static str),
}

/// A backup tool bound to one repository.
pub struct Cli {
    pub program: &'static str,
    /// Variables set for every call (never a secret's value).
    pub env: Vec<(&'static str, String)>,
    /// Inherited variables removed when the playbook gives the password (one of the
    /// user's shell would win over it).
    pub remove: &'static [&'static str],
    pub password: Option<(Via, String)>,
}

/// One call's expression and what must live until it ends.
struct Call {
    expr: duct::Expression,
    stderr: PathBuf,
    what: String,
    _dir: tempfile::TempDir,
    _file: Option<SecretFile>,
    _pipe: Option<os_pipe::PipeReader>,
}

impl Call {
    /// Waits for the tool; fails when the step was cancelled or the tool failed, with
    /// what it printed (see [`explain`]).
    fn wait(&self, running: Running<'_>, ctx: &Ctx<'_>) -> anyhow::Result<()> {
        let status = running.finish()?;
        if ctx.cancel.is_cancelled() {
            bail!("{} was stopped (cancelled)", self.what);
        }
        if !status.success() {
            let how = status.code().map_or_else(
                || "was killed by a signal".to_string(),
                |c| format!("exited with {c}"),
            );
            bail!("{} {how}: {}", self.what, explain(&self.stderr));
        }
        Ok(())
    }
}

/// The last lines of a tool's stderr without the Go stack trace restic prints under some
/// errors (a frame is a function's line followed by a tab-indented file line), which
/// would push the message itself out of the tail.
fn explain(stderr: &Path) -> String {
    let text = std::fs::read_to_string(stderr).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let frame = |i: usize| lines.get(i).is_some_and(|l| l.starts_with('\t'));
    let kept: Vec<&str> = (0..lines.len())
        .filter(|i| !frame(*i) && !frame(i + 1) && !lines[*i].trim().is_empty())
        .map(|i| lines[i])
        .collect();
    match kept.len() {
        0 => "(no output)".into(),
        n => kept[n.saturating_sub(15)..].join("\n"),
    }
}

impl Cli {
    fn call(&self, args: &[&str], ctx: &Ctx<'_>) -> anyhow::Result<Call> {
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{}-", self.program))
            .tempdir_in(ctx.workdir)
            .context("creating a private directory in the work directory")?;
        let what = format!("{} {}", self.program, args.first().unwrap_or(&""));
        let mut expr = duct::cmd(self.program, args).stdin_null();
        for (key, value) in &self.env {
            expr = expr.env(key, value);
        }
        let (mut file, mut pipe) = (None, None);
        if let Some((via, password)) = &self.password {
            let (Via::File(var) | Via::Fd(var)) = *via;
            // duct applies the outer (later) settings first: a removal must not be the
            // password's own variable.
            for key in self.remove.iter().filter(|k| **k != var) {
                expr = expr.env_remove(key);
            }
            match via {
                Via::File(var) => {
                    let secret = SecretFile::create(&dir.path().join("password"), password)?;
                    expr = expr.env(var, secret.path());
                    file = Some(secret);
                }
                Via::Fd(var) => {
                    let (reader, mut writer) = os_pipe::pipe()?;
                    writer.write_all(password.as_bytes())?;
                    drop(writer);
                    let fd = reader.as_raw_fd();
                    expr = expr.env(var, fd.to_string()).before_spawn(move |cmd| {
                        // SAFETY: fcntl is async-signal-safe; it only clears close-on-exec
                        // on the pipe's descriptor in the child.
                        unsafe {
                            cmd.pre_exec(move || match libc::fcntl(fd, libc::F_SETFD, 0) {
                                -1 => Err(std::io::Error::last_os_error()),
                                _ => Ok(()),
                            })
                        };
                        Ok(())
                    });
                    pipe = Some(reader);
                }
            }
        }
        Ok(Call {
            expr,
            stderr: dir.path().join("stderr"),
            what,
            _dir: dir,
            _file: file,
            _pipe: pipe,
        })
    }

    /// Runs it to completion (in `cwd` when given), its output kept for the error.
    pub fn run(&self, args: &[&str], cwd: Option<&Path>, ctx: &Ctx<'_>) -> anyhow::Result<()> {
        let call = self.call(args, ctx)?;
        let expr = match cwd {
            Some(dir) => call.expr.dir(dir),
            None => call.expr.clone(),
        };
        let running = Tool::new(expr, call.what.clone())
            .logged(&call.stderr)
            .start(ctx.cancel)?;
        call.wait(running, ctx)
    }

    /// Runs it and hands its standard output to `read` as it comes; fails when either
    /// fails (the tool with the tail of its stderr).
    pub fn read(
        &self,
        args: &[&str],
        ctx: &Ctx<'_>,
        read: &mut dyn FnMut(&mut dyn std::io::Read) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let call = self.call(args, ctx)?;
        let (mut reader, writer) = os_pipe::pipe()?;
        let expr = call.expr.clone().stdout_file(writer);
        let running = Tool::new(expr, call.what.clone())
            .stderr_to(&call.stderr)
            .start(ctx.cancel)?;
        if let Err(e) = read(&mut reader) {
            running.kill();
            return Err(e);
        }
        call.wait(running, ctx)
    }

    /// Its standard output parsed as one JSON document.
    pub fn json(&self, args: &[&str], ctx: &Ctx<'_>) -> anyhow::Result<serde_json::Value> {
        let mut text = String::new();
        self.read(args, ctx, &mut |out| {
            Ok(out.read_to_string(&mut text).map(drop)?)
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} {} printed no JSON", self.program, args[0]))
    }

    /// Calls `each` with every JSON object of its output, one a line.
    pub fn json_lines(
        &self,
        args: &[&str],
        ctx: &Ctx<'_>,
        each: &mut dyn FnMut(serde_json::Value),
    ) -> anyhow::Result<()> {
        self.read(args, ctx, &mut |out| {
            for line in BufReader::new(out).lines() {
                let line = line?;
                if let Ok(value) = serde_json::from_str(&line) {
                    each(value);
                }
            }
            Ok(())
        })
    }

    /// Streams its standard output into `download` (`total` bytes expected).
    pub fn stream(
        &self,
        args: &[&str],
        download: &mut Download,
        total: u64,
        ctx: &Ctx<'_>,
    ) -> anyhow::Result<()> {
        self.read(args, ctx, &mut |out| download.copy_from(out, total, ctx))
    }
}

/// What restic and borg each do their own way.
pub trait Repository {
    /// How a snapshot is named in messages (`snapshot 3afd7e75 of /srv/restic`).
    fn snapshot(&self, point: &Point) -> String;
    /// Checks the repository (`check = true`).
    fn check(&self, ctx: &Ctx<'_>) -> anyhow::Result<()>;
    /// Lists what the snapshot holds of `paths` (all of it without any).
    fn entries(
        &self,
        point: &Point,
        paths: &[String],
        ctx: &Ctx<'_>,
        each: &mut dyn FnMut(Entry),
    ) -> anyhow::Result<()>;
    /// Streams one regular file of the snapshot into `download`.
    fn dump(
        &self,
        point: &Point,
        file: &Entry,
        download: &mut Download,
        ctx: &Ctx<'_>,
    ) -> anyhow::Result<()>;
    /// Restores `paths` (all without any) into `dir`, a new directory.
    fn restore(
        &self,
        point: &Point,
        paths: &[String],
        dir: &Path,
        ctx: &Ctx<'_>,
    ) -> anyhow::Result<()>;
}

/// Brings `paths` of the snapshot `point` to `output`: one regular file is streamed
/// (verified against its listed size, hashed on the way); anything else is restored as
/// a tree into the directory `output` (its files counted and added up against the
/// listing).
pub fn fetch(
    repo: &dyn Repository,
    point: &Point,
    paths: &[String],
    check: bool,
    output: Option<&Path>,
    ctx: &Ctx<'_>,
) -> anyhow::Result<Fetched> {
    let snapshot = repo.snapshot(point);
    let output = output.with_context(|| {
        format!("`output` is required for a repository: where {snapshot} is restored")
    })?;
    if check {
        repo.check(ctx)?;
        ctx.log("the repository check found no error");
    }
    let mut listed = Listed::new(paths);
    repo.entries(point, paths, ctx, &mut |entry| listed.add(paths, entry))
        .with_context(|| format!("listing {snapshot}"))?;
    if let Some(file) = listed.single_file(paths, &snapshot)? {
        let mut download = Download::start(&point.url, output, false, ctx)?;
        repo.dump(point, &file, &mut download, ctx)
            .with_context(|| format!("reading `{}` of {snapshot}", file.path))?;
        let expect = Expect {
            sizes: vec![(file.size, "the snapshot's listing")],
            ..Expect::default()
        };
        return download.finish(&expect, ctx);
    }
    let bytes = restore_tree(output, &listed, ctx, &mut |dir| {
        repo.restore(point, paths, dir, ctx)
            .with_context(|| format!("restoring {snapshot}"))
    })?;
    Ok(Fetched {
        path: output.to_path_buf(),
        bytes,
        sha256: None,
        verified: vec!["file count and size".into()],
    })
}

/// A file or directory of a snapshot, as its tool lists it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub is_file: bool,
    pub size: u64,
}

/// What a listing of the wanted `paths` says: the entry of each, and the regular files
/// it holds (count, bytes). An empty `wanted` means the whole snapshot.
#[derive(Debug, Default)]
pub struct Listed {
    pub found: Vec<Option<Entry>>,
    pub files: u64,
    pub bytes: u64,
}

impl Listed {
    pub fn new(wanted: &[String]) -> Self {
        Self {
            found: vec![None; wanted.len()],
            ..Self::default()
        }
    }

    /// Takes one listed entry into account; paths compare without a trailing `/`.
    pub fn add(&mut self, wanted: &[String], entry: Entry) {
        let path = entry.path.trim_end_matches('/');
        let mut inside = wanted.is_empty();
        for (want, found) in wanted.iter().zip(self.found.iter_mut()) {
            let want = want.trim_end_matches('/');
            if path == want {
                *found = Some(entry.clone());
                inside = true;
            } else if path.strip_prefix(want).is_some_and(|r| r.starts_with('/')) {
                inside = true;
            }
        }
        if inside && entry.is_file {
            self.files += 1;
            self.bytes += entry.size;
        }
    }

    /// The single regular file to stream, when one path was asked for and it is one;
    /// fails naming a path the snapshot does not hold.
    pub fn single_file(&self, wanted: &[String], snapshot: &str) -> anyhow::Result<Option<Entry>> {
        for (want, found) in wanted.iter().zip(&self.found) {
            if found.is_none() {
                bail!("`{want}` is not in {snapshot}");
            }
        }
        Ok(match self.found.as_slice() {
            [Some(entry)] if entry.is_file => Some(entry.clone()),
            _ => None,
        })
    }
}

/// Restores a tree into `output`, a directory: `restore` fills a new directory beside
/// it, whose regular files must add up to `listed`; then it takes `output`'s place (an
/// earlier one is replaced). A failure leaves no `output`.
pub fn restore_tree(
    output: &Path,
    listed: &Listed,
    ctx: &Ctx<'_>,
    restore: &mut dyn FnMut(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let output = ctx.sources.check("output", output)?;
    let parent = output
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".restore-drill-tree.")
        .tempdir_in(parent)
        .with_context(|| format!("creating a directory in {}", parent.display()))?;
    restore(tmp.path())?;
    let (files, bytes) = tree_size(tmp.path())?;
    if (files, bytes) != (listed.files, listed.bytes) {
        bail!(
            "the restored tree has {files} files ({bytes} bytes), the snapshot lists {} ({} bytes)",
            listed.files,
            listed.bytes
        );
    }
    if output.is_dir() {
        let old = tempfile::Builder::new()
            .prefix(".restore-drill-old.")
            .tempdir_in(parent)?;
        std::fs::rename(&output, old.path().join("old"))
            .with_context(|| format!("moving the earlier {} aside", output.display()))?;
    }
    let tmp = tmp.keep();
    std::fs::rename(&tmp, &output).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp);
        anyhow::anyhow!("renaming the restored tree to {}: {e}", output.display())
    })?;
    Ok(bytes)
}

/// Regular files under `dir` and their bytes.
fn tree_size(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                todo.push(entry.path());
            } else if kind.is_file() {
                files += 1;
                bytes += entry.metadata()?.len();
            }
        }
    }
    Ok((files, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, is_file: bool, size: u64) -> Entry {
        Entry {
            path: path.into(),
            is_file,
            size,
        }
    }

    #[test]
    fn a_go_stack_trace_is_left_out_of_the_explanation() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stderr");
        let text = "decrypting blob 12 failed: ciphertext verification failed\nmain.runLs\n\tcmd_ls.go:223\nmain.main\n\tmain.go:98\nFatal: x\n";
        std::fs::write(&file, text).unwrap();
        assert_eq!(
            explain(&file),
            "decrypting blob 12 failed: ciphertext verification failed\nFatal: x"
        );
        assert_eq!(explain(&dir.path().join("none")), "(no output)");
    }

    #[test]
    fn a_listing_finds_the_wanted_paths_and_adds_up_what_they_hold() {
        let wanted = vec!["/data/sub/".to_string(), "/data/a.txt".to_string()];
        let mut listed = Listed::new(&wanted);
        for e in [
            entry("/data", false, 0),
            entry("/data/a.txt", true, 6),
            entry("/data/sub", false, 0),
            entry("/data/sub/b.txt", true, 3),
            entry("/data/subway.txt", true, 100),
        ] {
            listed.add(&wanted, e);
        }
        assert_eq!((listed.files, listed.bytes), (2, 9));
        assert!(listed.single_file(&wanted, "x").unwrap().is_none());
        let one = vec!["/data/a.txt".to_string()];
        let mut listed = Listed::new(&one);
        listed.add(&one, entry("/data/a.txt", true, 6));
        assert_eq!(listed.single_file(&one, "x").unwrap().unwrap().size, 6);
        let missing = vec!["/nope".to_string()];
        let err = Listed::new(&missing)
            .single_file(&missing, "snapshot 1234")
            .unwrap_err();
        assert_eq!(err.to_string(), "`/nope` is not in snapshot 1234");
    }
}
