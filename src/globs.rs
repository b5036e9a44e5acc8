//! Glob expansion for every field that takes globs (a files backup's `paths`, a
//! checksum's `files`, a local `locate`'s `glob`, and the sources the safety rule knows).
//!
//! The glob crate yields, for `dir/**`, only the directories below `dir`: never `dir`
//! itself, nor a file in it, so a files backup of `data/**` silently left out every file
//! directly in `data`, and a checksum of `data/**` found no file at all. Here a trailing
//! `**` means what it means in a shell with globstar, rsync or `.gitignore`: the
//! directory and everything below it.
//!
//! A leaf module: it imports nothing from the rest of the crate.

use std::path::PathBuf;

/// What [`glob`] and [`trees`] yield.
pub type Paths = Box<dyn Iterator<Item = Result<PathBuf, glob::GlobError>>>;

/// How a pattern matches a path as [`glob`] would list it: a wildcard never crosses a
/// `/` (`backups/*.db` is not `backups/old/a.db`).
pub fn as_walked() -> glob::MatchOptions {
    glob::MatchOptions {
        require_literal_separator: true,
        ..glob::MatchOptions::new()
    }
}

/// The paths `pattern` matches: as `glob::glob`, but `dir/**` also yields `dir` and every
/// file and directory below it, and `**` everything below here.
pub fn glob(pattern: &str) -> Result<Paths, glob::PatternError> {
    if pattern == "**" {
        return Ok(Box::new(glob::glob("**/*")?));
    }
    match tree(pattern) {
        Some(dir) => Ok(Box::new(
            dirs(dir)?.chain(glob::glob(&format!("{dir}/**/*"))?),
        )),
        None => Ok(Box::new(glob::glob(pattern)?)),
    }
}

/// As [`glob`], but `dir/**` yields only the directories `dir` names, each standing for
/// its whole tree: for callers that walk a directory, or take it for all it holds.
pub fn trees(pattern: &str) -> Result<Paths, glob::PatternError> {
    match tree(pattern) {
        Some(dir) => dirs(dir),
        None => glob(pattern),
    }
}

/// `dir` of a `dir/**`.
fn tree(pattern: &str) -> Option<&str> {
    pattern
        .strip_suffix("/**")
        .filter(|dir| !dir.is_empty() && !dir.ends_with('/'))
}

/// The directories `pattern` matches.
fn dirs(pattern: &str) -> Result<Paths, glob::PatternError> {
    let found = glob::glob(pattern)?;
    Ok(Box::new(
        found.filter(|m| m.as_ref().map_or(true, |p| p.is_dir())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(pattern: &str, root: &std::path::Path) -> Vec<String> {
        matches(glob, pattern, root)
    }

    fn matches(
        expand: fn(&str) -> Result<Paths, glob::PatternError>,
        pattern: &str,
        root: &std::path::Path,
    ) -> Vec<String> {
        let full = format!("{}/{pattern}", root.display());
        let mut out: Vec<String> = expand(&full)
            .unwrap()
            .map(|p| p.unwrap())
            .map(|p| {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                if rel.is_empty() { ".".into() } else { rel }
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn a_trailing_double_star_is_the_directory_and_everything_below() {
        let root = tempfile::tempdir().unwrap();
        let tree = root.path().join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("a.txt"), "a").unwrap();
        std::fs::write(tree.join("sub/b.txt"), "b").unwrap();
        let all = ["tree", "tree/a.txt", "tree/sub", "tree/sub/b.txt"];
        assert_eq!(names("tree/**", root.path()), all);
        assert_eq!(names("tr*/**", root.path()), all);
        // Other patterns are the glob crate's, unchanged.
        assert_eq!(names("tree/*", root.path()), ["tree/a.txt", "tree/sub"]);
        assert_eq!(
            names("tree/**/*.txt", root.path()),
            ["tree/a.txt", "tree/sub/b.txt"]
        );
        assert_eq!(names("tree/a.txt", root.path()), ["tree/a.txt"]);
        // A file is not a directory to look below.
        assert_eq!(names("tree/a.txt/**", root.path()), Vec::<String>::new());
        // `trees`: the directory stands for all it holds.
        assert_eq!(matches(trees, "tr*/**", root.path()), ["tree"]);
        assert_eq!(
            matches(trees, "tree/*", root.path()),
            ["tree/a.txt", "tree/sub"]
        );
    }
}
