//! Words of an iptables-save line: splitting on whitespace with
//! iptables-save's double quoting, the 1-based column of each word (counted
//! in characters), and the located errors of the options read from them.

use ringfence_diag::InputError;
use std::borrow::Cow;

/// A word of a rule line and the 1-based column where it starts. Unquoted
/// words borrow the line; only words with quotes own their unescaped text.
#[derive(Debug, Clone)]
pub(super) struct Tok<'t> {
    /// The word, unquoted and unescaped.
    pub text: Cow<'t, str>,
    /// The 1-based column (in characters) where it starts.
    pub col: u64,
}

/// Split a line into words the way iptables-save quotes them: double quotes
/// group, a backslash escapes the next character inside quotes.
fn tokenize<'t>(line: &'t str, file: &str, lineno: u64) -> Result<Vec<Tok<'t>>, InputError> {
    let mut toks = Vec::with_capacity(24);
    tokenize_into(line, file, lineno, &mut toks)?;
    Ok(toks)
}

/// [`tokenize`] into a reused vector (cleared first).
pub(super) fn tokenize_into<'t>(
    line: &'t str,
    file: &str,
    lineno: u64,
    toks: &mut Vec<Tok<'t>>,
) -> Result<(), InputError> {
    toks.clear();
    if line.is_ascii() {
        return tokenize_ascii(line, file, lineno, toks);
    }
    let mut it = line.char_indices().peekable();
    // Characters consumed so far: columns count characters, not bytes.
    let mut col: u64 = 0;
    loop {
        while it.next_if(|&(_, c)| c.is_whitespace()).is_some() {
            col += 1;
        }
        let Some(&(start, _)) = it.peek() else {
            break;
        };
        let start_col = col + 1;
        let mut owned: Option<String> = None;
        let mut end = start;
        while let Some(&(at, c)) = it.peek() {
            if c.is_whitespace() {
                break;
            }
            it.next();
            col += 1;
            if c != '"' {
                if let Some(s) = owned.as_mut() {
                    s.push(c);
                }
                end = at + c.len_utf8();
                continue;
            }
            let open_col = col;
            let s = owned.get_or_insert_with(|| line[start..at].to_string());
            loop {
                match it.next() {
                    None => {
                        return Err(InputError::at(
                            file,
                            lineno,
                            open_col,
                            "unterminated double quote: expected a closing `\"`",
                        ))
                    }
                    Some((_, '"')) => {
                        col += 1;
                        break;
                    }
                    Some((_, '\\')) if it.peek().is_some() => {
                        let (_, n) = it.next().expect("peeked");
                        s.push(n);
                        col += 2;
                    }
                    Some((_, c)) => {
                        s.push(c);
                        col += 1;
                    }
                }
            }
        }
        let text = match owned {
            Some(s) => Cow::Owned(s),
            None => Cow::Borrowed(&line[start..end]),
        };
        toks.push(Tok {
            text,
            col: start_col,
        });
    }
    Ok(())
}

/// [`tokenize_into`] for an ASCII line: bytes are characters, so columns are
/// byte offsets and words are found by a byte scan.
fn tokenize_ascii<'t>(
    line: &'t str,
    file: &str,
    lineno: u64,
    toks: &mut Vec<Tok<'t>>,
) -> Result<(), InputError> {
    let b = line.as_bytes();
    let space = |c: u8| c == b' ' || (b'\t'..=b'\r').contains(&c);
    let mut i = 0;
    while i < b.len() {
        if space(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !space(b[i]) && b[i] != b'"' {
            i += 1;
        }
        if i == b.len() || space(b[i]) {
            toks.push(Tok {
                text: Cow::Borrowed(&line[start..i]),
                col: start as u64 + 1,
            });
            continue;
        }
        // A quote inside the word: build the unescaped text.
        let mut s = String::from(&line[start..i]);
        while i < b.len() && !space(b[i]) {
            if b[i] != b'"' {
                s.push(b[i] as char);
                i += 1;
                continue;
            }
            let open = i;
            i += 1;
            loop {
                match b.get(i) {
                    None => {
                        return Err(InputError::at(
                            file,
                            lineno,
                            open as u64 + 1,
                            "unterminated double quote: expected a closing `\"`",
                        ))
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < b.len() => {
                        s.push(b[i + 1] as char);
                        i += 2;
                    }
                    Some(&c) => {
                        s.push(c as char);
                        i += 1;
                    }
                }
            }
        }
        toks.push(Tok {
            text: Cow::Owned(s),
            col: start as u64 + 1,
        });
    }
    Ok(())
}

/// Tokens of a rule line without the optional `[packets:bytes]` prefix.
pub(super) fn rule_tokens<'t>(raw: &'t str, file: &str, line: u64) -> Vec<Tok<'t>> {
    let mut toks = tokenize(raw, file, line).unwrap_or_default();
    if toks
        .first()
        .is_some_and(|t| t.text.starts_with('[') && t.text.ends_with(']'))
    {
        toks.remove(0);
    }
    toks
}

/// The words of one rule line after `-A CHAIN`, with what locating an
/// error in them needs.
pub(super) struct Words<'a, 't> {
    /// The words after `-A CHAIN`.
    pub toks: &'a [Tok<'t>],
    /// The file the line is in.
    pub file: &'a str,
    /// The line's number.
    pub line: u64,
    /// The column just past the line's last word.
    pub end_col: u64,
}

impl<'a, 't> Words<'a, 't> {
    /// The words of a rule line tokenized by [`rule_tokens`], whose first two
    /// are `-A CHAIN`.
    pub(super) fn of_rule(all: &'a [Tok<'t>], file: &'a str, line: u64) -> Self {
        let end_col = all
            .last()
            .map(|t| t.col + t.text.chars().count() as u64)
            .unwrap_or(1);
        Words {
            toks: &all[2..],
            file,
            line,
            end_col,
        }
    }

    /// An error at word `t`.
    pub(super) fn err(&self, t: &Tok, msg: String) -> InputError {
        InputError::at(self.file, self.line, t.col, msg)
    }

    /// The value of option `opt` at index `i`: the next word, or an error
    /// just past the end of the line when there is none.
    pub(super) fn value(&self, i: usize, opt: &Tok) -> Result<Tok<'t>, InputError> {
        self.toks.get(i + 1).cloned().ok_or_else(|| {
            InputError::at(
                self.file,
                self.line,
                self.end_col + 1,
                format!("`{}` needs a value: found the end of the line", opt.text),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<(String, u64, bool)> {
        tokenize(line, "t.rules", 1)
            .unwrap()
            .into_iter()
            .map(|t| {
                let borrowed = matches!(t.text, Cow::Borrowed(_));
                (t.text.into_owned(), t.col, borrowed)
            })
            .collect()
    }

    #[test]
    fn tokenizer_borrows_plain_words_and_unescapes_quoted_ones() {
        let w = words(r#"-A IN  -m comment --comment "a \"b\" c"x -j ACCEPT"#);
        assert_eq!(w[0], ("-A".into(), 1, true));
        assert_eq!(w[1], ("IN".into(), 4, true));
        assert_eq!(w[5], ("a \"b\" cx".into(), 29, false));
        assert_eq!(w[6], ("-j".into(), 42, true));
        // A quote in the middle of a word joins the parts around it.
        assert_eq!(words(r#"ab"c d"e"#), vec![("abc de".into(), 1, false)]);
    }

    #[test]
    fn tokenizer_counts_columns_in_characters_and_reports_open_quotes() {
        // `é` and the no-break space are one character each; U+00A0 is whitespace.
        let w = words("-A é\u{a0}x");
        assert_eq!(w[1], ("é".into(), 4, true));
        assert_eq!(w[2], ("x".into(), 6, true));
        let e = tokenize("-A X --comment \"é oops", "t.rules", 3).unwrap_err();
        assert_eq!(e.position(), "t.rules:3:16");
        // A backslash at the very end cannot escape anything.
        assert!(tokenize("\"a\\", "t.rules", 1).is_err());
    }

    #[test]
    fn ascii_and_general_tokenizers_agree() {
        let lines = [
            "-A X -s 10.0.0.1/32 -m comment --comment \"a \\\"q\\\" b\" -j ACCEPT",
            "  [1:2]\t-A  X\x0b-j\x0cDROP\r",
            "ab\"c d\"e \"\" x\"\\\\\"",
            "\"open",
            "x \"a\\",
            "",
            "   ",
        ];
        for line in lines {
            let mut fast = Vec::new();
            let f = tokenize_ascii(line, "t", 1, &mut fast).map_err(|e| e.position());
            // The general path, forced by a trailing non-ASCII word.
            let wide = format!("{line} é");
            let mut slow = Vec::new();
            let s = tokenize_into(&wide, "t", 1, &mut slow).map_err(|e| e.position());
            match (f, s) {
                (Ok(()), Ok(())) => {
                    let last = slow.pop().expect("é");
                    assert_eq!(last.text, "é");
                    let a: Vec<_> = fast.iter().map(|t| (t.text.to_string(), t.col)).collect();
                    let b: Vec<_> = slow.iter().map(|t| (t.text.to_string(), t.col)).collect();
                    assert_eq!(a, b, "{line:?}");
                }
                (Err(a), Err(b)) => assert_eq!(a, b, "{line:?}"),
                (a, b) => panic!("{line:?}: {a:?} vs {b:?}"),
            }
        }
    }
}
