//! `decrypt` and `decompress` of `locate`, on files made by the real tools: `age-keygen`
//! and `age -r` (encryption), `zstd` and `gzip` (compression); from a local glob and from
//! the S3 test store. The output is the plain file; a wrong key or a damaged file fails
//! and leaves nothing behind.

use std::path::Path;
use std::process::Command;

use super::s3store::{KEY_ENV, SECRET_ENV, Store, sha256};
use super::*;

/// A plain backup, its zstd and gzip copies, each also age-encrypted to `key`, and a
/// second identity that cannot decrypt them.
struct Made {
    plain: Vec<u8>,
    key: String,
    other_key: String,
    /// File name -> bytes: cortex.db.zst, cortex.db.zst.age, cortex.db.gz, cortex.db.age.
    files: Vec<(String, Vec<u8>)>,
}

fn tools_present() -> bool {
    ["age", "age-keygen", "zstd", "gzip"]
        .into_iter()
        .all(super::repos::installed)
}

fn sh(dir: &Path, script: &str) -> String {
    super::repos::ok(Command::new("sh").args(["-c", script]).current_dir(dir))
}

impl Made {
    fn new() -> Option<Self> {
        if !tools_present() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let plain: Vec<u8> = (0..2_000_000u32)
            .flat_map(|i| format!("row {i} {}\n", i % 97).into_bytes())
            .take(3 << 20)
            .collect();
        std::fs::write(dir.path().join("cortex.db"), &plain).unwrap();
        sh(
            dir.path(),
            "age-keygen -o key.txt 2>/dev/null && age-keygen -o other.txt 2>/dev/null \
             && zstd -q cortex.db -o cortex.db.zst && gzip -k cortex.db \
             && age -r $(age-keygen -y key.txt) -o cortex.db.zst.age cortex.db.zst \
             && age -r $(age-keygen -y key.txt) -o cortex.db.age cortex.db",
        );
        let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
        let files = [
            "cortex.db.zst",
            "cortex.db.zst.age",
            "cortex.db.gz",
            "cortex.db.age",
        ]
        .map(|n| (n.to_string(), read(n)))
        .to_vec();
        Some(Self {
            plain,
            key: String::from_utf8(read("key.txt")).unwrap(),
            other_key: String::from_utf8(read("other.txt")).unwrap(),
            files,
        })
    }

    fn file(&self, name: &str) -> &[u8] {
        &self.files.iter().find(|(n, _)| n == name).unwrap().1
    }

    /// A drill locating `glob` under `backups/` (every made file there) into
    /// `out/cortex.db`, with `extra` step fields; the age key is the secret `age_key`.
    fn drill(&self, glob: &str, extra: &str, key: &str) -> Drill {
        let playbook =
            pb("decode")
                .secret("age_key", "AGE_KEY")
                .step(step("latest", "locate").fields(&format!(
                    "glob = \"backups/{glob}\"\noutput = \"out/cortex.db\"\n{extra}"
                )));
        let mut drill = playbook.drill().env("AGE_KEY", key);
        for (name, bytes) in &self.files {
            drill = drill.file(&format!("backups/{name}"), bytes);
        }
        drill
    }
}

const DECRYPT: &str = "decrypt = { age_identity = \"{{ secrets.age_key }}\" }";

/// The output is the plain file, hashed, and nothing else is left beside it.
fn restored_plain(out: &Outcome, made: &Made) {
    let path = out.path().join("out/cortex.db");
    assert!(
        std::fs::read(&path).unwrap() == made.plain,
        "not the plain file"
    );
    assert_eq!(out.output("latest", "sha256"), sha256(&made.plain));
    assert_eq!(out.output("latest", "bytes"), made.plain.len());
    let left: Vec<_> = std::fs::read_dir(out.path().join("out")).unwrap().collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[test]
fn an_age_encrypted_zstd_backup_restores_to_the_plain_file_with_no_shell_step() {
    let Some(made) = Made::new() else { return };
    let extra = format!("{DECRYPT}\ndecompress = \"auto\"");
    let out = made
        .drill("*.zst.age", &extra, &made.key)
        .run()
        .expect_code(0);
    restored_plain(&out, &made);
    out.log_has("verified: age decryption (authenticated), zstd decompression");
    let everything = format!("{}{}{}", out.record(), out.log(), out.stderr);
    assert!(!everything.contains("AGE-SECRET-KEY-"), "{everything}");
    // The source is untouched.
    let source = std::fs::read(out.path().join("backups/cortex.db.zst.age")).unwrap();
    assert_eq!(source, made.file("cortex.db.zst.age"));

    let gz = made
        .drill("*.gz", "decompress = \"auto\"", "")
        .run()
        .expect_code(0);
    restored_plain(&gz, &made);
    let zst = made
        .drill("*.zst", "decompress = \"zstd\"", "")
        .run()
        .expect_code(0);
    restored_plain(&zst, &made);
    let age_only = made
        .drill("*.db.age", DECRYPT, &made.key)
        .run()
        .expect_code(0);
    restored_plain(&age_only, &made);
}

/// A local backup decoded on the way is checked against the `SHA256SUMS` beside it (the
/// stored file's hash), before it is decoded: a file altered since fails, naming both.
#[test]
fn a_decoded_local_backup_is_checked_against_the_sha256sums_beside_it() {
    let Some(made) = Made::new() else { return };
    let stored = made.file("cortex.db.zst");
    for (summed, code) in [(b"another file".as_slice(), 1), (stored, 0)] {
        let sums = format!("{}  cortex.db.zst\n", sha256(summed));
        let drill = made.drill("*.zst", "decompress = \"zstd\"", "");
        let out = drill
            .file("backups/SHA256SUMS", sums.as_bytes())
            .run()
            .expect_code(code);
        match code {
            0 => {
                out.log_has("verified: SHA256SUMS, zstd decompression");
            }
            _ => {
                let step = out.step("latest");
                step.failed_with("is altered or truncated")
                    .says("SHA256SUMS says");
                assert!(!out.path().join("out/cortex.db").exists(), "written");
            }
        }
    }
}

#[test]
fn a_wrong_age_key_or_a_damaged_file_fails_and_writes_nothing() {
    let Some(made) = Made::new() else { return };
    let extra = format!("{DECRYPT}\ndecompress = \"auto\"");
    let out = made.drill("*.zst.age", &extra, &made.other_key).run();
    out.step("latest")
        .failed_with("cannot decrypt backups/cortex.db.zst.age with `decrypt.age_identity`");
    let nothing = |out: &Outcome| {
        let dir = out.path().join("out");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left behind: {left:?}");
    };
    nothing(&out);
    let everything = format!("{}{}{}", out.record(), out.log(), out.stderr);
    assert!(!everything.contains("AGE-SECRET-KEY-"), "{everything}");

    // The same file cut in the middle: the age stream's authentication fails.
    let cut = made.file("cortex.db.zst.age");
    let out = made
        .drill("*.zst.age", &extra, &made.key)
        .file("backups/cortex.db.zst.age", &cut[..cut.len() / 2])
        .run();
    out.step("latest")
        .failed_with("decrypting backups/cortex.db.zst.age");
    nothing(&out);

    // A zstd file that is not one.
    let out = made
        .drill("*.zst", "decompress = \"zstd\"", "")
        .file("backups/cortex.db.zst", b"not zstd at all")
        .run();
    out.step("latest")
        .failed_with("decoding backups/cortex.db.zst");
    nothing(&out);
}

#[test]
fn s3_locate_decrypts_and_decompresses_an_object() {
    let Some(made) = Made::new() else { return };
    let Some(store) = Store::shared("s3") else {
        return;
    };
    store.bucket("decode-bucket");
    let body = made.file("cortex.db.zst.age");
    store.put("decode-bucket", "hourly/cortex.db.zst.age", body);
    let before = store.snapshot("decode-bucket");
    let out = pb("decode")
        .secret("age_key", "AGE_KEY")
        .secret("s3_key", KEY_ENV)
        .secret("s3_secret", SECRET_ENV)
        .step(step("latest", "locate").fields(&format!(
            "glob = \"s3://decode-bucket/hourly/*.age\"\ns3 = {}\noutput = \"out/cortex.db\"\n{DECRYPT}\ndecompress = \"auto\"",
            store.table()
        )))
        .drill()
        .env("AGE_KEY", &made.key)
        .env(KEY_ENV, &store.access_key)
        .env(SECRET_ENV, &store.secret_key)
        .run()
        .expect_code(0);
    restored_plain(&out, &made);
    out.log_has("verified: size");
    assert_eq!(store.snapshot("decode-bucket"), before);
}
