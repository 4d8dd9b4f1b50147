//! Expanding the paths given on the command line: files as they are,
//! directories recursively (sorted, so runs are reproducible), skipping what
//! `.mlsocignore` files list (gitignore syntax).

use std::path::{Path, PathBuf};

/// The name of the ignore files honoured inside directories.
pub const IGNORE_FILE: &str = ".mlsocignore";

/// Files under `root` (or `root` itself when it is a file), sorted.
/// Errors (unreadable directories) are returned beside the files.
pub fn expand(root: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    if root.is_file() {
        files.push(root.to_path_buf());
        return (files, errors);
    }
    if !root.exists() {
        errors.push(format!("{}: no such file or directory", root.display()));
        return (files, errors);
    }
    let walker = ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .parents(true)
        .hidden(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    for entry in walker {
        match entry {
            Ok(e) => {
                let is_file = e.file_type().is_some_and(|t| t.is_file());
                if is_file && e.file_name() != IGNORE_FILE {
                    files.push(e.into_path());
                }
            }
            Err(err) => errors.push(err.to_string()),
        }
    }
    (files, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_sorted_and_honours_ignore_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("b/sub")).unwrap();
        std::fs::write(d.join("b/sub/z.log"), "z").unwrap();
        std::fs::write(d.join("a.log"), "a").unwrap();
        std::fs::write(d.join("README.md"), "doc").unwrap();
        std::fs::write(d.join(".hidden.log"), "h").unwrap();
        std::fs::write(d.join(IGNORE_FILE), "*.md\n").unwrap();
        let (files, errors) = expand(d);
        assert!(errors.is_empty(), "{errors:?}");
        let rel: Vec<String> = files
            .iter()
            .map(|p| p.strip_prefix(d).unwrap().display().to_string())
            .collect();
        assert_eq!(rel, [".hidden.log", "a.log", "b/sub/z.log"]);
        let (_, errors) = expand(&d.join("missing"));
        assert_eq!(errors.len(), 1);
    }
}
