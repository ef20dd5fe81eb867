//! Tokens of nft's text language (`nft list ruleset` output, `nft -f` scripts).
//!
//! Words are runs of characters that are not blanks and not one of the
//! punctuation characters below, so an IPv4 or IPv6 address, a prefix
//! (`198.18.0.0/16`), a range (`80-90`), a set reference (`@name`) and a
//! variable (`$name`) are each one word; the concatenation operator `.` and
//! a map's `:` are separate words because nft writes them between blanks.
//! Comments (`#` to the end of the line) are dropped; a backslash before a
//! line break joins the lines.

use ringfence_diag::InputError;

/// Where a token starts: the source it came from (an index into the list of
/// sources), its 1-based line and 1-based column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// Index of the source file.
    pub src: usize,
    /// 1-based line.
    pub line: u64,
    /// 1-based column, counted in characters.
    pub col: u64,
}

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A bare word (keyword, name, number, address, prefix, range, `@set`, `$var`).
    Word(String),
    /// A double-quoted string, without its quotes.
    Str(String),
    /// One of `{ } ( ) , ; = | & ^ / < >` or a two-character operator
    /// `== != <= >= << >>`.
    Punct(&'static str),
    /// The end of a line (a statement separator outside braces).
    Newline,
}

/// One token and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tok {
    /// What it is.
    pub kind: Kind,
    /// Where it starts.
    pub pos: Pos,
}

impl Tok {
    /// The word, if this token is one.
    pub fn word(&self) -> Option<&str> {
        match &self.kind {
            Kind::Word(w) => Some(w),
            _ => None,
        }
    }

    /// Whether this token is the punctuation `p`.
    pub fn is(&self, p: &str) -> bool {
        matches!(&self.kind, Kind::Punct(q) if *q == p)
    }

    /// Whether this token is the word `w`.
    pub fn is_word(&self, w: &str) -> bool {
        self.word() == Some(w)
    }

    /// How the token reads in a message.
    pub fn show(&self) -> String {
        match &self.kind {
            Kind::Word(w) => format!("`{w}`"),
            Kind::Str(s) => format!("\"{s}\""),
            Kind::Punct(p) => format!("`{p}`"),
            Kind::Newline => "the end of the line".to_string(),
        }
    }
}

const TWO: [&str; 6] = ["==", "!=", "<=", ">=", "<<", ">>"];
const ONE: [&str; 13] = [
    "{", "}", "(", ")", ",", ";", "=", "|", "&", "^", "/", "<", ">",
];

fn is_punct(c: char) -> bool {
    matches!(
        c,
        '{' | '}' | '(' | ')' | ',' | ';' | '=' | '|' | '&' | '^' | '<' | '>' | '!' | '"' | '#'
    )
}

/// Split `text` (source number `src`, named `file` in errors) into tokens.
///
/// `/` is a word character inside a word (`10.0.0.0/8`) and punctuation
/// only between blanks (`tcp flags syn / syn,rst`).
pub fn lex(text: &str, src: usize, file: &str) -> Result<Vec<Tok>, InputError> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line, mut col) = (0usize, 1u64, 1u64);
    let pos = |line, col| Pos { src, line, col };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                out.push(Tok {
                    kind: Kind::Newline,
                    pos: pos(line, col),
                });
                i += 1;
                line += 1;
                col = 1;
            }
            '\\' if chars.get(i + 1) == Some(&'\n') => {
                i += 2;
                line += 1;
                col = 1;
            }
            '\\' if chars.get(i + 1) == Some(&'\r') && chars.get(i + 2) == Some(&'\n') => {
                i += 3;
                line += 1;
                col = 1;
            }
            c if c.is_whitespace() => {
                i += 1;
                col += 1;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '"' => {
                let start = pos(line, col);
                let mut s = String::new();
                i += 1;
                col += 1;
                loop {
                    match chars.get(i) {
                        None | Some('\n') => return Err(InputError::at(
                            file,
                            start.line,
                            start.col,
                            "this string is not closed: expected `\"` before the end of the line",
                        )),
                        Some('"') => {
                            i += 1;
                            col += 1;
                            break;
                        }
                        Some('\\') if chars.get(i + 1) == Some(&'"') => {
                            s.push('"');
                            i += 2;
                            col += 2;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                            col += 1;
                        }
                    }
                }
                out.push(Tok {
                    kind: Kind::Str(s),
                    pos: start,
                });
            }
            c if is_punct(c) || c == '/' && word_ends(&chars, i) => {
                let start = pos(line, col);
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                if let Some(p) = TWO.iter().find(|p| **p == two) {
                    out.push(Tok {
                        kind: Kind::Punct(p),
                        pos: start,
                    });
                    i += 2;
                    col += 2;
                    continue;
                }
                let one = c.to_string();
                let Some(p) = ONE.iter().find(|p| **p == one) else {
                    return Err(InputError::at(
                        file,
                        line,
                        col,
                        format!("unexpected `{c}`: expected `!=` or a word"),
                    ));
                };
                out.push(Tok {
                    kind: Kind::Punct(p),
                    pos: start,
                });
                i += 1;
                col += 1;
            }
            _ => {
                let start = pos(line, col);
                let mut w = String::new();
                while let Some(&ch) = chars.get(i) {
                    if ch.is_whitespace()
                        || is_punct(ch)
                        || ch == '\\' && next_is_newline(&chars, i)
                    {
                        break;
                    }
                    w.push(ch);
                    i += 1;
                    col += 1;
                }
                if w.is_empty() {
                    // A lone backslash not before a line break.
                    return Err(InputError::at(
                        file,
                        line,
                        col,
                        "unexpected `\\`: a backslash only continues a line at its very end",
                    ));
                }
                out.push(Tok {
                    kind: Kind::Word(w),
                    pos: start,
                });
            }
        }
    }
    out.push(Tok {
        kind: Kind::Newline,
        pos: pos(line, col),
    });
    Ok(out)
}

fn next_is_newline(chars: &[char], i: usize) -> bool {
    matches!(chars.get(i + 1), Some('\n'))
        || matches!(
            (chars.get(i + 1), chars.get(i + 2)),
            (Some('\r'), Some('\n'))
        )
}

/// Whether a `/` at `i` stands alone (blank or start before it): then it is
/// the mask operator, not part of a prefix.
fn word_ends(chars: &[char], i: usize) -> bool {
    i == 0 || chars[i - 1].is_whitespace()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Kind> {
        lex(s, 0, "t")
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn addresses_prefixes_and_ranges_are_single_words() {
        let k = kinds("ip saddr 2001:db8::/32 . tcp dport 80-90 accept");
        let words: Vec<String> = k
            .iter()
            .filter_map(|k| match k {
                Kind::Word(w) => Some(w.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            words,
            [
                "ip",
                "saddr",
                "2001:db8::/32",
                ".",
                "tcp",
                "dport",
                "80-90",
                "accept"
            ]
        );
    }

    #[test]
    fn operators_strings_comments_and_continuations() {
        let k = kinds("ct state != new # comment\niifname \"a b\" \\\n accept");
        assert_eq!(
            k,
            vec![
                Kind::Word("ct".into()),
                Kind::Word("state".into()),
                Kind::Punct("!="),
                Kind::Word("new".into()),
                Kind::Newline,
                Kind::Word("iifname".into()),
                Kind::Str("a b".into()),
                Kind::Word("accept".into()),
                Kind::Newline,
            ]
        );
    }

    #[test]
    fn a_lone_slash_is_the_mask_operator() {
        let k = kinds("tcp flags syn / syn,rst");
        assert!(k.contains(&Kind::Punct("/")));
    }

    #[test]
    fn an_open_string_is_a_located_error() {
        let e = lex("table ip t {\n comment \"x\n}", 0, "f.nft").unwrap_err();
        assert_eq!(e.position(), "f.nft:2:10");
    }
}
