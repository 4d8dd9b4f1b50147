//! Finding the files to read: include and exclude glob patterns, each
//! include walked from its directory before the first wildcard.
//!
//! `*` and `?` stay inside one path component, `**` crosses directories.
//! The walk does not follow symbolic links to directories (no loops); a
//! symbolic link to a file is read as the file it points to (identity and
//! checkpoint are the target's, the path is the link's).

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use super::TailError;

/// A regular file that matched.
#[derive(Debug)]
pub struct Found {
    /// The path as found (the include pattern's prefix joined with what the
    /// walk found below it).
    pub path: PathBuf,
    /// Its metadata (of the target, for a symbolic link).
    pub meta: Metadata,
}

/// One include pattern's walk.
#[derive(Debug)]
struct Root {
    /// What the pattern says before its first wildcard (empty: the current
    /// directory).
    prefix: PathBuf,
    /// How many components below the prefix can match (`None`: any, `**`).
    depth: Option<usize>,
}

/// Compiled include and exclude patterns.
#[derive(Debug)]
pub struct Globs {
    include: GlobSet,
    exclude: GlobSet,
    roots: Vec<Root>,
}

fn glob(pattern: &str) -> Result<Glob, TailError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| TailError::Config(format!("pattern `{pattern}`: {e}")))
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

impl Globs {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Globs, TailError> {
        let mut inc = GlobSetBuilder::new();
        let mut roots = Vec::new();
        for p in include {
            inc.add(glob(p)?);
            let mut prefix = PathBuf::new();
            let mut rest = Vec::new();
            for c in Path::new(p).components() {
                let s = c.as_os_str().to_string_lossy();
                if rest.is_empty() && !(matches!(c, Component::Normal(_)) && has_wildcard(&s)) {
                    prefix.push(c);
                } else {
                    rest.push(s.into_owned());
                }
            }
            let depth = if rest.iter().any(|c| c.contains("**")) {
                None
            } else {
                Some(rest.len())
            };
            roots.push(Root { prefix, depth });
        }
        let mut exc = GlobSetBuilder::new();
        for p in exclude {
            exc.add(glob(p)?);
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| TailError::Config(e.to_string()));
        Ok(Globs {
            include: build(inc)?,
            exclude: build(exc)?,
            roots,
        })
    }

    /// Whether `path` is included and not excluded.
    pub fn matches(&self, path: &Path) -> bool {
        self.include.is_match(path) && !self.exclude.is_match(path)
    }

    /// Every matching regular file, sorted by path.
    pub fn scan(&self) -> Vec<Found> {
        let mut found = BTreeMap::new();
        for root in &self.roots {
            if root.depth == Some(0) {
                // A pattern without wildcards: one file.
                self.consider(&root.prefix, &mut found);
                continue;
            }
            self.walk(&root.prefix, root.depth, &mut found);
        }
        found
            .into_iter()
            .map(|(path, meta)| Found { path, meta })
            .collect()
    }

    fn consider(&self, path: &Path, found: &mut BTreeMap<PathBuf, Metadata>) {
        if found.contains_key(path) || !self.matches(path) {
            return;
        }
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => {
                found.insert(path.to_path_buf(), meta);
            }
            Ok(_) => {}
            Err(e) => tracing::trace!(path = %path.display(), error = %e, "cannot stat"),
        }
    }

    fn walk(&self, dir: &Path, depth: Option<usize>, found: &mut BTreeMap<PathBuf, Metadata>) {
        let read = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let entries = match std::fs::read_dir(read) {
            Ok(e) => e,
            Err(e) => {
                tracing::trace!(dir = %read.display(), error = %e, "cannot list directory");
                return;
            }
        };
        let mut names: Vec<_> = entries.filter_map(Result::ok).collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let path = dir.join(e.file_name());
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                match depth {
                    None => self.walk(&path, None, found),
                    Some(d) if d > 1 => self.walk(&path, Some(d - 1), found),
                    Some(_) => {}
                }
            } else if ft.is_file() || ft.is_symlink() {
                self.consider(&path, found);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(g: &Globs, base: &Path) -> Vec<String> {
        g.scan()
            .into_iter()
            .map(|f| {
                f.path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }

    #[test]
    fn double_star_single_star_and_exclude() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in [
            "a.log",
            "b.txt",
            "x/c.log",
            "x/y/d.log",
            "x/y/e.log.gz",
            "x/skip/f.log",
        ] {
            std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            std::fs::write(d.join(f), "x").unwrap();
        }
        std::fs::create_dir_all(d.join("dir.log")).unwrap();
        let b = d.display();
        let g = Globs::new(
            &[format!("{b}/**/*.log"), format!("{b}/**/*.gz")],
            &[format!("{b}/**/skip/**")],
        )
        .unwrap();
        assert_eq!(
            names(&g, d),
            ["a.log", "x/c.log", "x/y/d.log", "x/y/e.log.gz"]
        );
        let g = Globs::new(&[format!("{b}/*.log")], &[]).unwrap();
        assert_eq!(names(&g, d), ["a.log"], "* does not cross directories");
        let g = Globs::new(&[format!("{b}/x/*/d.log")], &[]).unwrap();
        assert_eq!(names(&g, d), ["x/y/d.log"]);
        let g = Globs::new(&[format!("{b}/a.log"), format!("{b}/missing.log")], &[]).unwrap();
        assert_eq!(names(&g, d), ["a.log"], "literal paths");
        assert!(Globs::new(&["[".into()], &[]).is_err());
    }

    #[test]
    fn symlinked_files_are_found_and_directory_links_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("real")).unwrap();
        std::fs::write(d.join("real/a.log"), "x").unwrap();
        std::os::unix::fs::symlink(d.join("real/a.log"), d.join("link.log")).unwrap();
        std::os::unix::fs::symlink(d, d.join("real/loop")).unwrap();
        let g = Globs::new(&[format!("{}/**/*.log", d.display())], &[]).unwrap();
        assert_eq!(names(&g, d), ["link.log", "real/a.log"]);
    }
}
