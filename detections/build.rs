//! Compiles the rule pack (`rules/`, without its `*.tests.yml` files) and
//! the default placeholder values (`placeholders/`) into the crate, so the
//! `mlsoc` binary carries them: `OUT_DIR/pack.rs` lists each file's path
//! (relative to its folder) and text.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            walk(&p, out);
        } else if (name.ends_with(".yml") || name.ends_with(".yaml"))
            && !name.ends_with(".tests.yml")
            && !name.ends_with(".tests.yaml")
        {
            out.push(p);
        }
    }
}

fn table(name: &str, root: &Path, code: &mut String) {
    let mut files = Vec::new();
    walk(root, &mut files);
    writeln!(code, "pub static {name}: &[(&str, &str)] = &[").unwrap();
    for f in files {
        let rel = f
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        writeln!(
            code,
            "    ({rel:?}, include_str!({:?})),",
            f.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let mut code = String::new();
    table("RULES", &manifest.join("rules"), &mut code);
    table("PLACEHOLDERS", &manifest.join("placeholders"), &mut code);
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("pack.rs");
    std::fs::write(out, code).unwrap();
    // A directory is rescanned for any change below it.
    println!("cargo:rerun-if-changed=rules");
    println!("cargo:rerun-if-changed=placeholders");
}
