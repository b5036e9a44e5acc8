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

/// What [`glob`] yields.
pub type Paths = Box<dyn Iterator<Item = Result<PathBuf, glob::GlobError>>>;

/// The paths `pattern` matches: as `glob::glob`, but `dir/**` also yields `dir` and every
/// file and directory below it (a path may come twice), and `**` everything below here.
pub fn glob(pattern: &str) -> Result<Paths, glob::PatternError> {
    if pattern == "**" {
        return Ok(Box::new(glob::glob("**/*")?));
    }
    let below = pattern
        .strip_suffix("/**")
        .filter(|dir| !dir.is_empty() && !dir.ends_with('/'));
    let Some(dir) = below else {
        return Ok(Box::new(glob::glob(pattern)?));
    };
    let dirs = glob::glob(dir)?.filter(|m| m.as_ref().map_or(true, |p| p.is_dir()));
    Ok(Box::new(dirs.chain(glob::glob(&format!("{dir}/**/*"))?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(pattern: &str, root: &std::path::Path) -> Vec<String> {
        let full = format!("{}/{pattern}", root.display());
        let mut out: Vec<String> = glob(&full)
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
    }
}
