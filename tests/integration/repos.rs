//! `locate` from restic and borg repositories that the tests create with the real tools
//! (Debian's `restic`, `borgbackup`), in a temporary directory: the good restore (one
//! file streamed, a tree restored), the snapshot chosen by id or name, the retention
//! audit over snapshots, and the failures (a wrong password, a missing path, a damaged
//! repository, with and without `check`). Every test hashes the repository before and
//! after: a drill never writes to it.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest as _;

use super::*;

const HOUR: i64 = 3600;
pub const PASSWORD: &str = "correct-horse-battery-staple";
const WRONG: &str = "wrong-horse-battery-staple";

#[derive(Clone, Copy, PartialEq)]
pub enum Tool {
    Restic,
    Borg,
}

/// A repository holding three snapshots of `data/` (5 h, 4 h and 1 h old), whose
/// `cortex.db` differs in each.
pub struct Repo {
    pub tool: Tool,
    pub dir: tempfile::TempDir,
    /// (id, RFC 3339 time, cortex.db) of each snapshot, oldest first.
    pub snapshots: Vec<(String, String, Vec<u8>)>,
}

impl Tool {
    pub fn program(self) -> &'static str {
        match self {
            Tool::Restic => "restic",
            Tool::Borg => "borg",
        }
    }

    /// The repository's table in a step, the password from the secret `repo_pw`.
    pub fn table(self, repo: &Path) -> String {
        let repo = repo.display();
        match self {
            Tool::Restic => {
                format!(
                    "restic = {{ repository = \"{repo}\", password = \"{{{{ secrets.repo_pw }}}}\" }}"
                )
            }
            Tool::Borg => {
                format!(
                    "borg = {{ repository = \"{repo}\", passphrase = \"{{{{ secrets.repo_pw }}}}\" }}"
                )
            }
        }
    }

    /// How a path of `data/` is named inside a snapshot.
    pub fn path(self, rel: &str) -> String {
        match self {
            Tool::Restic => format!("/data/{rel}"),
            Tool::Borg => format!("data/{rel}"),
        }
    }

    pub fn present(self) -> bool {
        installed(self.program())
    }

    /// The tool as the tests run it: password in the environment, UTC.
    pub fn cmd(self, cwd: &Path) -> Command {
        let mut cmd = Command::new(self.program());
        cmd.current_dir(cwd).env("TZ", "UTC");
        cmd.env("RESTIC_PASSWORD", PASSWORD)
            .env("BORG_PASSPHRASE", PASSWORD);
        cmd
    }
}

/// What `cmd` prints; it must succeed.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Repo {
    /// None (the test skips) where the tool is missing.
    pub fn new(tool: Tool) -> Option<Self> {
        if !tool.present() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let repo_arg = repo.to_str().unwrap();
        match tool {
            Tool::Restic => ok(tool.cmd(dir.path()).args(["init", "-r", repo_arg])),
            Tool::Borg => ok(tool
                .cmd(dir.path())
                .args(["init", "-e", "repokey", repo_arg])),
        };
        let now = jiff::Timestamp::now().as_second();
        let mut snapshots = Vec::new();
        for (i, age) in [5 * HOUR, 4 * HOUR, HOUR].into_iter().enumerate() {
            let time = jiff::Timestamp::from_second(now - age).unwrap();
            let stamp = time.strftime("%Y-%m-%d %H:%M:%S").to_string();
            let db = noise(300_000, i as u64 + 1);
            std::fs::create_dir_all(dir.path().join("data/sub")).unwrap();
            std::fs::write(dir.path().join("data/cortex.db"), &db).unwrap();
            let gz = std::fs::File::create(dir.path().join("data/cortex.db.gz")).unwrap();
            let mut gz = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &db).unwrap();
            gz.finish().unwrap();
            std::fs::write(dir.path().join("data/sub/notes.txt"), format!("run {i}\n")).unwrap();
            let name = format!("nightly-{i}");
            match tool {
                Tool::Restic => ok(tool
                    .cmd(dir.path())
                    .args(["backup", "-q", "-r", repo_arg, "--time", &stamp, "data"])),
                Tool::Borg => ok(tool.cmd(dir.path()).args([
                    "create",
                    "--timestamp",
                    &stamp.replace(' ', "T"),
                    &format!("{repo_arg}::{name}"),
                    "data",
                ])),
            };
            snapshots.push((String::new(), time.to_string(), db));
        }
        let mut made = Self {
            tool,
            dir,
            snapshots,
        };
        let ids = made.ids();
        for (snapshot, id) in made.snapshots.iter_mut().zip(ids) {
            snapshot.0 = id;
        }
        Some(made)
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// The ids of the snapshots, oldest first, as the tool lists them.
    pub fn ids(&self) -> Vec<String> {
        let repo = self.path();
        let repo = repo.to_str().unwrap();
        let (listing, list) = match self.tool {
            Tool::Restic => {
                let out =
                    ok(self
                        .tool
                        .cmd(self.dir.path())
                        .args(["snapshots", "--json", "-r", repo]));
                (
                    serde_json::from_str::<serde_json::Value>(&out).unwrap(),
                    None,
                )
            }
            Tool::Borg => {
                let out = ok(self
                    .tool
                    .cmd(self.dir.path())
                    .args(["list", "--json", repo]));
                (serde_json::from_str(&out).unwrap(), Some("archives"))
            }
        };
        let items = list
            .map_or(&listing, |l| &listing[l])
            .as_array()
            .unwrap()
            .clone();
        let mut items: Vec<(String, String)> = items
            .iter()
            .map(|s| {
                (
                    s["time"].as_str().unwrap().to_string(),
                    s["id"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        items.sort();
        items.into_iter().map(|(_, id)| id).collect()
    }

    /// The sha256 of every file's name and contents: what must not change.
    pub fn hash(&self) -> String {
        let mut files = files_under(&self.path());
        files.sort();
        let mut hash = sha2::Sha256::new();
        for file in files {
            hash.update(file.to_string_lossy().as_bytes());
            hash.update(std::fs::read(file).unwrap());
        }
        format!("{:x}", hash.finalize())
    }

    /// A playbook locating `extra` (more step fields) with the password `repo_pw` of env
    /// `REPO_PW`.
    pub fn locate(&self, extra: &str) -> Playbook {
        pb("repos").secret("repo_pw", "REPO_PW").step(
            step("latest", "locate").fields(&format!("{}\n{extra}", self.tool.table(&self.path()))),
        )
    }

    pub fn run(&self, playbook: &Playbook, password: &str) -> Outcome {
        playbook.drill().env("REPO_PW", password).run()
    }

    /// Locates `cortex.db` of the newest snapshot into `out/cortex.db` (it must pass),
    /// with a stand-in for the tool first on PATH: `body(dir)` is its script (see
    /// [`stand_in`]), `dir` a directory for its marks.
    pub fn locate_stood_in(&self, body: impl FnOnce(&Path) -> String) -> Outcome {
        let file = self.tool.path("cortex.db");
        let fields = format!("paths = [\"{file}\"]\noutput = \"out/cortex.db\"");
        self.locate_stood_in_with(&fields, body)
    }

    /// Locates with the step fields `fields` (it must pass), with a stand-in for the tool
    /// first on PATH as in [`Repo::locate_stood_in`].
    pub fn locate_stood_in_with(
        &self,
        fields: &str,
        body: impl FnOnce(&Path) -> String,
    ) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        let path = stand_in(self.tool.program(), &body(dir.path()), dir.path());
        self.locate(fields)
            .drill()
            .env("REPO_PW", PASSWORD)
            .env("PATH", &path)
            .run()
            .expect_code(0)
    }

    /// Flips bytes in the repository's largest data file (restic: every pack).
    fn damage(&self) {
        let files = files_under(&self.path().join("data"))
            .into_iter()
            .map(|p| (std::fs::metadata(&p).unwrap().len(), p));
        // borg: every large segment, since the newest archive's chunks may live in older
        // ones (deduplicated); damaging the newest alone sometimes missed them.
        let damaged = files.filter(|(len, _)| match self.tool {
            Tool::Restic => true,
            Tool::Borg => *len > 10_000,
        });
        for (_, file) in damaged {
            // At a sixth and at five sixths: borg stores a snapshot's files in inode
            // order, so which of cortex.db and cortex.db.gz comes first in the segment
            // varies with what else the machine creates; one spot missed cortex.db.
            let mut bytes = std::fs::read(&file).unwrap();
            let last = bytes.len().saturating_sub(16);
            for at in [bytes.len() / 6, (bytes.len() * 5 / 6).min(last)] {
                for b in &mut bytes[at..at + 16] {
                    *b ^= 0xff;
                }
            }
            let mut perms = std::fs::metadata(&file).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(&file, perms).unwrap();
            std::fs::write(&file, bytes).unwrap();
        }
    }
}

/// Whether `program` is installed; a skip (or, where servers are required, a failure)
/// when it is not.
pub fn installed(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output();
    let present = found.is_ok_and(|o| o.status.success());
    if !present {
        skip_or_fail(program, "the program is not installed");
    }
    present
}

/// A stand-in for `program` in `dir`: the shell script `body` runs (`$real` is the real
/// program), then the real program with the same arguments. The PATH that puts it first.
pub fn stand_in(program: &str, body: &str, dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap();
    let real = String::from_utf8(found.stdout).unwrap();
    let script = format!(
        "#!/bin/sh\nreal='{}'\n{body}exec \"$real\" \"$@\"\n",
        real.trim()
    );
    let wrapper = dir.join(program);
    std::fs::write(&wrapper, script).unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Every file under `dir`, at any depth.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            match path.is_dir() {
                true => todo.push(path),
                false => files.push(path),
            }
        }
    }
    files
}

/// `len` bytes that do not compress (xorshift from `seed`).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// The newest snapshot's cortex.db is streamed (its id, time and sha256 in the outputs),
/// an older one named by `snapshot` restores as a tree, `check = true` passes, a gzip
/// file in a snapshot decompresses on the way, and the repository is byte for byte what
/// it was.
fn good_restore(tool: Tool) {
    let Some(repo) = Repo::new(tool) else { return };
    let before = repo.hash();
    let file = repo.tool.path("cortex.db");
    let out = repo
        .run(
            &repo.locate(&format!(
                "paths = [\"{file}\"]\ncheck = true\noutput = \"out/cortex.db\""
            )),
            PASSWORD,
        )
        .expect_code(0);
    let (id, time, db) = &repo.snapshots[2];
    assert_eq!(out.output("latest", "snapshot_id"), id.as_str());
    let at: jiff::Timestamp = out
        .output("latest", "modified_at")
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(at, time.parse().unwrap());
    assert_eq!(out.output("latest", "candidates"), 3);
    assert_eq!(out.output("latest", "bytes"), db.len());
    assert_eq!(out.output("latest", "sha256"), sha256_hex(db));
    let age = out.output("latest", "age_s").as_f64().unwrap();
    assert!((3590.0..3700.0).contains(&age), "{age}");
    assert_eq!(
        std::fs::read(out.path().join("out/cortex.db")).unwrap(),
        *db
    );

    let (old_id, _, old_db) = &repo.snapshots[0];
    let name = match tool {
        Tool::Restic => old_id[..8].to_string(),
        Tool::Borg => "nightly-0".to_string(),
    };
    let tree = repo
        .run(
            &repo.locate(&format!(
                "snapshot = \"{name}\"\npaths = [\"{}\"]\noutput = \"out/tree\"",
                repo.tool.path("").trim_end_matches('/')
            )),
            PASSWORD,
        )
        .expect_code(0);
    assert_eq!(tree.output("latest", "snapshot_id"), old_id.as_str());
    let restored = tree.path().join("out/tree/data");
    assert_eq!(std::fs::read(restored.join("cortex.db")).unwrap(), *old_db);
    assert_eq!(
        std::fs::read_to_string(restored.join("sub/notes.txt")).unwrap(),
        "run 0\n"
    );

    let gz = repo.tool.path("cortex.db.gz");
    let fields = format!("paths = [\"{gz}\"]\ndecompress = \"auto\"\noutput = \"out/cortex.db\"");
    let plain = repo.run(&repo.locate(&fields), PASSWORD).expect_code(0);
    assert_eq!(plain.output("latest", "sha256"), sha256_hex(db));
    assert_eq!(repo.hash(), before, "the drill wrote to the repository");
}

/// A gap of 3 h between the snapshots fails `expect_every = "90m"`, naming it.
fn audit_gap(tool: Tool) {
    let Some(repo) = Repo::new(tool) else { return };
    let fields = format!(
        "paths = [\"{}\"]\nexpect_every = \"90m\"\nwithin = \"1d\"\noutput = \"out/cortex.db\"",
        repo.tool.path("cortex.db")
    );
    let out = repo.run(&repo.locate(&fields), PASSWORD);
    out.step("latest")
        .failed_with("retention: a backup is expected every 90m, but no backup between");
    let gap = out.output("latest", "largest_gap_s").as_f64().unwrap();
    assert!(
        (3.0 * 3600.0 - 5.0..3.0 * 3600.0 + 5.0).contains(&gap),
        "{gap}"
    );
}

/// A wrong password fails saying so, and neither it nor the right one is anywhere a
/// person or another user sees: record, log, terminal, command lines.
fn wrong_password(tool: Tool) {
    let Some(repo) = Repo::new(tool) else { return };
    let before = repo.hash();
    let playbook = repo.locate("output = \"out/cortex.db\"");
    let (out, _) = playbook
        .drill()
        .env("REPO_PW", WRONG)
        .start()
        .watch_processes(WRONG, tool.program());
    let says = match tool {
        Tool::Restic => "wrong password",
        Tool::Borg => "passphrase supplied",
    };
    out.step("latest").failed_with(says);
    let everything = format!("{}{}{}{}", out.record(), out.log(), out.stdout, out.stderr);
    assert!(
        !everything.contains(WRONG),
        "the password leaked:\n{everything}"
    );
    assert!(!out.path().join("out/cortex.db").exists());
    assert_eq!(repo.hash(), before);
}

/// A path the snapshot does not hold fails naming it.
fn missing_path(tool: Tool) {
    let Some(repo) = Repo::new(tool) else { return };
    let missing = repo.tool.path("nope.db");
    let fields = format!("paths = [\"{missing}\"]\noutput = \"out/nope.db\"");
    let out = repo.run(&repo.locate(&fields), PASSWORD);
    out.step("latest")
        .failed_with(&format!("`{missing}` is not in"));
}

/// A damaged repository fails: with `check = true` in the check, without it in the read.
fn damaged(tool: Tool) {
    let Some(repo) = Repo::new(tool) else { return };
    repo.damage();
    let before = repo.hash();
    let file = format!(
        "paths = [\"{}\"]\noutput = \"out/cortex.db\"",
        repo.tool.path("cortex.db")
    );
    let checked = repo.run(&repo.locate(&format!("{file}\ncheck = true")), PASSWORD);
    checked.step("latest").failed_with(&format!(
        "`{} check` found a problem in {} repository {}",
        tool.program(),
        tool.program(),
        repo.path().display()
    ));
    let read = repo.run(&repo.locate(&file), PASSWORD);
    let says = match tool {
        Tool::Restic => "ciphertext verification failed",
        Tool::Borg => "Data integrity error",
    };
    read.step("latest").failed_with(says);
    assert!(!read.path().join("out/cortex.db").exists());
    assert_eq!(repo.hash(), before);
}

/// The wanted file is streamed while its listing runs, not after it: a stand-in tool
/// first on PATH lists (`restic ls`, `borg list --json-lines`) only once a dump or
/// extract of the same run has begun, and gives up after 20 s. (restic now lists a plain
/// file not at all, which this allows: `repos_newest.rs` proves that.)
fn streamed_while_listed(tool: Tool) {
    let Some(repo) = Repo::new(tool) else { return };
    let before = repo.hash();
    let out = repo.locate_stood_in(|dir| {
        let mark = dir.join("dumping");
        format!(
            "case \" $* \" in\n  *\" dump \"*|*\" extract \"*) touch '{mark}';;\n  *\" ls \"*|*\" --json-lines \"*) n=0\n    until [ -f '{mark}' ]; do n=$((n+1)); [ $n -gt 200 ] && {{ echo 'listed before any dump' >&2; exit 3; }}; sleep 0.1; done;;\nesac\n",
            mark = mark.display()
        )
    });
    let db = &repo.snapshots[2].2;
    assert_eq!(out.output("latest", "sha256"), sha256_hex(db));
    assert_eq!(
        std::fs::read(out.path().join("out/cortex.db")).unwrap(),
        *db
    );
    assert_eq!(repo.hash(), before, "the repository changed");
}

/// `decompress` stages the raw copy beside `output`: an `output` that leads into the
/// repository (through a symlink) is refused before anything is created there (the
/// staging folder, and `output`'s missing folder, were made in the repository first).
fn decoded_output_into_the_repository_is_refused_first(tool: Tool) {
    let Some(repo) = Repo::new(tool) else { return };
    let before = repo.hash();
    let gz = tool.path("cortex.db.gz");
    let fields =
        format!("paths = [\"{gz}\"]\ndecompress = \"gzip\"\noutput = \"into/drill/cortex.db\"");
    let drill = repo.locate(&fields).drill().env("REPO_PW", PASSWORD);
    std::os::unix::fs::symlink(repo.path(), drill.path().join("into")).unwrap();
    let out = drill.run().expect_code(1);
    let made: Vec<_> = std::fs::read_dir(repo.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n == "drill" || n.starts_with(".restore-drill"))
        .collect();
    assert!(made.is_empty(), "made in the repository: {made:?}");
    out.step("latest")
        .failed_with("refusing to write output into/drill/cortex.db");
    assert_eq!(repo.hash(), before, "the repository changed");
}

#[test]
fn restic_decoded_output_into_the_repository_is_refused_first() {
    decoded_output_into_the_repository_is_refused_first(Tool::Restic);
}

#[test]
fn borg_decoded_output_into_the_repository_is_refused_first() {
    decoded_output_into_the_repository_is_refused_first(Tool::Borg);
}

/// borg rebuilds a repository's index that is not its last commit's (while a backup is
/// written, or after one crashed) as it opens it, even with `--bypass-lock`, writing into
/// the repository: such a repository is refused, saying why, and left as it was.
#[test]
fn borg_a_repository_whose_index_is_not_its_last_commits_is_refused_and_left_alone() {
    let Some(repo) = Repo::new(Tool::Borg) else {
        return;
    };
    for entry in std::fs::read_dir(repo.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if ["index.", "hints.", "integrity."]
            .iter()
            .any(|p| name.starts_with(p))
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    let before = repo.hash();
    let file = Tool::Borg.path("cortex.db");
    let fields = format!("paths = [\"{file}\"]\noutput = \"out/cortex.db\"");
    let out = repo.run(&repo.locate(&fields), PASSWORD).expect_code(1);
    assert_eq!(repo.hash(), before, "borg wrote into the repository");
    out.step("latest")
        .failed_with("has no index, but its last commit is segment")
        .failed_with("borg would rebuild the index, writing into the repository");
}

#[test]
fn restic_streams_the_file_while_it_is_listed() {
    streamed_while_listed(Tool::Restic);
}

#[test]
fn borg_streams_the_file_while_it_is_listed() {
    streamed_while_listed(Tool::Borg);
}

#[test]
fn restic_locate_streams_a_file_restores_a_tree_and_never_writes_the_repository() {
    good_restore(Tool::Restic);
}

#[test]
fn borg_locate_streams_a_file_restores_a_tree_and_never_writes_the_repository() {
    good_restore(Tool::Borg);
}

#[test]
fn restic_snapshots_are_audited_for_gaps() {
    audit_gap(Tool::Restic);
}

#[test]
fn borg_archives_are_audited_for_gaps() {
    audit_gap(Tool::Borg);
}

#[test]
fn restic_wrong_password_fails_clearly_and_is_never_shown() {
    wrong_password(Tool::Restic);
}

#[test]
fn borg_wrong_passphrase_fails_clearly_and_is_never_shown() {
    wrong_password(Tool::Borg);
}

#[test]
fn restic_missing_path_fails_naming_it() {
    missing_path(Tool::Restic);
}

#[test]
fn borg_missing_path_fails_naming_it() {
    missing_path(Tool::Borg);
}

#[test]
fn restic_damaged_repository_fails_with_and_without_check() {
    damaged(Tool::Restic);
}

#[test]
fn borg_damaged_repository_fails_with_and_without_check() {
    damaged(Tool::Borg);
}

#[test]
fn a_repository_source_is_validated_like_any_field() {
    let refused = |fields: &str, says: &[&str]| {
        let toml = pb("t").step(step("latest", "locate").fields(fields)).toml();
        let out = Drill::new(&toml).validate().expect_code(2);
        for text in says {
            out.stderr_has(text);
        }
    };
    refused(
        "restic = { repository = \"/srv/r\", pasword = \"x\" }\noutput = \"o\"",
        &["unknown field `pasword`", "did you mean `password`?"],
    );
    refused(
        "glob = \"*.db\"\nborg = { repository = \"/srv/b\" }",
        &["takes one source, not `glob` and `borg`"],
    );
    refused(
        "paths = [\"/x\"]",
        &["needs one of `glob`, `restic`, `borg`"],
    );
    refused(
        "glob = \"*.db\"\ndecompress = \"zst\"",
        &["unknown value `zst`"],
    );
}

/// The shipped example: its setup makes a restic repository and a snapshot, and the drill
/// restores the database from there, its password never in the record.
#[test]
fn the_restic_playbook_runs_against_a_local_repository() {
    if !Tool::Restic.present() {
        return;
    }
    let out = Drill::new(include_str!("../../playbooks/restic.toml"))
        .env("RESTIC_DEMO_PASSWORD", PASSWORD)
        .run()
        .expect_code(0);
    out.step("latest").passed();
    assert_eq!(
        out.output("latest", "snapshot_id").as_str().unwrap().len(),
        64
    );
    out.check("dispatches are there").passed();
    assert!(!out.record().to_string().contains(PASSWORD));
}

/// A whole restic snapshot taken on this host: the paths it was taken of are the live
/// data (its `snapshot_paths`, with `snapshot_host`), so a later step writing inside
/// them is refused, as when `paths` names them.
#[test]
fn restic_what_a_snapshot_of_this_host_was_taken_of_is_a_source() {
    if let Some(repo) = Repo::new(Tool::Restic) {
        taken_of_this_host_is_a_source(&repo);
    }
}

/// The same for borg, whose listing of all archives does not say what each was taken
/// of: the chosen archive's host and the absolute paths its `borg create` was given are
/// read for it alone (a relative path left out, the directory it ran in unknown), its
/// name with pattern characters matched as itself.
#[test]
fn borg_what_an_archive_of_this_host_was_created_from_is_a_source() {
    let Some(repo) = Repo::new(Tool::Borg) else {
        return;
    };
    let live = repo.dir.path().join("data");
    let archive = format!("{}::live-[0]*?", repo.path().display());
    ok(Tool::Borg.cmd(repo.dir.path()).args([
        "create",
        "--exclude",
        "*.tmp",
        &archive,
        live.to_str().unwrap(),
        "data",
    ]));
    taken_of_this_host_is_a_source(&repo);
}

/// The newest snapshot of `repo`, whose live data is `data/` of its directory, located
/// whole; a backup written inside `data/` after it is refused naming it, and `data/` and
/// the repository are left as they were.
fn taken_of_this_host_is_a_source(repo: &Repo) {
    let live = repo.dir.path().join("data");
    let (before, repo_before) = (super::pitr::hash_tree(&live), repo.hash());
    let into_live = format!("{}/sub/app.db", live.display());
    let out = repo
        .locate("output = \"out/tree\"")
        .step(sqlite_backup("app.db", &at_run_time(&into_live)))
        .drill()
        .db("app.db", 5)
        .env("REPO_PW", PASSWORD)
        .run()
        .expect_code(1);
    out.step("latest").passed();
    let host = gethostname::gethostname();
    assert_eq!(
        out.output("latest", "snapshot_host"),
        host.to_str().unwrap()
    );
    assert_eq!(
        out.output("latest", "snapshot_paths"),
        serde_json::json!([live.display().to_string()])
    );
    out.step("backup")
        .failed_with(&format!("lies inside {}, a source", live.display()))
        .failed_with("what the snapshot step `latest` located was taken of");
    assert_eq!(
        super::pitr::hash_tree(&live),
        before,
        "the live data changed"
    );
    assert_eq!(repo.hash(), repo_before, "the repository changed");

    // The locate's own `output` inside the live data is refused before anything is
    // brought there (the snapshot's paths are known only once it is chosen).
    let restored = live.join("restored");
    let out = repo
        .locate(&format!("output = \"{}/tree\"", restored.display()))
        .drill()
        .env("REPO_PW", PASSWORD)
        .run()
        .expect_code(1);
    out.step("latest")
        .failed_with(&format!("lies inside {}, a source", live.display()))
        .failed_with("what the snapshot step `latest` locates was taken of");
    assert!(!restored.exists(), "the locate wrote into the live data");
    assert_eq!(
        super::pitr::hash_tree(&live),
        before,
        "the live data changed"
    );
    assert_eq!(repo.hash(), repo_before, "the repository changed");
}
