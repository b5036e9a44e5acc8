//! Running a backup tool (restic, borg) for a repository source: through the step's
//! process runner (`proc::Tool`: its own process group, killed on cancel or timeout),
//! with the repository's password kept out of argv and out of the environment's values;
//! reading its JSON, streaming its output, explaining its failure.
//!
//! How the password reaches the tool:
//! - restic: `RESTIC_PASSWORD_FILE` names a 0600 file in a private directory of the
//!   work directory, removed as soon as restic ends. (restic takes no descriptor; a
//!   file rather than `RESTIC_PASSWORD` keeps the password out of the environment that
//!   restic passes on to what it starts itself, such as `ssh` for an sftp repository.)
//! - borg: `BORG_PASSPHRASE_FD` names a pipe that borg inherits and reads to its end:
//!   the passphrase is never on disk nor in any environment.
//!
//! An S3 key pair of a restic `s3:` repository goes in the environment of restic's
//! process alone (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`: the only way restic takes
//! it besides a credentials file of its own), never in argv nor in a message.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::engines::Ctx;
use crate::proc::{Running, SecretFile, Tool};

/// Bytes of the pipe a tool writes its output into (where Linux allows it).
const PIPE: i32 = 1 << 20;
/// The largest JSON document read from a tool (`restic snapshots --json`, `borg list
/// --json`): about a hundred thousand snapshots. A tool printing more is stopped.
pub const MAX_JSON_BYTES: u64 = 64 << 20;
/// The longest line of a tool's JSON lines (`restic ls --json`: one node a line).
pub const MAX_LINE_BYTES: u64 = 1 << 20;
/// The end of a failed tool's stderr read to explain it.
const EXPLAINED_BYTES: u64 = 64 << 10;

/// How a tool is given its password: the environment variable that names it.
#[derive(Debug, Clone, Copy)]
pub enum Via {
    /// The variable names a 0600 file holding it.
    File(&'static str),
    /// The variable names an inherited pipe's descriptor, read to its end.
    Fd(&'static str),
}

/// A backup tool bound to one repository.
#[derive(Default)]
pub struct Cli {
    pub program: &'static str,
    /// Variables set for every call (never a secret's value).
    pub env: Vec<(&'static str, String)>,
    /// Inherited variables removed when the playbook gives the password (one of the
    /// user's shell would win over it).
    pub remove: &'static [&'static str],
    pub password: Option<(Via, String)>,
    /// Variables holding credentials (an S3 key pair), set for every call.
    pub credentials: Vec<(&'static str, String)>,
    /// Inherited variables removed from every call (a session token of other keys).
    pub unset: Vec<&'static str>,
    /// What a failure's output may say, and the hint added to the error when it does.
    pub hints: Vec<(&'static str, &'static str)>,
    /// State of the tool's own that it writes as it reads (see [`PrivateState`]).
    pub private_state: Option<PrivateState>,
}

/// A directory of state the tool keeps of each repository on this host and writes as it
/// reads (borg's `security`: where the repository was last seen, its manifest's time).
/// Each call gets a private copy, named by `var`, in its private directory: the tool
/// still checks what the host knows of the repository, and the host's own next run finds
/// its state as it left it.
pub struct PrivateState {
    pub var: &'static str,
    /// The host's directory; None, or one that does not exist, gives an empty copy.
    pub from: Option<PathBuf>,
}

/// The most entries of a tool's state directory copied for a call, and the largest file.
const STATE_ENTRIES: usize = 10_000;
const STATE_FILE_BYTES: u64 = 1 << 20;

/// Copies the directories and regular files under `from` (symlinks and others are left
/// out) into `to`, which must not exist, as private (0700) directories.
fn copy_state(from: Option<&Path>, to: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    let mut made = 0;
    let mut todo = vec![(from.map(Path::to_path_buf), to.to_path_buf())];
    while let Some((from, to)) = todo.pop() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&to)
            .with_context(|| format!("creating {}", to.display()))?;
        let Some(from) = from.filter(|f| f.is_dir()) else {
            continue;
        };
        let entries =
            std::fs::read_dir(&from).with_context(|| format!("reading {}", from.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", from.display()))?;
            made += 1;
            if made > STATE_ENTRIES {
                bail!(
                    "{} holds more than {STATE_ENTRIES} entries: not copied",
                    from.display()
                );
            }
            let (path, kind) = (entry.path(), entry.file_type()?);
            let dest = to.join(entry.file_name());
            if kind.is_dir() {
                todo.push((Some(path), dest));
            } else if kind.is_file() {
                let bytes = crate::limits::read_regular(&path, STATE_FILE_BYTES)
                    .with_context(|| format!("reading {}", path.display()))?;
                let mut file = crate::proc::secret::create_private(&dest)
                    .with_context(|| format!("creating {}", dest.display()))?;
                file.write_all(&bytes)
                    .with_context(|| format!("writing {}", dest.display()))?;
            }
        }
    }
    Ok(())
}

/// One call's expression and what must live until it ends.
struct Call {
    expr: duct::Expression,
    stderr: PathBuf,
    what: String,
    hints: Vec<(&'static str, &'static str)>,
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
            let mut explained = explain(&self.stderr);
            for (said, hint) in &self.hints {
                if explained.contains(said) && !explained.contains(hint) {
                    explained = format!("{explained}\n{hint}");
                }
            }
            bail!("{} {how}: {explained}", self.what);
        }
        Ok(())
    }
}

/// The last lines of a tool's stderr without the Go stack trace restic prints under some
/// errors (a frame is a function's line followed by a tab-indented file line), which
/// would push the message itself out of the tail.
fn explain(stderr: &Path) -> String {
    let text = crate::log::tail_file(stderr, usize::MAX, EXPLAINED_BYTES);
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
    fn call(&self, args: &[String], ctx: &Ctx<'_>) -> anyhow::Result<Call> {
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{}-", self.program))
            .tempdir_in(ctx.workdir)
            .context("creating a private directory in the work directory")?;
        let what = format!(
            "{} {}",
            self.program,
            args.first().map_or("", String::as_str)
        );
        let mut expr = duct::cmd(self.program, args).stdin_null();
        for (key, value) in self.env.iter().chain(&self.credentials) {
            expr = expr.env(key, value);
        }
        for key in &self.unset {
            expr = expr.env_remove(key);
        }
        if let Some(state) = &self.private_state {
            let copy = dir.path().join("state");
            copy_state(state.from.as_deref(), &copy)?;
            expr = expr.env(state.var, copy);
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
            expr: self.without_inherited_copies(expr),
            stderr: dir.path().join("stderr"),
            what,
            hints: self.hints.clone(),
            _dir: dir,
            _file: file,
            _pipe: pipe,
        })
    }

    /// `expr` without the inherited variables that hold the password or a key the
    /// playbook gives (the variable `[secrets]` read it from): the tool would pass them
    /// on to what it starts (restic's `ssh`), and borg's passphrase is in no environment.
    /// The variables this call sets itself are kept.
    fn without_inherited_copies(&self, mut expr: duct::Expression) -> duct::Expression {
        let given: Vec<&[u8]> = (self.password.iter().map(|(_, p)| p))
            .chain(self.credentials.iter().map(|(_, v)| v))
            .map(|v| v.as_bytes())
            .filter(|v| v.len() >= 3)
            .collect();
        let set_here = |key: &std::ffi::OsStr| {
            let set = self.env.iter().chain(&self.credentials).map(|(k, _)| *k);
            let password = self
                .password
                .iter()
                .map(|(Via::File(k) | Via::Fd(k), _)| *k);
            set.chain(password).any(|k| key == k)
        };
        for key in crate::proc::secret::vars_holding(&given) {
            if !set_here(&key) {
                expr = expr.env_remove(key);
            }
        }
        expr
    }

    /// Runs it to completion (in `cwd` when given), its output kept for the error.
    pub fn run(&self, args: &[String], cwd: Option<&Path>, ctx: &Ctx<'_>) -> anyhow::Result<()> {
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
        args: &[String],
        ctx: &Ctx<'_>,
        read: &mut dyn FnMut(&mut dyn std::io::Read) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let call = self.call(args, ctx)?;
        let (mut reader, writer) = os_pipe::pipe()?;
        // A large pipe keeps the tool writing while this end hashes and writes.
        // SAFETY: F_SETPIPE_SZ on a descriptor this function owns; a refusal keeps 64 KiB.
        unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE) };
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
    pub fn json(&self, args: &[String], ctx: &Ctx<'_>) -> anyhow::Result<serde_json::Value> {
        let mut bytes = Vec::new();
        self.read(args, ctx, &mut |out| {
            out.take(MAX_JSON_BYTES + 1).read_to_end(&mut bytes)?;
            self.within(args, bytes.len(), MAX_JSON_BYTES, "JSON")
        })?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{} {} printed no JSON", self.program, args[0]))
    }

    /// Fails when `len` bytes of its output (`what`) are past `limit` (reading then
    /// stops, and the tool is stopped).
    fn within(&self, args: &[String], len: usize, limit: u64, what: &str) -> anyhow::Result<()> {
        if len as u64 > limit {
            bail!(
                "{} {} printed {what} longer than {} (the limit); it was stopped",
                self.program,
                args[0],
                crate::limits::size_text(limit)
            );
        }
        Ok(())
    }

    /// Calls `each` with every JSON object of its output, one a line.
    pub fn json_lines(
        &self,
        args: &[String],
        ctx: &Ctx<'_>,
        each: &mut dyn FnMut(serde_json::Value),
    ) -> anyhow::Result<()> {
        self.read(args, ctx, &mut |out| {
            let mut out = BufReader::new(out);
            let mut line = Vec::new();
            loop {
                line.clear();
                (&mut out)
                    .take(MAX_LINE_BYTES + 1)
                    .read_until(b'\n', &mut line)?;
                if line.is_empty() {
                    return Ok(());
                }
                self.within(args, line.len(), MAX_LINE_BYTES, "a line")?;
                if let Ok(value) = serde_json::from_slice(&line) {
                    each(value);
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_tools_state_is_copied_whole_but_for_links_and_a_missing_one_is_empty() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let (host, copy) = (dir.path().join("security"), dir.path().join("copy"));
        std::fs::create_dir_all(host.join("repo-id")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", host.join("repo-id/link")).unwrap();
        std::fs::write(host.join("repo-id/location"), "/srv/repo").unwrap();
        copy_state(Some(&host), &copy).unwrap();
        let location = std::fs::read_to_string(copy.join("repo-id/location")).unwrap();
        assert_eq!(location, "/srv/repo");
        assert!(!copy.join("repo-id/link").exists());
        let mode = std::fs::metadata(copy.join("repo-id"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let empty = dir.path().join("empty");
        copy_state(Some(&dir.path().join("none")), &empty).unwrap();
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    }
}
