//! Shared error and output plumbing for ringfence.
//!
//! Every parser in ringfence reports bad input as an [`InputError`]: the file,
//! a [`Locus`] inside it (line and column, a line, or a JSON pointer), what was
//! wrong and, where we can tell, how to fix it. The CLI maps these errors to
//! exit code 2. [`write_atomic`] is the one way reports and generated files
//! reach the disk, so an interrupted run never leaves half a file behind.

use std::fmt;
use std::io::Write;
use std::path::Path;

/// Where inside an input a problem sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locus {
    /// 1-based line and column.
    LineColumn {
        /// 1-based line number.
        line: u64,
        /// 1-based column number.
        column: u64,
    },
    /// A whole 1-based line (line-oriented formats such as iptables-save).
    Line(u64),
    /// An RFC 6901 JSON pointer into a JSON document.
    Pointer(String),
    /// The input as a whole (for example an empty file).
    Whole,
}

/// A problem with user-supplied input: always exit code 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputError {
    /// The file name as the user gave it (or `<embedded>`, `<stdin>`).
    pub file: String,
    /// Where in the file.
    pub locus: Locus,
    /// What is wrong, phrased as what was found versus what was expected.
    pub message: String,
    /// How to fix it, when we can tell.
    pub help: Option<String>,
}

impl InputError {
    /// An error at a line and column.
    pub fn at(file: impl Into<String>, line: u64, column: u64, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            locus: Locus::LineColumn { line, column },
            message: message.into(),
            help: None,
        }
    }

    /// An error on a whole line.
    pub fn at_line(file: impl Into<String>, line: u64, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            locus: Locus::Line(line),
            message: message.into(),
            help: None,
        }
    }

    /// An error at a JSON pointer.
    pub fn at_pointer(
        file: impl Into<String>,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            locus: Locus::Pointer(pointer.into()),
            message: message.into(),
            help: None,
        }
    }

    /// An error about the input as a whole.
    pub fn whole(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            locus: Locus::Whole,
            message: message.into(),
            help: None,
        }
    }

    /// Attach a hint on how to fix the problem.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// `file:line:column`, `file:line`, `file#/pointer` or `file`.
    pub fn position(&self) -> String {
        match &self.locus {
            Locus::LineColumn { line, column } => format!("{}:{}:{}", self.file, line, column),
            Locus::Line(line) => format!("{}:{}", self.file, line),
            Locus::Pointer(p) => format!("{}#{}", self.file, p),
            Locus::Whole => self.file.clone(),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.position(), self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Several input errors found in one pass (validation reports all it finds).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputErrors(pub Vec<InputError>);

impl fmt::Display for InputErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<InputError> for InputErrors {
    fn from(e: InputError) -> Self {
        InputErrors(vec![e])
    }
}

/// The closest candidate to `word` by edit distance, if it is close enough to
/// be a plausible typo (at most a third of the word's length, and at least 1).
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Turn a YAML library message into one that says what was expected, in
/// words a user can act on: strips a repeated `error: line L column C:` prefix
/// (the position is printed in front already) and rewrites the parser's terse
/// phrases and resource-budget breaches.
pub fn yaml_message(raw: &str) -> String {
    let mut m = raw.lines().next().unwrap_or("invalid YAML").trim();
    if let Some(rest) = m.strip_prefix("error: ") {
        m = rest;
    }
    if let Some(rest) = m.strip_prefix("line ") {
        if let Some((_, after)) = rest.split_once(": ") {
            m = after;
        }
    }
    let mut m = m.to_string();
    if let Some(i) = m.rfind(" at line ") {
        m.truncate(i);
    }
    let budget = |what: &str| {
        format!("the YAML is too large to read safely: {what} (an alias bomb or a generated file?)")
    };
    match m.as_str() {
        "expected sequence start" => "expected a list here".to_string(),
        "expected mapping start" => "expected a mapping of `key: value` entries here".to_string(),
        _ if m.starts_with("expected string scalar") => {
            "expected a single text value here, not a list or mapping".to_string()
        }
        _ if m.starts_with("budget breached: Nodes") => budget("more than 250000 values"),
        _ if m.starts_with("budget breached: Depth") => {
            budget("lists and mappings nested more than 64 levels deep")
        }
        _ if m.starts_with("budget breached: Aliases")
            || m.starts_with("budget breached: AliasAnchorRatio") =>
        {
            budget("too many aliases (`*name`)")
        }
        _ if m.starts_with("budget breached") => {
            budget(&m["budget breached: ".len().min(m.len())..])
        }
        _ if m.starts_with("duplicate mapping key: ") => {
            let key = m["duplicate mapping key: ".len()..]
                .split(',')
                .next()
                .unwrap_or("")
                .trim();
            format!("duplicate key `{key}`: each key may appear once in a mapping")
        }
        _ => m,
    }
}

/// The largest input file ringfence reads: 128 MiB. Real rulesets, exports
/// and configs are far smaller; anything bigger is refused before it is read
/// into memory, with an error that says so.
pub const MAX_INPUT_BYTES: u64 = 128 << 20;

/// Read a user-named input file as UTF-8 text, refusing files larger than
/// [`MAX_INPUT_BYTES`] (checked on the size before reading, and while reading
/// for pipes and other streams). `name` labels errors, `what` says what the
/// file is ("site file", "ruleset").
pub fn read_input(path: &Path, name: &str, what: &str) -> Result<String, InputError> {
    use std::io::Read;
    let cannot = |e: std::io::Error| {
        let help = match e.kind() {
            std::io::ErrorKind::NotFound => "check the path",
            std::io::ErrorKind::PermissionDenied => "check the file's permissions",
            _ => "check that the path names a readable regular file",
        };
        InputError::whole(name, format!("cannot read {what}: {e}")).with_help(help)
    };
    let too_big = |size: String| {
        InputError::whole(
            name,
            format!(
                "{what} is {size}, over the {} MiB limit for input files",
                MAX_INPUT_BYTES >> 20
            ),
        )
        .with_help("check that this is the right file; split a larger export into several files")
    };
    let file = std::fs::File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if meta.is_dir() {
        return Err(
            InputError::whole(name, format!("cannot read {what}: it is a directory"))
                .with_help("name a file, not a directory"),
        );
    }
    if meta.is_file() && meta.len() > MAX_INPUT_BYTES {
        return Err(too_big(format!("{} bytes", meta.len())));
    }
    // Sized from the metadata for regular files, so a large input is read
    // into one allocation instead of being regrown and copied as it arrives.
    let mut bytes = Vec::with_capacity(if meta.is_file() {
        meta.len() as usize + 1
    } else {
        0
    });
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_big(format!("more than {MAX_INPUT_BYTES} bytes")));
    }
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let before = &e.as_bytes()[..offset];
        let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        let column = (offset
            - before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1)) as u64
            + 1;
        InputError::at(
            name,
            line,
            column,
            format!("{what} is not UTF-8 text (invalid byte at offset {offset})"),
        )
        .with_help("save it as UTF-8")
    })
}

/// An error for JSON that serde_json could not read, at its line and column.
/// Syntax errors say "not valid JSON: ..."; a value of the wrong shape keeps
/// serde_json's description ("missing field `x`", "invalid type: ..."). The
/// position is ours (serde_json's trailing " at line L column C" is dropped)
/// and 1-based (serde_json says column 0 at an end of file after a newline).
pub fn json_error(file: &str, e: &serde_json::Error) -> InputError {
    let raw = e.to_string();
    let msg = match raw.rfind(" at line ") {
        Some(i) => &raw[..i],
        None => raw.as_str(),
    };
    let message = match e.classify() {
        serde_json::error::Category::Data => msg.to_string(),
        _ => format!("not valid JSON: {msg}"),
    };
    InputError::at(
        file,
        (e.line() as u64).max(1),
        (e.column() as u64).max(1),
        message,
    )
}

/// Write `bytes` to `path` atomically: a temporary file in the same directory,
/// flushed to disk, then renamed over the target. Readers see either the old
/// file or the complete new one, never a partial write. The file keeps the
/// mode of the file it replaces, or gets 0644 when new.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut out = AtomicFile::create(path)?;
    out.file().write_all(bytes)?;
    out.commit()
}

/// An output file written as a stream and put in place only when complete:
/// a temporary file beside `path` ([`AtomicFile::file`] to write it), renamed
/// over `path` by [`AtomicFile::commit`], removed if dropped uncommitted. The
/// same guarantees as [`write_atomic`] for output too large to hold in memory.
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: std::path::PathBuf,
}

impl AtomicFile {
    /// A temporary file in `path`'s directory, to become `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".ringfence-")
            .suffix(".tmp")
            .tempfile_in(dir)?;
        Ok(Self {
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// The temporary file, to write the output into.
    pub fn file(&mut self) -> &mut std::fs::File {
        self.tmp.as_file_mut()
    }

    /// Give the file the mode a replaced file had (0644 for a new one, not
    /// the temporary file's 0600, so it can be served or shared like any
    /// other file the user writes), sync it and rename it over the target.
    pub fn commit(self) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&self.path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644);
        self.tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
        self.tmp.as_file().sync_all()?;
        self.tmp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_formats_each_locus() {
        assert_eq!(InputError::at("a.yaml", 3, 7, "x").position(), "a.yaml:3:7");
        assert_eq!(
            InputError::at_line("r.rules", 9, "x").position(),
            "r.rules:9"
        );
        assert_eq!(
            InputError::at_pointer("r.json", "/nftables/3", "x").position(),
            "r.json#/nftables/3"
        );
    }

    #[test]
    fn display_includes_help_line() {
        let e = InputError::at("s.yaml", 1, 2, "bad").with_help("do this");
        assert_eq!(e.to_string(), "s.yaml:1:2: bad\n  help: do this");
    }

    #[test]
    fn closest_suggests_typos_only() {
        let keys = ["zones", "name", "tkg", "extra_flows"];
        assert_eq!(closest("zone", keys), Some("zones"));
        assert_eq!(closest("extra_flow", keys), Some("extra_flows"));
        assert_eq!(closest("completely", keys), None);
    }

    #[test]
    fn yaml_message_drops_the_repeated_position_and_explains() {
        assert_eq!(
            yaml_message("error: line 4 column 15: expected sequence start"),
            "expected a list here"
        );
        assert_eq!(
            yaml_message("error: line 6 column 11: budget breached: Nodes { nodes: 250001 }"),
            "the YAML is too large to read safely: more than 250000 values (an alias bomb or a generated file?)"
        );
        assert_eq!(
            yaml_message("missing field `x` at line 3 column 2"),
            "missing field `x`"
        );
    }

    #[test]
    fn read_input_refuses_files_over_the_limit_without_reading_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("huge.rules");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(MAX_INPUT_BYTES + 1).unwrap();
        let e = read_input(&p, "huge.rules", "ruleset").unwrap_err();
        assert_eq!(
            e.to_string(),
            "huge.rules: ruleset is 134217729 bytes, over the 128 MiB limit for input files\n  \
             help: check that this is the right file; split a larger export into several files"
        );
    }

    #[test]
    fn read_input_locates_invalid_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.yaml");
        std::fs::write(&p, b"a: 1\nb: \xff\n").unwrap();
        let e = read_input(&p, "bad.yaml", "site file").unwrap_err();
        assert_eq!(e.position(), "bad.yaml:2:4");
    }

    #[test]
    fn write_atomic_replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.txt");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "second");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary files must not remain");
    }

    #[test]
    fn write_atomic_gives_new_files_0644_and_keeps_a_replaced_files_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let p = dir.path().join("report.html");
        write_atomic(&p, b"one").unwrap();
        assert_eq!(mode(&p), 0o644, "a new file is readable like any other");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(mode(&p), 0o600, "a replaced file keeps its mode");
    }
}
