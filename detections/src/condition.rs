//! The condition of a Sigma rule (rules specification, "Condition").
//!
//! Precedence, least to most binding: `or`, `and`, `not`, `x of`,
//! parentheses. `1 of them` / `all of them` cover every search identifier
//! not starting with `_`; `1 of sel*` / `all of sel*` the identifiers a
//! wildcard pattern matches.

/// A parsed condition over search identifiers (resolved to indices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    Search(usize),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    /// At least `n` of the searches (`1 of x`; `all` is `n == len`).
    AtLeast(usize, Vec<usize>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Of,
    All,
    Num(usize),
    Them,
    Ident(String),
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '(' {
            out.push(Token::LParen);
            chars.next();
            continue;
        }
        if c == ')' {
            out.push(Token::RParen);
            chars.next();
            continue;
        }
        if c == '|' {
            return Err(
                "the aggregation syntax `| count() ...` of Sigma 1 is not supported; write a correlation rule"
                    .into(),
            );
        }
        let start = i;
        let mut end = i;
        while let Some(&(j, d)) = chars.peek() {
            if d.is_whitespace() || d == '(' || d == ')' {
                break;
            }
            end = j + d.len_utf8();
            chars.next();
        }
        let word = &s[start..end];
        out.push(match word.to_ascii_lowercase().as_str() {
            "and" => Token::And,
            "or" => Token::Or,
            "not" => Token::Not,
            "of" => Token::Of,
            "all" => Token::All,
            "them" => Token::Them,
            w if w.bytes().all(|b| b.is_ascii_digit()) => Token::Num(
                w.parse()
                    .map_err(|_| format!("`{word}` is not a usable count"))?,
            ),
            _ => {
                if !word
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '*' | '?'))
                {
                    return Err(format!("unexpected `{word}`"));
                }
                Token::Ident(word.to_string())
            }
        });
    }
    Ok(out)
}

/// Parses `text` given the rule's search identifiers (in definition order).
pub fn parse(text: &str, names: &[String]) -> Result<Cond, String> {
    let toks = tokenize(text)?;
    if toks.is_empty() {
        return Err("the condition is empty".into());
    }
    let mut p = Parser {
        toks,
        pos: 0,
        names,
        depth: 0,
    };
    let c = p.or()?;
    if p.pos != p.toks.len() {
        return Err(format!(
            "unexpected {} after a complete condition",
            describe(&p.toks[p.pos])
        ));
    }
    Ok(c)
}

fn describe(t: &Token) -> String {
    match t {
        Token::LParen => "`(`".into(),
        Token::RParen => "`)`".into(),
        Token::And => "`and`".into(),
        Token::Or => "`or`".into(),
        Token::Not => "`not`".into(),
        Token::Of => "`of`".into(),
        Token::All => "`all`".into(),
        Token::Them => "`them`".into(),
        Token::Num(n) => format!("`{n}`"),
        Token::Ident(s) => format!("`{s}`"),
    }
}

/// Nesting beyond this is refused (hostile rules).
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    toks: Vec<Token>,
    pos: usize,
    names: &'a [String],
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn or(&mut self) -> Result<Cond, String> {
        let mut items = vec![self.and()?];
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap()
        } else {
            Cond::Or(items)
        })
    }

    fn and(&mut self) -> Result<Cond, String> {
        let mut items = vec![self.not()?];
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap()
        } else {
            Cond::And(items)
        })
    }

    fn not(&mut self) -> Result<Cond, String> {
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            self.enter()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Cond::Not(Box::new(inner)));
        }
        self.atom()
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "the condition nests deeper than {MAX_DEPTH} levels"
            ));
        }
        Ok(())
    }

    fn atom(&mut self) -> Result<Cond, String> {
        let Some(t) = self.toks.get(self.pos).cloned() else {
            return Err("the condition ends where a search identifier was expected".into());
        };
        self.pos += 1;
        match t {
            Token::LParen => {
                self.enter()?;
                let c = self.or()?;
                self.depth -= 1;
                if self.peek() != Some(&Token::RParen) {
                    return Err("a `(` is not closed".into());
                }
                self.pos += 1;
                Ok(c)
            }
            Token::Num(_) | Token::All => {
                if self.peek() != Some(&Token::Of) {
                    return Err(format!("{} must be followed by `of`", describe(&t)));
                }
                self.pos += 1;
                let target = self.toks.get(self.pos).cloned();
                self.pos += 1;
                let set: Vec<usize> = match target {
                    Some(Token::Them) => (0..self.names.len())
                        .filter(|&i| !self.names[i].starts_with('_'))
                        .collect(),
                    Some(Token::Ident(pat)) => {
                        let set: Vec<usize> = (0..self.names.len())
                            .filter(|&i| ident_matches(&pat, &self.names[i]))
                            .collect();
                        if set.is_empty() {
                            return Err(format!("`{pat}` matches no search identifier"));
                        }
                        set
                    }
                    other => {
                        return Err(format!(
                            "`of` must be followed by `them` or an identifier pattern, not {}",
                            other.map_or("the end".into(), |t| describe(&t))
                        ));
                    }
                };
                if set.is_empty() {
                    return Err("`them` covers no search identifier".into());
                }
                let n = match t {
                    Token::All => set.len(),
                    Token::Num(0) => return Err("`0 of` is not a condition".into()),
                    Token::Num(n) => n,
                    _ => unreachable!(),
                };
                Ok(Cond::AtLeast(n, set))
            }
            Token::Ident(name) => {
                if name.contains(['*', '?']) {
                    return Err(format!(
                        "`{name}` is a pattern: write `1 of {name}` or `all of {name}`"
                    ));
                }
                match self.names.iter().position(|n| *n == name) {
                    Some(i) => Ok(Cond::Search(i)),
                    None => Err(format!("`{name}` is not a search identifier of this rule")),
                }
            }
            other => Err(format!("unexpected {}", describe(&other))),
        }
    }
}

/// Identifier patterns use `*` (any characters) and `?` (one).
fn ident_matches(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi + 1, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

impl Cond {
    /// Evaluates with `search(i)` giving the result of search `i`.
    pub fn eval(&self, search: &mut impl FnMut(usize) -> bool) -> bool {
        match self {
            Cond::Search(i) => search(*i),
            Cond::Not(c) => !c.eval(search),
            Cond::And(cs) => cs.iter().all(|c| c.eval(search)),
            Cond::Or(cs) => cs.iter().any(|c| c.eval(search)),
            Cond::AtLeast(n, set) => {
                let mut hits = 0;
                for (k, i) in set.iter().enumerate() {
                    if search(*i) {
                        hits += 1;
                        if hits >= *n {
                            return true;
                        }
                    }
                    // Not enough left to reach `n`.
                    if hits + (set.len() - k - 1) < *n {
                        return false;
                    }
                }
                false
            }
        }
    }

    /// Relative cost of evaluating the condition, given each search's.
    pub(crate) fn cost(&self, search: &impl Fn(usize) -> u32) -> u32 {
        match self {
            Cond::Search(i) => search(*i),
            Cond::Not(c) => c.cost(search),
            Cond::And(cs) | Cond::Or(cs) => cs
                .iter()
                .map(|c| c.cost(search))
                .fold(0, u32::saturating_add),
            Cond::AtLeast(_, set) => set.iter().map(|i| search(*i)).fold(0, u32::saturating_add),
        }
    }

    /// Orders the operands of `and` and `or` cheapest first, so that the
    /// short-circuit skips the expensive ones as often as it can (stable:
    /// equal costs keep the written order). Searches are pure: the result
    /// is the same in any order.
    pub(crate) fn order_by_cost(&mut self, search: &impl Fn(usize) -> u32) {
        match self {
            Cond::Search(_) => {}
            Cond::Not(c) => c.order_by_cost(search),
            Cond::And(cs) | Cond::Or(cs) => {
                cs.iter_mut().for_each(|c| c.order_by_cost(search));
                cs.sort_by_cached_key(|c| c.cost(search));
            }
            Cond::AtLeast(_, set) => set.sort_by_cached_key(|i| search(*i)),
        }
    }

    /// Every search the condition can read.
    pub fn searches(&self, out: &mut Vec<usize>) {
        match self {
            Cond::Search(i) => out.push(*i),
            Cond::Not(c) => c.searches(out),
            Cond::And(cs) | Cond::Or(cs) => cs.iter().for_each(|c| c.searches(out)),
            Cond::AtLeast(_, set) => out.extend(set),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn eval(cond: &str, n: &[&str], truth: &[bool]) -> bool {
        parse(cond, &names(n)).unwrap().eval(&mut |i| truth[i])
    }

    /// Ordering by cost keeps every result (all 32 truth assignments of
    /// a condition with `not`, `and`, `or` and `1 of`) and moves the
    /// expensive search behind the cheap ones: with `b` true, `a` (a
    /// regex, say) is never evaluated.
    #[test]
    fn cost_order_keeps_results_and_skips_expensive_searches() {
        let n = ["a", "b", "c", "d", "x1"];
        let text = "a and not b or (c and d) or 1 of x*";
        let written = parse(text, &names(&n)).unwrap();
        let costs = [64u32, 1, 8, 1, 2];
        let mut ordered = written.clone();
        ordered.order_by_cost(&|i| costs[i]);
        assert_ne!(ordered, written, "the order changed");
        for bits in 0..32u32 {
            let truth: Vec<bool> = (0..5).map(|i| bits & (1 << i) != 0).collect();
            assert_eq!(
                ordered.eval(&mut |i| truth[i]),
                written.eval(&mut |i| truth[i]),
                "{truth:?}"
            );
            if truth[1] {
                let mut read_a = false;
                ordered.eval(&mut |i| {
                    read_a |= i == 0;
                    truth[i]
                });
                assert!(!read_a, "{truth:?}");
            }
        }
    }

    // Rules specification, "Condition": operator precedence or < and < not.
    #[test]
    fn precedence() {
        let n = ["a", "b", "c"];
        // a or (b and c)
        assert!(eval("a or b and c", &n, &[true, false, false]));
        assert!(!eval("a and b or c", &n, &[true, false, false]));
        // not binds tighter than and
        assert!(eval("not a and b", &n, &[false, true, false]));
        assert!(!eval("not (a and b)", &n, &[true, true, false]));
        assert!(eval("a and (b or c)", &n, &[true, false, true]));
        assert!(
            eval("NOT a AND b", &n, &[false, true, false]),
            "keywords in any case"
        );
    }

    // Rules specification, "1/all of them" and "1/all of search-identifier-pattern".
    #[test]
    fn of_forms() {
        let n = ["selection_a", "selection_b", "filter", "_hidden"];
        assert!(eval("1 of selection*", &n, &[false, true, false, false]));
        assert!(!eval("all of selection*", &n, &[false, true, false, false]));
        assert!(eval("all of selection*", &n, &[true, true, false, false]));
        // `them` leaves out identifiers starting with `_`.
        assert!(eval("all of them", &n, &[true, true, true, false]));
        assert!(!eval("1 of them", &n, &[false, false, false, true]));
        // An explicit pattern may name them.
        assert!(eval("1 of _*", &n, &[false, false, false, true]));
        assert!(eval(
            "1 of selection* and not 1 of filter*",
            &n,
            &[true, false, false, false]
        ));
        assert!(eval("2 of them", &n, &[true, false, true, false]));
        assert!(eval("1 of selection_? ", &n, &[false, true, false, false]));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let n = names(&["sel", "filter"]);
        let err = |c: &str| parse(c, &n).unwrap_err();
        assert!(err("sel and unknown").contains("`unknown` is not a search identifier"));
        assert!(err("(sel").contains("not closed"));
        assert!(err("sel and").contains("ends where"));
        assert!(err("1 of nothing*").contains("matches no search identifier"));
        assert!(err("sel*").contains("pattern"));
        assert!(err("sel | count() > 5").contains("correlation"));
        assert!(err("").contains("empty"));
        assert!(err("sel sel").contains("after a complete condition"));
        assert!(err("all sel").contains("followed by `of`"));
        let deep = format!("{}sel{}", "(".repeat(200), ")".repeat(200));
        assert!(err(&deep).contains("deeper"));
        let nots = format!("{}sel", "not ".repeat(200));
        assert!(err(&nots).contains("deeper"));
    }
}
