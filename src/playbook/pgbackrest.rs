//! Where a pgBackRest stanza's repositories are, read (minimally) from its configuration
//! file, so that the path guard protects them as sources: `repoN-path` of the sections
//! `[global]`, `[global:<command>]`, `[<stanza>]` and `[<stanza>:<command>]` (a stanza's
//! value overrides the global one, both are protected), for every repository that is a
//! local directory (`repoN-type` posix or cifs, the default); pgBackRest's default
//! `/var/lib/pgbackrest` when repo1 has no path. Options given only in the environment
//! (`PGBACKREST_REPO1_PATH`) or in an include directory are not seen.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::PgBackRest;

/// pgBackRest's own configuration file, when `config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/pgbackrest/pgbackrest.conf";
/// Where repo1 is when its path is not set.
const DEFAULT_REPO: &str = "/var/lib/pgbackrest";

impl PgBackRest {
    /// The configuration file pgBackRest reads.
    pub fn config_path(&self) -> &str {
        self.config
            .as_deref()
            .filter(|c| !c.is_empty())
            .unwrap_or(DEFAULT_CONFIG)
    }

    /// The local repository directories of the stanza, each with the option naming it
    /// (`repo1-path in /etc/pgbackrest/pgbackrest.conf`).
    pub fn repo_paths(&self) -> Vec<(PathBuf, String)> {
        let config = self.config_path();
        let limit = crate::limits::MAX_SETTINGS_BYTES;
        let text = crate::limits::read_text(config.as_ref(), limit).unwrap_or_default();
        repos(&text, &self.stanza)
            .into_iter()
            .map(|(path, option)| {
                let why = match option {
                    Some(o) => format!("{o} in {config}"),
                    None => "pgBackRest's default repository".to_string(),
                };
                (PathBuf::from(path), why)
            })
            .collect()
    }
}

/// A repository's paths (each with the option naming it) and its `repoN-type`.
type Repo = (Vec<(String, String)>, Option<String>);

/// `(path, option)` of each local repository `text` gives `stanza`.
fn repos(text: &str, stanza: &str) -> Vec<(String, Option<String>)> {
    let mut found: BTreeMap<u32, Repo> = BTreeMap::new();
    let mut applies = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = section.split(':').next().unwrap_or("").trim();
            applies = name == "global" || name == stanza;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let Some((n, option)) = key
            .strip_prefix("repo")
            .and_then(|k| k.split_once('-'))
            .and_then(|(n, o)| Some((n.parse::<u32>().ok()?, o)))
        else {
            continue;
        };
        if !applies || value.is_empty() {
            continue;
        }
        let repo = found.entry(n).or_default();
        match option {
            "path" => repo.0.push((value.to_string(), key.to_string())),
            "type" => repo.1 = Some(value.to_string()),
            _ => {}
        }
    }
    if found.get(&1).is_none_or(|r| r.0.is_empty()) {
        let repo = found.entry(1).or_default();
        repo.0.push((DEFAULT_REPO.to_string(), String::new()));
    }
    found
        .into_values()
        .filter(|(_, kind)| matches!(kind.as_deref(), None | Some("posix") | Some("cifs")))
        .flat_map(|(paths, _)| paths)
        .map(|(path, option)| (path, Some(option).filter(|o| !o.is_empty())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stanza_and_global_repositories_are_found_and_remote_ones_left_out() {
        let text = "# a comment\n[global]\nrepo1-path=/srv/backrest\nrepo2-type=s3\nrepo2-path=/in-bucket\n\n[main]\npg1-path=/var/lib/postgresql/15/main\nrepo3-path = /mnt/nfs/repo \n\n[main:restore]\nrepo1-path=/srv/restore-only\n\n[other]\nrepo4-path=/elsewhere\n";
        let paths: Vec<(String, Option<String>)> = repos(text, "main");
        let got: Vec<&str> = paths.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(got, ["/srv/backrest", "/srv/restore-only", "/mnt/nfs/repo"]);
        assert_eq!(paths[2].1.as_deref(), Some("repo3-path"));
    }

    #[test]
    fn without_a_repo1_path_it_is_pgbackrests_default() {
        assert_eq!(
            repos("[global]\nlog-level-console=info\n", "main"),
            [(DEFAULT_REPO.to_string(), None)]
        );
        let source = PgBackRest {
            stanza: "main".into(),
            config: Some("/nonexistent/pgbackrest.conf".into()),
            verify: None,
        };
        let found = source.repo_paths();
        assert_eq!(found[0].0, PathBuf::from(DEFAULT_REPO));
        assert_eq!(found[0].1, "pgBackRest's default repository");
    }
}
