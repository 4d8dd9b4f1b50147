//! Reading rule files: directories, multi-document YAML, and errors that
//! say where (file and line) and why.

use std::path::{Path, PathBuf};

use serde_norway::Value as Y;

use crate::modifiers::Placeholders;
use crate::rule::{Problem, Rule, rule_from_yaml};

/// Rule files larger than this are refused unread (hostile input).
pub const MAX_RULE_FILE_BYTES: u64 = 4 << 20;
/// Directory nesting followed at most.
const MAX_DIR_DEPTH: usize = 32;

/// Why a rule document was not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Could not read the file.
    Io,
    /// Not valid YAML.
    Yaml,
    /// Valid YAML, not a valid Sigma document.
    Invalid,
    /// Uses `expand` placeholders with no configured values.
    Placeholder,
    /// A valid document of a kind this engine does not run.
    Unsupported,
}

/// A rule document that was not loaded: where, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct RuleError {
    pub path: PathBuf,
    pub line: usize,
    pub kind: ErrorKind,
    pub message: String,
}

/// Where a rule came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub path: PathBuf,
    /// 1-based line of the document's first line.
    pub line: usize,
}

/// A loaded rule with its origin.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub rule: Rule,
    pub origin: Origin,
    /// The events the rule's log source maps to (from the pipelines);
    /// `None`: every event.
    pub route: Option<crate::pipeline::Route>,
}

/// A loaded correlation rule with its origin.
#[derive(Debug, Clone)]
pub struct LoadedCorrelation {
    pub correlation: crate::correlation::Correlation,
    pub origin: Origin,
}

/// A loaded filter document with its origin.
#[derive(Debug, Clone)]
pub struct LoadedFilter {
    pub filter: crate::filter::Filter,
    pub origin: Origin,
}

/// The outcome of loading rule files.
#[derive(Debug, Default)]
pub struct Loading {
    pub rules: Vec<Loaded>,
    pub correlations: Vec<LoadedCorrelation>,
    pub filters: Vec<LoadedFilter>,
    pub errors: Vec<RuleError>,
    /// Files read.
    pub files: usize,
}

impl Loading {
    /// Leaves out the rules whose log source no pipeline maps (they can
    /// see no event), unless a correlation or a filter names them, and
    /// returns how many. For a long-running engine: the SigmaHQ corpus
    /// holds thousands of rules for Windows, network and cloud logs mlsoc
    /// has no events of, whose compiled detections would only take memory.
    pub fn drop_unrouted(&mut self) -> usize {
        let Loading {
            rules,
            correlations,
            filters,
            ..
        } = self;
        let named: std::collections::HashSet<&str> = correlations
            .iter()
            .flat_map(|c| &c.correlation.rules)
            .chain(filters.iter().flat_map(|f| &f.filter.rules))
            .map(String::as_str)
            .collect();
        let before = rules.len();
        rules.retain(|l| {
            let unrouted = l
                .route
                .as_ref()
                .is_some_and(crate::pipeline::Route::matches_nothing);
            let is_named = [&l.rule.id, &l.rule.name]
                .into_iter()
                .flatten()
                .any(|n| named.contains(n.as_str()));
            !unrouted || is_named
        });
        before - rules.len()
    }
}

/// Reads rule files with a placeholder configuration and processing
/// pipelines (none by default: rules are read as written).
#[derive(Debug, Clone, Default)]
pub struct Loader {
    pub placeholders: Placeholders,
    pub pipelines: Vec<crate::pipeline::Pipeline>,
}

impl Loader {
    pub fn new(placeholders: Placeholders) -> Loader {
        Loader {
            placeholders,
            pipelines: Vec::new(),
        }
    }

    /// Applies `pipelines` to every rule and filter before compiling it,
    /// and routes each rule to the events of its log source.
    pub fn with_pipelines(mut self, pipelines: Vec<crate::pipeline::Pipeline>) -> Loader {
        self.pipelines = pipelines;
        self
    }

    /// Loads every `.yml`/`.yaml` file under each directory, except rule
    /// test files (`*.tests.yml`), in path order; files named directly are
    /// read whatever their name.
    pub fn load_paths(&self, paths: &[PathBuf]) -> Loading {
        let mut out = Loading::default();
        let mut files = Vec::new();
        for p in paths {
            if p.is_dir() {
                if let Err(e) = collect(p, 0, false, &mut files) {
                    out.errors.push(RuleError {
                        path: p.clone(),
                        line: 0,
                        kind: ErrorKind::Io,
                        message: format!("cannot read the directory: {e}"),
                    });
                }
            } else {
                files.push(p.clone());
            }
        }
        for f in files {
            out.files += 1;
            match read_limited(&f) {
                Ok(text) => self.load_text(&text, &f, &mut out),
                Err(message) => out.errors.push(RuleError {
                    path: f.clone(),
                    line: 0,
                    kind: ErrorKind::Io,
                    message,
                }),
            }
        }
        check_duplicate_ids(&mut out);
        out
    }

    /// Loads rule files given as (path, text) pairs, e.g. the rule pack
    /// compiled into the binary.
    pub fn load_texts<'a>(&self, files: impl IntoIterator<Item = (PathBuf, &'a str)>) -> Loading {
        let mut out = Loading::default();
        for (path, text) in files {
            out.files += 1;
            self.load_text(text, &path, &mut out);
        }
        check_duplicate_ids(&mut out);
        out
    }

    /// Loads the documents of one file's text.
    pub fn load_text(&self, text: &str, path: &Path, out: &mut Loading) {
        for (start, chunk) in documents(text) {
            if chunk.trim().is_empty()
                || chunk
                    .lines()
                    .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
            {
                continue;
            }
            let mut doc: Y = match serde_norway::from_str(chunk) {
                Ok(d) => d,
                Err(e) => {
                    let line = e.location().map_or(start, |l| start + l.line() - 1);
                    out.errors.push(RuleError {
                        path: path.to_path_buf(),
                        line,
                        kind: ErrorKind::Yaml,
                        message: format!("not valid YAML: {}", strip_location(&e.to_string())),
                    });
                    continue;
                }
            };
            if !doc.is_mapping() {
                out.errors.push(RuleError {
                    path: path.to_path_buf(),
                    line: start,
                    kind: ErrorKind::Invalid,
                    message: "a Sigma document must be a YAML map".into(),
                });
                continue;
            }
            let fail = |p: Problem, kind: ErrorKind| RuleError {
                path: path.to_path_buf(),
                line: p
                    .near
                    .as_deref()
                    .and_then(|n| find_line(chunk, n))
                    .map_or(start, |l| start + l),
                kind,
                message: p.message,
            };
            let origin = Origin {
                path: path.to_path_buf(),
                line: start,
            };
            if doc.get("correlation").is_some() {
                match crate::correlation::correlation_from_yaml(&doc) {
                    Ok(correlation) => out.correlations.push(LoadedCorrelation {
                        correlation,
                        origin,
                    }),
                    Err(p) => out.errors.push(fail(p, ErrorKind::Invalid)),
                }
                continue;
            }
            if !self.pipelines.is_empty()
                && let Err(m) = crate::pipeline::apply_all(&self.pipelines, &mut doc)
            {
                out.errors.push(fail(
                    Problem {
                        message: format!("processing pipeline: {m}"),
                        near: None,
                    },
                    ErrorKind::Invalid,
                ));
                continue;
            }
            if doc.get("filter").is_some() {
                match crate::filter::filter_from_yaml(&doc, &self.placeholders) {
                    Ok(filter) => out.filters.push(LoadedFilter { filter, origin }),
                    Err(p) => {
                        let kind = kind_of(&p);
                        out.errors.push(fail(p, kind));
                    }
                }
                continue;
            }
            if let Some(action) = doc.get("action").and_then(Y::as_str) {
                out.errors.push(fail(
                    Problem {
                        message: format!(
                            "`action: {action}` rule collections are Sigma 1; write one document per rule"
                        ),
                        near: Some("action".into()),
                    },
                    ErrorKind::Unsupported,
                ));
                continue;
            }
            match rule_from_yaml(&doc, &self.placeholders) {
                Ok(rule) => {
                    // With pipelines, a log source none of them maps is one
                    // mlsoc does not collect: the rule sees no event (a
                    // Windows rule must not run on MLflow logs). A rule that
                    // names no log source at all (`logsource: {}`) is for
                    // every event: a secret in any log line.
                    let ls = &rule.logsource;
                    let any = ls.category.is_none() && ls.product.is_none() && ls.service.is_none();
                    let route = if self.pipelines.is_empty() || any {
                        None
                    } else {
                        Some(
                            crate::pipeline::route_all(&self.pipelines, &rule.logsource)
                                .unwrap_or_else(crate::pipeline::Route::nothing),
                        )
                    };
                    out.rules.push(Loaded {
                        rule,
                        origin,
                        route,
                    })
                }
                Err(p) => {
                    let kind = kind_of(&p);
                    out.errors.push(fail(p, kind));
                }
            }
        }
    }
}

/// A rule refused for its placeholders, or invalid.
fn kind_of(p: &Problem) -> ErrorKind {
    if p.message.contains("has no configured values") {
        ErrorKind::Placeholder
    } else {
        ErrorKind::Invalid
    }
}

fn check_duplicate_ids(out: &mut Loading) {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut dup = Vec::new();
    for (i, l) in out.rules.iter().enumerate() {
        if let Some(id) = &l.rule.id {
            if let Some(&first) = seen.get(id) {
                dup.push((i, first));
            } else {
                seen.insert(id.clone(), i);
            }
        }
    }
    for &(i, first) in dup.iter().rev() {
        let l = out.rules.remove(i);
        let f = &out.rules[first].origin;
        out.errors.push(RuleError {
            path: l.origin.path.clone(),
            line: l.origin.line,
            kind: ErrorKind::Invalid,
            message: format!(
                "id {} is already used by the rule at {}:{}",
                l.rule.id.as_deref().unwrap_or(""),
                f.path.display(),
                f.line
            ),
        });
    }
}

fn read_limited(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if meta.len() > MAX_RULE_FILE_BYTES {
        return Err(format!(
            "the file is {} bytes, over the limit of {MAX_RULE_FILE_BYTES} bytes for a rule file",
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// The rule files (`.yml`/`.yaml`, not `*.tests.yml`) under `dir`, or with
/// `tests` its rule test files, in path order. Hidden directories are left
/// out, and nesting is followed `MAX_DIR_DEPTH` deep.
pub fn files_under(dir: &Path, tests: bool) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    collect(dir, 0, tests, &mut out)?;
    Ok(out)
}

fn collect(dir: &Path, depth: usize, tests: bool, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if depth > MAX_DIR_DEPTH {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let ft = e.file_type()?;
        if ft.is_dir() {
            if !e.file_name().to_string_lossy().starts_with('.') {
                collect(&p, depth + 1, tests, out)?;
            }
        } else if ft.is_file()
            && matches!(p.extension().and_then(|x| x.to_str()), Some("yml" | "yaml"))
            && is_test_file(&p) == tests
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Rule test files (`*.tests.yml`, read by `mlsoc rules test`) sit beside
/// the rules they test; a directory walk leaves them out.
pub fn is_test_file(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".tests.yml") || n.ends_with(".tests.yaml"))
}

/// Splits a multi-document YAML text at `---` lines: (1-based first line
/// of the document, its text).
fn documents(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let t = line.trim_end();
        if t == "---" || t.starts_with("--- ") || t == "..." {
            out.push((start_line, &text[start_byte..offset]));
            start_byte = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    out.push((start_line, &text[start_byte..]));
    out
}

/// 0-based line (within `chunk`) of the first line naming `key` as a key.
fn find_line(chunk: &str, key: &str) -> Option<usize> {
    let plain = chunk.lines().position(|l| {
        let t = l.trim_start().trim_start_matches("- ");
        t.starts_with(key) && t[key.len()..].trim_start().starts_with(':')
            || t.starts_with(&format!("'{key}'"))
            || t.starts_with(&format!("\"{key}\""))
    });
    plain.or_else(|| chunk.lines().position(|l| l.contains(key)))
}

fn strip_location(msg: &str) -> String {
    // serde_norway says " at line X column Y" inside its message; the line
    // is reported apart.
    let Some(i) = msg.find(" at line ") else {
        return msg.to_string();
    };
    let rest = &msg[i + " at line ".len()..];
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let n = digits(rest);
    let after = &rest[n..];
    let tail = match after.strip_prefix(" column ") {
        Some(c) => &c[digits(c)..],
        None => after,
    };
    format!("{}{}", &msg[..i], tail)
}
