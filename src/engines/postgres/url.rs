//! libpq connection URIs. The password is split off the URI: in-process connections
//! (the `postgres` crate) may use it, but a command line (`pg_dump`, `pg_restore`) only
//! ever gets the URI without it, and the password through a 0600 passfile.

use std::fs;
use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::proc::SecretFile;

/// A parsed `postgres://` URI.
#[derive(Clone)]
pub struct PgUrl {
    /// For in-process connections (holds the password).
    pub config: postgres::Config,
    /// The URI without its password: safe for argv, logs and the record.
    pub public: String,
    pub password: Option<String>,
    /// The url as given, password included: only for later steps' templates (the
    /// record, log and report redact secrets).
    pub given: String,
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.public)
    }
}

impl PgUrl {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            bail!(
                "a PostgreSQL url must start with postgres:// or postgresql:// (got `{}`)",
                strip_password(url).0
            );
        }
        let mut config = postgres::Config::from_str(url)
            .map_err(|e| anyhow::anyhow!("bad PostgreSQL url `{}`: {e}", strip_password(url).0))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(15));
        }
        let (public, mut password) = strip_password(url);
        // As libpq does: without a password in the url, PGPASSWORD.
        if password.is_none()
            && let Ok(p) = std::env::var("PGPASSWORD")
            && !p.is_empty()
        {
            config.password(p.as_str());
            password = Some(p);
        }
        Ok(Self {
            config,
            public,
            password,
            given: url.to_string(),
        })
    }

    /// The database the URI names (libpq's default is the user name).
    pub fn dbname(&self) -> Option<&str> {
        self.config.get_dbname().or(self.config.get_user())
    }

    /// The same server and credentials, another database.
    pub fn with_dbname(&self, dbname: &str) -> Self {
        let mut config = self.config.clone();
        config.dbname(dbname);
        Self {
            config,
            public: replace_dbname(&self.public, dbname),
            password: self.password.clone(),
            given: replace_dbname(&self.given, dbname),
        }
    }

    /// Where the server is, for comparing two urls: hosts and ports as configured.
    pub fn server(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                postgres::config::Host::Tcp(s) => s.clone(),
                postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .collect();
        format!("{}:{:?}", hosts.join(","), self.config.get_ports())
    }

    /// A connection; the whole handshake is bounded by `connect_timeout` (per host, as
    /// libpq's), not only the TCP connect.
    pub fn connect(&self) -> anyhow::Result<postgres::Client> {
        let config = self.config.clone();
        let public = self.public.clone();
        let hosts = u32::try_from(config.get_hosts().len().max(1)).unwrap_or(u32::MAX);
        let limit = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(crate::engines::answer::CONNECT_LIMIT)
            .saturating_mul(hosts);
        crate::engines::answer::within(limit, &self.public.clone(), move || {
            config
                .connect(postgres::NoTls)
                .with_context(|| format!("cannot connect to {public}"))
        })
    }
}

/// The URI without the password of its user info or its `password=` parameter, and the
/// password (percent-decoded).
pub fn strip_password(url: &str) -> (String, Option<String>) {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return (url.to_string(), None);
    };
    let (scheme, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut password = None;
    let authority = match authority.rfind('@') {
        Some(at) => {
            let (userinfo, hostpart) = authority.split_at(at);
            match userinfo.split_once(':') {
                Some((user, pass)) => {
                    password = Some(percent_decode(pass));
                    format!("{user}{hostpart}")
                }
                None => authority.to_string(),
            }
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|kv| match kv.strip_prefix("password=") {
                    Some(p) => {
                        password = Some(percent_decode(p));
                        false
                    }
                    // The passphrase of the client key: a secret no command line, log or
                    // message may hold (libpq takes it from no file nor variable, and the
                    // in-process client refuses it: such a url is refused, never shown).
                    None => !kv.starts_with("sslpassword="),
                })
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_string(),
    };
    (format!("{scheme}{authority}{tail}"), password)
}

fn replace_dbname(url: &str, dbname: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let (head, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{head}{authority}/{}{query}", percent_encode(dbname))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes what may not appear raw in a URI path or query value.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A libpq password file holding one password for any connection of the tool it is
/// given to (`PGPASSFILE`); created 0600 and removed when dropped.
pub fn passfile(dir: &Path, password: &str) -> anyhow::Result<SecretFile> {
    fs::create_dir_all(dir)?;
    let path = dir.join(format!(".pgpass-{}-{}", std::process::id(), rand_suffix()));
    let escaped = password.replace('\\', "\\\\").replace(':', "\\:");
    SecretFile::create(&path, &format!("*:*:*:*:{escaped}\n"))
        .with_context(|| format!("cannot create a password file in {}", dir.display()))
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// Gives a client tool the url's password through a passfile (never argv), and keeps
/// an inherited PGPASSWORD from overriding it, nor any other inherited variable holding
/// the password (the one `[secrets]` read it from) in its environment.
pub fn with_password(
    expr: duct::Expression,
    url: &PgUrl,
    dir: &Path,
) -> anyhow::Result<(duct::Expression, Option<SecretFile>)> {
    match &url.password {
        Some(p) => {
            let file = passfile(dir, p)?;
            let expr = expr.env("PGPASSFILE", file.path()).env_remove("PGPASSWORD");
            let expr = crate::proc::secret::without_vars_holding(expr, p, &["PGPASSFILE"]);
            Ok((expr, Some(file)))
        }
        None => Ok((expr, None)),
    }
}

/// The server's message (and detail) rather than the crate's generic "db error".
pub fn db_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{}: {d}", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_split_off() {
        let (public, pw) =
            strip_password("postgres://app:s%3Acret@db.example:5433/shop?sslmode=disable");
        assert_eq!(
            public,
            "postgres://app@db.example:5433/shop?sslmode=disable"
        );
        assert_eq!(pw.as_deref(), Some("s:cret"));
        let (public, pw) = strip_password("postgresql://app@/shop?host=/tmp&password=x%20y&port=5");
        assert_eq!(public, "postgresql://app@/shop?host=/tmp&port=5");
        assert_eq!(pw.as_deref(), Some("x y"));
        // A client key's passphrase is no part of what is shown nor of a command line.
        let (public, pw) = strip_password("postgres://u@h/db?sslpassword=Hunter2&sslmode=require");
        assert_eq!(public, "postgres://u@h/db?sslmode=require");
        assert_eq!(pw, None);
        let refused = PgUrl::parse("postgres://u@h/db?sslpassword=Hunter2").unwrap_err();
        assert!(!format!("{refused:#}").contains("Hunter2"), "{refused:#}");
        let (public, pw) = strip_password("postgres://h/db");
        assert_eq!((public.as_str(), pw), ("postgres://h/db", None));
    }

    #[test]
    fn dbname_is_replaced() {
        let url = PgUrl::parse("postgres://u:pw@127.0.0.1:5432/app?sslmode=disable").unwrap();
        let other = url.with_dbname("scratch");
        assert_eq!(
            other.public,
            "postgres://u@127.0.0.1:5432/scratch?sslmode=disable"
        );
        assert_eq!(other.dbname(), Some("scratch"));
        assert_eq!(other.password.as_deref(), Some("pw"));
    }
}
