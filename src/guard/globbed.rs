//! The pattern of a local `locate` glob as a source: every file it matches is a recovery
//! point, so a path a step writes that the pattern would match (a new file among the
//! backups) is refused like one inside a source: the next run would take the drill's own
//! copy for the newest backup, and its schedule audit would count it.

use std::path::{Component, Path, PathBuf};

/// A glob with its fixed folders resolved (symlinks, `..`), matched as `glob` walks it:
/// a wildcard never crosses a `/`.
#[derive(Debug, Clone)]
pub(super) struct Globbed {
    pattern: glob::Pattern,
    pub(super) why: String,
}

impl Globbed {
    /// None for a pattern that does not parse or whose folder cannot be resolved.
    pub(super) fn new(glob: &str, why: String) -> Option<Self> {
        let path = Path::new(glob);
        let wild = |c: &Component<'_>| c.as_os_str().to_string_lossy().contains(['*', '?', '[']);
        let fixed: PathBuf = path.components().take_while(|c| !wild(c)).collect();
        let rest: PathBuf = path.components().skip_while(|c| !wild(c)).collect();
        let base = super::resolve(&fixed).ok()?;
        let base = glob::Pattern::escape(&base.to_string_lossy());
        let full = match rest.as_os_str().is_empty() {
            true => base,
            false => format!("{base}/{}", rest.to_string_lossy()),
        };
        let pattern = glob::Pattern::new(&full).ok()?;
        Some(Self { pattern, why })
    }

    /// Whether `resolved` (a path [`super::resolve`]d) is one the glob would list.
    pub(super) fn matches(&self, resolved: &Path) -> bool {
        self.pattern
            .matches_path_with(resolved, crate::globs::as_walked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_the_glob_would_list_matches_through_its_resolved_folder() {
        let dir = tempfile::tempdir().unwrap();
        let backups = dir.path().join("backups");
        std::fs::create_dir(&backups).unwrap();
        std::os::unix::fs::symlink(&backups, dir.path().join("link")).unwrap();
        let glob = format!("{}/link/*.db", dir.path().display());
        let g = Globbed::new(&glob, "why".into()).unwrap();
        let real = super::super::resolve(&backups).unwrap();
        assert!(g.matches(&real.join("restored.db")));
        assert!(!g.matches(&real.join("sub/restored.db")), "no `/` crossed");
        assert!(!g.matches(&real.join("restored.txt")));
        let plain = Globbed::new(&format!("{}/a.db", backups.display()), "w".into()).unwrap();
        assert!(plain.matches(&real.join("a.db")));
    }
}
