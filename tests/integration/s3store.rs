//! A real S3-compatible server for the tests: `s3s-fs` (crates.io, `cargo install
//! s3s-fs --features binary`) on a free loopback port, serving a temporary directory, with
//! an access key and secret key of its own: it checks every request's SigV4 signature, so
//! a wrong secret key is refused with 403 SignatureDoesNotMatch. Shared by the tests of
//! the binary, killed at exit. Without `s3s-fs` the S3 suite is skipped loudly (a failure
//! under `RESTORE_DRILL_REQUIRE_SERVERS=1`).
//!
//! Not moto: moto_server (5.2.1) with IAM authentication recomputes the signature from a
//! query string it has already decoded, so it refuses every correctly signed listing
//! with a `prefix` holding a `/` (boto3's own included).
//!
//! Objects are stored as files (`root/bucket/key`), whose mtime is the object's
//! LastModified: the tests backdate recovery points by setting it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use restore_drill::playbook::S3Settings;
use restore_drill::sources::s3::{Client, Payload, check};

use super::expect::free_port;
use super::skip_or_fail;

/// The environment variables the drills read their S3 credentials from.
pub const KEY_ENV: &str = "DRILL_TEST_S3_KEY";
pub const SECRET_ENV: &str = "DRILL_TEST_S3_SECRET";

pub struct Store {
    pub port: u16,
    pub access_key: String,
    pub secret_key: String,
    root: tempfile::TempDir,
    child: Mutex<Option<Child>>,
}

static SHARED: OnceLock<Result<Store, String>> = OnceLock::new();

/// Stops the server and removes its objects: a static is never dropped, so without this
/// every run of the suite would leave its buckets (hundreds of MiB) in the temp folder.
extern "C" fn stop_at_exit() {
    if let Some(Ok(store)) = SHARED.get() {
        if let Some(mut child) = store.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(store.root.path());
    }
}

/// `s3s-fs` on PATH or where `cargo install` puts it.
fn program() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .map(|c| c.join("bin"));
    std::env::split_paths(&path)
        .chain(cargo_bin)
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.is_file())
}

impl Store {
    /// The shared store, or None after a loud skip.
    pub fn shared(suite: &str) -> Option<&'static Store> {
        SHARED
            .get_or_init(|| {
                // SAFETY: registers a plain function, once.
                unsafe { libc::atexit(stop_at_exit) };
                Self::start()
            })
            .as_ref()
            .map_err(|why| skip_or_fail(suite, why))
            .ok()
    }

    fn start() -> Result<Store, String> {
        let program = program().ok_or(
            "no S3 test server: `s3s-fs` is not installed (cargo install s3s-fs --version 0.14.1 --features binary)",
        )?;
        let port = free_port();
        let root = tempfile::Builder::new().prefix("rd-s3-").tempdir().unwrap();
        let (access_key, secret_key) = ("DRILLTESTKEY0000", format!("test-secret-{port}-k3y"));
        let child = Command::new(program)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", access_key, "--secret-key", &secret_key])
            .arg(root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("s3s-fs cannot start: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("s3s-fs did not listen within 30s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Store {
            port,
            access_key: access_key.into(),
            secret_key,
            root,
            child: Mutex::new(Some(child)),
        })
    }

    /// Sets the LastModified of an object (its file's mtime) to `ago` before now.
    pub fn backdate(&self, bucket: &str, key: &str, ago: Duration) {
        let file = std::fs::File::options()
            .write(true)
            .open(self.root.path().join(bucket).join(key))
            .unwrap();
        file.set_modified(SystemTime::now() - ago).unwrap();
    }

    /// Cuts an object's stored bytes to `len` (damage at rest).
    pub fn truncate(&self, bucket: &str, key: &str, len: u64) {
        let file = std::fs::File::options()
            .write(true)
            .open(self.root.path().join(bucket).join(key))
            .unwrap();
        file.set_len(len).unwrap();
    }

    /// Puts many objects at once as files of the store (fast seeding).
    pub fn seed_files(&self, bucket: &str, objects: impl IntoIterator<Item = (String, Vec<u8>)>) {
        for (key, body) in objects {
            let path = self.root.path().join(bucket).join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: Some(self.endpoint()),
            access_key: Some(self.access_key.clone()),
            secret_key: Some(self.secret_key.clone()),
            ..S3Settings::default()
        }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.settings()).unwrap()
    }

    /// The `s3` table of a playbook reading the keys from `[secrets]`.
    pub fn table(&self) -> String {
        format!(
            "{{ endpoint = \"{}\", region = \"us-east-1\", access_key = \"{{{{ secrets.s3_key }}}}\", secret_key = \"{{{{ secrets.s3_secret }}}}\", path_style = true }}",
            self.endpoint()
        )
    }

    /// A new empty bucket.
    pub fn bucket(&self, name: &str) -> String {
        self.request("PUT", name, "", &[], b"");
        name.to_string()
    }

    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        self.request("PUT", bucket, key, &[], body);
    }

    /// An object with extra headers (`x-amz-meta-*`).
    pub fn put_with(&self, bucket: &str, key: &str, body: &[u8], headers: &[(&str, String)]) {
        self.request("PUT", bucket, key, headers, body);
    }

    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.client()
            .get_small(bucket, key, 1 << 30)
            .unwrap()
            .unwrap_or_default()
    }

    /// Every key of the bucket with the sha256 of its content, sorted.
    pub fn snapshot(&self, bucket: &str) -> Vec<(String, String)> {
        let cancel = restore_drill::proc::Cancel::default();
        let mut all: Vec<(String, String)> = self
            .client()
            .list(bucket, "", &cancel)
            .unwrap()
            .0
            .into_iter()
            .map(|o| {
                let body = self.get(bucket, &o.key);
                (o.key, sha256(&body))
            })
            .collect();
        all.sort();
        all
    }

    fn request(
        &self,
        method: &str,
        bucket: &str,
        key: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) {
        let mut response = self
            .client()
            .send(method, bucket, key, "", headers, Payload::Bytes(body))
            .unwrap();
        check(&mut response, &format!("{method} {bucket}/{key}")).unwrap();
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    restore_drill::sources::s3::sha256_hex(bytes)
}

impl Store {
    /// A proxy in front of the store that passes requests through but closes each
    /// connection once it has passed `cut` bytes of answers: a download broken off
    /// mid-way. Its port.
    pub fn cutting_proxy(&self, cut: usize) -> u16 {
        self.proxy(cut, std::time::Duration::ZERO)
    }

    /// A proxy that stops answering after `cut` bytes of a connection and holds it open
    /// (a store that stalls mid-object) for `hold`.
    pub fn stalling_proxy(&self, cut: usize, hold: std::time::Duration) -> u16 {
        self.proxy(cut, hold)
    }

    fn proxy(&self, cut: usize, hold: std::time::Duration) -> u16 {
        use std::io::{Read as _, Write as _};
        use std::net::Shutdown;
        self.forward(move |client, server| {
            let (mut from_client, mut to_server) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || std::io::copy(&mut from_client, &mut to_server));
            std::thread::spawn(move || {
                let (mut server, mut client) = (server, client);
                let (mut buf, mut sent) = (vec![0u8; 16 << 10], 0);
                while let Ok(n) = server.read(&mut buf) {
                    let n = n.min(cut - sent);
                    if n == 0 || client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n;
                }
                std::thread::sleep(hold);
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
            });
        })
    }

    /// A proxy in front of the store: `serve` gets each connection (client, store) made
    /// to it. Its port.
    pub fn forward(
        &self,
        serve: impl Fn(std::net::TcpStream, std::net::TcpStream) + Send + 'static,
    ) -> u16 {
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = self.port;
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    return;
                };
                serve(client, server);
            }
        });
        port
    }
}
