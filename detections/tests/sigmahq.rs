//! The public SigmaHQ corpus (../shared/sigma/sigmahq, Detection Rule
//! License) loads: every rule compiles, except those whose `expand`
//! placeholders have no configured values, which the specification says
//! a tool must refuse.

use std::path::PathBuf;

use detections::{ErrorKind, Loader, Placeholders};

fn corpus() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/sigma/sigmahq");
    assert!(
        p.is_dir(),
        "the SigmaHQ corpus is expected at {} (the project's shared reference data)",
        p.display()
    );
    p
}

#[test]
fn every_sigmahq_rule_loads_or_is_refused_for_its_placeholders() {
    let root = corpus();
    let dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    let loading = Loader::default().load_paths(&dirs);
    let refused: Vec<_> = loading
        .errors
        .iter()
        .filter(|e| e.kind == ErrorKind::Placeholder)
        .collect();
    let other: Vec<String> = loading
        .errors
        .iter()
        .filter(|e| e.kind != ErrorKind::Placeholder)
        .map(|e| e.to_string())
        .collect();
    println!(
        "SigmaHQ corpus: {} files, {} rules loaded, {} refused for placeholders without values, {} other errors",
        loading.files,
        loading.rules.len(),
        refused.len(),
        other.len()
    );
    assert!(
        other.is_empty(),
        "rules that failed to load:\n{}",
        other.join("\n")
    );
    assert_eq!(loading.files, 3780, "the corpus has 3,780 rule files");
    assert_eq!(loading.rules.len() + refused.len(), 3780);
    for e in &refused {
        assert!(
            e.message.contains("placeholder `%") && e.line > 0,
            "a refusal names the placeholder and its line: {e}"
        );
    }
}

#[test]
fn placeholder_rules_load_once_values_are_configured() {
    let root = corpus();
    let refused: Vec<PathBuf> = Loader::default()
        .load_paths(std::slice::from_ref(&root))
        .errors
        .into_iter()
        .filter(|e| e.kind == ErrorKind::Placeholder)
        .map(|e| e.path)
        .collect();
    assert!(!refused.is_empty());
    // Give every placeholder the corpus uses a value.
    let mut names = std::collections::BTreeSet::new();
    for p in &refused {
        let text = std::fs::read_to_string(p).unwrap();
        for cap in text.split('%').skip(1).step_by(2) {
            if !cap.is_empty()
                && cap
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            {
                names.insert(cap.to_string());
            }
        }
    }
    let mut placeholders = Placeholders::new();
    for n in names {
        placeholders.insert(n, vec!["configured-value".into()]);
    }
    let loading = Loader::new(placeholders).load_paths(&refused);
    let errors: Vec<String> = loading.errors.iter().map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert_eq!(loading.rules.len(), refused.len());
}
