//! Sigma string values: wildcards, escapes and placeholders, and the
//! string matchers they compile to.
//!
//! Sigma rules specification, "Wildcards" and "Escaping": `*` matches any
//! number of characters, `?` exactly one; a backslash escapes `*`, `?` and
//! itself, and a backslash before any other character is a plain
//! backslash. Matching is case-insensitive unless the `cased` modifier is
//! given.

use std::borrow::Cow;

/// One piece of a Sigma string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Lit(String),
    /// `*`
    Many,
    /// `?`
    One,
    /// `%name%` (only read with the `expand` modifier).
    Placeholder(String),
}

/// A Sigma string value, as a sequence of literal runs and wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SigmaStr(pub Vec<Tok>);

impl SigmaStr {
    /// Parses wildcards and escapes (and placeholders when `placeholders`).
    pub fn parse(s: &str, placeholders: bool) -> SigmaStr {
        let mut toks: Vec<Tok> = Vec::new();
        let mut lit = String::new();
        let chars: Vec<char> = s.chars().collect();
        let mut i = 0;
        let flush = |lit: &mut String, toks: &mut Vec<Tok>| {
            if !lit.is_empty() {
                toks.push(Tok::Lit(std::mem::take(lit)));
            }
        };
        while i < chars.len() {
            let c = chars[i];
            match c {
                '\\' => match chars.get(i + 1) {
                    Some(&n @ ('*' | '?' | '\\')) => {
                        lit.push(n);
                        i += 2;
                        continue;
                    }
                    Some('%') if placeholders => {
                        lit.push('%');
                        i += 2;
                        continue;
                    }
                    _ => lit.push('\\'),
                },
                '*' => {
                    flush(&mut lit, &mut toks);
                    toks.push(Tok::Many);
                }
                '?' => {
                    flush(&mut lit, &mut toks);
                    toks.push(Tok::One);
                }
                '%' if placeholders => {
                    let rest: String = chars[i + 1..].iter().collect();
                    match rest.find('%') {
                        Some(end) if end > 0 => {
                            flush(&mut lit, &mut toks);
                            toks.push(Tok::Placeholder(rest[..end].to_string()));
                            i += rest[..end].chars().count() + 2;
                            continue;
                        }
                        _ => lit.push('%'),
                    }
                }
                _ => lit.push(c),
            }
            i += 1;
        }
        flush(&mut lit, &mut toks);
        SigmaStr(toks)
    }

    /// A string of plain characters (no wildcards).
    pub fn literal(s: &str) -> SigmaStr {
        if s.is_empty() {
            SigmaStr(vec![])
        } else {
            SigmaStr(vec![Tok::Lit(s.to_string())])
        }
    }

    /// The characters of the value with wildcards written as `*`/`?`
    /// (for encoding modifiers, which encode the value as written).
    pub fn plain_text(&self) -> String {
        let mut out = String::new();
        for t in &self.0 {
            match t {
                Tok::Lit(s) => out.push_str(s),
                Tok::Many => out.push('*'),
                Tok::One => out.push('?'),
                Tok::Placeholder(p) => {
                    out.push('%');
                    out.push_str(p);
                    out.push('%');
                }
            }
        }
        out
    }

    pub fn has_placeholders(&self) -> bool {
        self.0.iter().any(|t| matches!(t, Tok::Placeholder(_)))
    }

    pub fn prepend_many(&mut self) {
        if self.0.first() != Some(&Tok::Many) {
            self.0.insert(0, Tok::Many);
        }
    }

    pub fn append_many(&mut self) {
        if self.0.last() != Some(&Tok::Many) {
            self.0.push(Tok::Many);
        }
    }

    /// Applies `f` to every literal run.
    pub fn map_lits(&self, f: impl Fn(&str) -> String) -> SigmaStr {
        SigmaStr(
            self.0
                .iter()
                .map(|t| match t {
                    Tok::Lit(s) => Tok::Lit(f(s)),
                    other => other.clone(),
                })
                .collect(),
        )
    }
}

/// Lower-cases for case-insensitive comparison: ASCII without allocating
/// when the text is ASCII and already lower case.
pub fn fold(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

/// A compiled string comparison. Patterns of case-insensitive matchers
/// are stored folded; the input is folded before comparing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    /// `*` alone: any value (present and not null).
    Any,
    /// Anything else: literal runs and wildcards.
    Glob(Vec<Tok>),
}

/// A string matcher with its case handling.
#[derive(Debug, Clone)]
pub struct StrMatcher {
    pub m: StrMatch,
    pub cased: bool,
    /// For `Contains`: the substring searcher, built once.
    finder: Option<Box<memchr::memmem::Finder<'static>>>,
}

impl PartialEq for StrMatcher {
    fn eq(&self, other: &StrMatcher) -> bool {
        self.m == other.m && self.cased == other.cased
    }
}

impl Eq for StrMatcher {}

impl StrMatcher {
    /// Compiles a Sigma string (placeholders must have been expanded).
    pub fn new(s: &SigmaStr, cased: bool) -> StrMatcher {
        let toks: Vec<Tok> = if cased {
            s.0.clone()
        } else {
            s.map_lits(|l| fold(l).into_owned()).0
        };
        // Merge runs of `*`.
        let mut merged: Vec<Tok> = Vec::with_capacity(toks.len());
        for t in toks {
            if t == Tok::Many && merged.last() == Some(&Tok::Many) {
                continue;
            }
            merged.push(t);
        }
        let m = match &merged[..] {
            [] => StrMatch::Exact(String::new()),
            [Tok::Lit(a)] => StrMatch::Exact(a.clone()),
            [Tok::Many] => StrMatch::Any,
            [Tok::Lit(a), Tok::Many] => StrMatch::Prefix(a.clone()),
            [Tok::Many, Tok::Lit(a)] => StrMatch::Suffix(a.clone()),
            [Tok::Many, Tok::Lit(a), Tok::Many] => StrMatch::Contains(a.clone()),
            _ => StrMatch::Glob(merged),
        };
        let finder = match &m {
            StrMatch::Contains(s) => Some(Box::new(
                memchr::memmem::Finder::new(s.as_bytes()).into_owned(),
            )),
            _ => None,
        };
        StrMatcher { m, cased, finder }
    }

    /// The literal an input must contain for this matcher to match, if
    /// any (used to pre-filter rules).
    pub fn required_literal(&self) -> Option<&str> {
        match &self.m {
            StrMatch::Exact(s)
            | StrMatch::Prefix(s)
            | StrMatch::Suffix(s)
            | StrMatch::Contains(s) => Some(s.as_str()).filter(|s| !s.is_empty()),
            StrMatch::Any => None,
            StrMatch::Glob(toks) => toks
                .iter()
                .filter_map(|t| match t {
                    Tok::Lit(s) => Some(s.as_str()),
                    _ => None,
                })
                .max_by_key(|s| s.len()),
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        if self.cased {
            self.matches_folded(value)
        } else {
            self.matches_folded(&fold(value))
        }
    }

    /// [`StrMatcher::matches`] with the input already folded by [`fold`].
    pub fn matches_prefolded(&self, original: &str, folded: &str) -> bool {
        if self.cased {
            self.matches_folded(original)
        } else {
            self.matches_folded(folded)
        }
    }

    fn matches_folded(&self, v: &str) -> bool {
        match &self.m {
            StrMatch::Exact(s) => v == s,
            StrMatch::Prefix(s) => v.starts_with(s.as_str()),
            StrMatch::Suffix(s) => v.ends_with(s.as_str()),
            StrMatch::Contains(s) => match &self.finder {
                Some(f) => f.find(v.as_bytes()).is_some(),
                None => memchr::memmem::find(v.as_bytes(), s.as_bytes()).is_some(),
            },
            StrMatch::Any => true,
            StrMatch::Glob(toks) => glob(toks, v),
        }
    }
}

/// Wildcard matching with backtracking on the last `*` only: linear in
/// practice, at most O(n·m). A star followed by a literal jumps to the
/// literal's next occurrence (memmem) instead of trying every position.
fn glob(toks: &[Tok], v: &str) -> bool {
    let mut ti = 0;
    let mut vi = 0;
    // (token index after the star, input position it was tried at)
    let mut star: Option<(usize, usize)> = None;
    let vb = v.as_bytes();
    // The first position at or after `from` where the literal after a
    // star can match (a match of a UTF-8 literal starts on a character
    // boundary); `None` when it occurs nowhere after: no later try of the
    // star can match either. Without a literal next, `from` itself.
    let next_try = |next: usize, from: usize| -> Option<usize> {
        match toks.get(next) {
            Some(Tok::Lit(s) | Tok::Placeholder(s)) if !s.is_empty() => {
                memchr::memmem::find(&vb[from..], s.as_bytes()).map(|p| from + p)
            }
            _ => Some(from),
        }
    };
    loop {
        if ti < toks.len() {
            match &toks[ti] {
                Tok::Many => {
                    let Some(at) = next_try(ti + 1, vi) else {
                        return false;
                    };
                    star = Some((ti + 1, at));
                    ti += 1;
                    vi = at;
                    continue;
                }
                Tok::One => {
                    if vi < vb.len() {
                        // One character, not one byte.
                        let ch = v[vi..].chars().next().map_or(1, char::len_utf8);
                        vi += ch;
                        ti += 1;
                        continue;
                    }
                }
                Tok::Lit(s) | Tok::Placeholder(s) => {
                    if vb[vi..].starts_with(s.as_bytes()) {
                        vi += s.len();
                        ti += 1;
                        continue;
                    }
                }
            }
        } else if vi == vb.len() {
            return true;
        }
        // Mismatch: let the last star take one more character.
        match star {
            Some((next, at)) if at < vb.len() => {
                let ch = v[at..].chars().next().map_or(1, char::len_utf8);
                let Some(at) = next_try(next, at + ch) else {
                    return false;
                };
                star = Some((next, at));
                ti = next;
                vi = at;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, v: &str) -> bool {
        StrMatcher::new(&SigmaStr::parse(p, false), false).matches(v)
    }

    // Sigma rules specification, "Wildcards".
    #[test]
    fn wildcards() {
        assert!(m("prog?.exe", "progA.exe"));
        assert!(!m("prog?.exe", "prog.exe"));
        assert!(!m("prog?.exe", "progAB.exe"));
        assert!(m("antivirus_V*.exe", "antivirus_V21.2.1.exe"));
        assert!(m("antivirus_V*.exe", "antivirus_V.exe"));
        assert!(m("*cmd.exe", "C:\\Windows\\cmd.exe"));
        assert!(m("a*b*c", "aXXbYYbZZc"));
        assert!(!m("a*b*c", "aXXbYYbZZ"));
        assert!(m("*", "anything"));
        assert!(m("?é?", "aéb"), "? is one character, not one byte");
        assert!(m("*.*.*", "a.b.c"));
    }

    // Sigma rules specification, "Escaping": the five listed cases.
    #[test]
    fn escaping() {
        // A plain backslash not followed by a wildcard: single or double.
        assert!(m("C:\\Windows", "c:\\windows"));
        assert!(m("C:\\\\Windows", "c:\\windows"));
        // An escaped wildcard is a plain character.
        assert!(m("what\\?", "what?"));
        assert!(!m("what\\?", "whatx"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "aXb"));
        // `\\*`: a backslash followed by a wildcard.
        assert!(m("dir\\\\*", "dir\\anything"));
        // `\\\*`: a backslash and a plain star.
        assert!(m("dir\\\\\\*", "dir\\*"));
        assert!(!m("dir\\\\\\*", "dir\\x"));
        // Four backslashes are two plain backslashes.
        assert!(m("\\\\\\\\server", "\\\\server"));
    }

    // Sigma modifiers appendix, "cased"; rules specification: matching is
    // case-insensitive by default.
    #[test]
    fn case() {
        assert!(m("CMD.EXE", "cmd.exe"));
        assert!(m("ÄrGER", "ärger"));
        let cased = StrMatcher::new(&SigmaStr::parse("CMD", false), true);
        assert!(cased.matches("CMD"));
        assert!(!cased.matches("cmd"));
    }

    #[test]
    fn shapes_and_literals() {
        let s = |p: &str| StrMatcher::new(&SigmaStr::parse(p, false), false);
        assert_eq!(s("abc").m, StrMatch::Exact("abc".into()));
        assert_eq!(s("ab*").m, StrMatch::Prefix("ab".into()));
        assert_eq!(s("*Ab").m, StrMatch::Suffix("ab".into()));
        assert_eq!(s("**ab**").m, StrMatch::Contains("ab".into()));
        assert_eq!(s("*").m, StrMatch::Any);
        assert_eq!(s("a*bcd?e").required_literal(), Some("bcd"));
        assert_eq!(s("").m, StrMatch::Exact(String::new()));
    }

    #[test]
    fn placeholders_only_when_asked() {
        assert_eq!(
            SigmaStr::parse("%Admins%", true).0,
            vec![Tok::Placeholder("Admins".into())]
        );
        assert_eq!(
            SigmaStr::parse("%Admins%", false).0,
            vec![Tok::Lit("%Admins%".into())]
        );
        // Sigma rules specification, "Placeholders": `\%plain%name%`.
        assert_eq!(
            SigmaStr::parse("\\%plain%name%", true).0,
            vec![Tok::Lit("%plain".into()), Tok::Placeholder("name".into())]
        );
    }

    /// The wildcard matcher against a regex built from the same pattern,
    /// on every pattern of up to 5 tokens over `a`, `b`, `ab`, `*`, `?`
    /// and every text of up to 5 characters over `a`, `b`, `é`.
    #[test]
    fn glob_agrees_with_a_regex_on_every_small_case() {
        let toks = ["a", "b", "ab", "*", "?"];
        let mut patterns = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = patterns
                .iter()
                .flat_map(|p| toks.iter().map(move |t| format!("{p}{t}")))
                .collect();
            patterns.extend(longer);
            patterns.sort();
            patterns.dedup();
        }
        let mut texts = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = texts
                .iter()
                .flat_map(|t| ["a", "b", "é"].map(|c| format!("{t}{c}")))
                .collect();
            texts.extend(longer);
            texts.sort();
            texts.dedup();
        }
        let mut checked = 0;
        for p in patterns.iter().filter(|p| p.chars().count() <= 6) {
            let re: String = p
                .chars()
                .map(|c| match c {
                    '*' => ".*".to_string(),
                    '?' => ".".to_string(),
                    c => c.to_string(),
                })
                .collect();
            let re = regex::Regex::new(&format!("(?s)^{re}$")).unwrap();
            let m = StrMatcher::new(&SigmaStr::parse(p, false), true);
            for t in &texts {
                assert_eq!(m.matches(t), re.is_match(t), "pattern {p:?} text {t:?}");
                checked += 1;
            }
        }
        assert!(checked > 100_000, "{checked}");
    }
}
