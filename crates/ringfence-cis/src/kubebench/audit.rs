//! Answering audit commands: natively for read-only idioms, or by a shell
//! when the user allows it.
//!
//! kube-bench runs every audit with `/bin/sh`. Most audits in its CIS
//! definitions are a handful of read-only idioms; [`Native`] recognizes them
//! and produces the output the shell would have printed, reading only the
//! node (processes from `/proc`, files through the root-confined
//! [`RootFs`](crate::rootfs::RootFs)):
//!
//! - `ps -ef | grep X | grep -v grep` and `ps -fC X` (process lines);
//! - `stat -c FORMAT P` with `%a`, `%U`, `%G`, `%n` (alone, guarded by
//!   `if test -e P`, over a `for` list, or fed by `find DIR [-name GLOB]`);
//! - `cat P` (alone or guarded by `if test -e P`);
//! - the etcd data-directory and kubelet client-CA scripts of the CIS
//!   definitions (a flag value from the process list, then `stat`);
//! - kube-bench's generated environment audit
//!   (`cat "/proc/$(ps -C X -o pid=)/environ"`).
//!
//! Like the real tools, `stat` does not follow a final symlink, `%U`/`%G`
//! print `UNKNOWN` for ids the node's own `etc/passwd`/`etc/group` do not
//! name, and `cat`/`stat` of a missing file fail. When the node is a mounted
//! root with no process table, components found in static pod manifests or
//! the kubelet's systemd unit stand in for processes (their command line
//! rebuilt, an empty environment) and the evidence says so.
//!
//! [`Exec`] runs an audit with `/bin/sh` (reading the audit on standard
//! input, as kube-bench does, so the audit text is not in any process's
//! argument list for `ps | grep` to find), standard error merged into
//! standard output, a timeout and an output cap; with a root directory it
//! runs inside `chroot ROOT`.

use super::eval::AuditResult;
use crate::node::{Node, Source};
use crate::procfs::Procfs;
use crate::rootfs::{FsError, RootFs};
use regex::Regex;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One process as `ps` would show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    /// Process id; `None` for a component rebuilt from its manifest or unit.
    pub pid: Option<u32>,
    /// Command name (`/proc/PID/comm`, at most 15 bytes).
    pub comm: String,
    /// Arguments joined by spaces (`[comm]` for kernel threads).
    pub cmd: String,
    /// Where it came from (`/proc/123/cmdline`, `manifest /etc/...`).
    pub origin: String,
}

/// The processes the native idioms see.
#[derive(Debug, Clone, Default)]
pub struct ProcTable {
    /// Processes, by pid; rebuilt components last.
    pub procs: Vec<Proc>,
    procfs: Option<Procfs>,
}

impl ProcTable {
    /// Read the node's process table (`/proc`, `ROOT/proc` or `--proc DIR`,
    /// through [`Procfs`], so its reads are confined like every other; every
    /// process, as `ps` shows them) and add the node's components that were
    /// not found as processes.
    pub fn new(node: &Node) -> Self {
        let mut procs = Vec::new();
        if let Some(procfs) = &node.procfs {
            let me = procfs.is_kernel().then(std::process::id);
            for pid in procfs.pids() {
                if Some(pid) == me {
                    continue;
                }
                // Unreadable entries (a FIFO, a link loop) are left out, as
                // discovery leaves them out and notes them.
                let Ok(Some(args)) = procfs.cmdline(pid) else {
                    continue;
                };
                let comm = procfs.comm(pid).unwrap_or_default();
                let cmd = if args.is_empty() {
                    format!("[{comm}]")
                } else {
                    args.join(" ")
                };
                procs.push(Proc {
                    pid: Some(pid),
                    comm,
                    cmd,
                    origin: format!("/proc/{pid}/cmdline"),
                });
            }
        }
        for found in node.components.values() {
            if found.source == Source::Process {
                continue;
            }
            let bin = found.component.binary();
            let mut cmd = bin.to_string();
            for a in &found.args {
                cmd.push(' ');
                cmd.push_str(a);
            }
            procs.push(Proc {
                pid: None,
                comm: bin.chars().take(15).collect(),
                cmd,
                origin: format!("{} {}", found.source.name(), found.path),
            });
        }
        ProcTable {
            procs,
            procfs: node.procfs.clone(),
        }
    }

    /// kube-bench's test for a running binary: some `ps -C FIRST-WORD`
    /// line starts with the binary, optionally after a directory.
    pub fn running(&self, bin: &str) -> bool {
        let bin = bin.trim_matches(|c| c == '\'' || c == '"');
        let first = bin.split_whitespace().next().unwrap_or("");
        let Ok(re) = Regex::new(&format!(r"^(\S*/)*{bin}")) else {
            return false;
        };
        self.by_comm(first).any(|p| re.is_match(&p.cmd))
    }

    fn by_comm<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Proc> + 'a {
        let short: String = name.chars().take(15).collect();
        self.procs.iter().filter(move |p| p.comm == short)
    }
}

/// Native answers to recognized audit idioms.
pub struct Native<'a> {
    /// The node.
    pub node: &'a Node,
    /// Its processes.
    pub procs: &'a ProcTable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fmt {
    Mode,
    Owner,
}

struct StatFmt {
    prefix: String,
    what: Fmt,
    name: bool,
}

fn parse_fmt(f: &str) -> Option<StatFmt> {
    let f = f.trim_matches('"');
    let (body, name) = match f.strip_suffix(" %n") {
        Some(b) => (b, true),
        None => (f, false),
    };
    let (prefix, what) = if let Some(p) = body.strip_suffix("%a") {
        (p, Fmt::Mode)
    } else if let Some(p) = body.strip_suffix("%U:%G") {
        (p, Fmt::Owner)
    } else {
        return None;
    };
    if prefix.contains('%') || prefix.contains(char::is_whitespace) {
        return None;
    }
    Some(StatFmt {
        prefix: prefix.to_string(),
        what,
        name,
    })
}

/// The recognized forms of an audit.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Idiom {
    PsGrep(String),
    PsC(String),
    Stat {
        fmt: String,
        paths: Vec<String>,
        guard: bool,
        missing: Option<String>,
    },
    Cat {
        path: String,
        guard: bool,
    },
    FindStat {
        dir: String,
        glob: Option<String>,
        fmt: String,
        guard: Option<String>,
    },
    EtcdDataDir {
        bin: String,
        default: String,
        fmt: String,
    },
    Cni {
        bin: String,
        fmt: String,
    },
    Encryption {
        bin: String,
    },
    KubeletCa {
        default: String,
        fmt: String,
    },
    Environ(String),
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("idiom pattern compiles"))
}

const WORD: &str = r"([^\s'\x22;|$`&<>()]+)";
const FMT: &str = r#"((?:[a-z]+=)?%a|(?:[a-z]+=)?%U:%G|"(?:[a-z]+=)?(?:%a|%U:%G) %n")"#;

fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn recognize(audit: &str) -> Option<Idiom> {
    static PS_GREP: OnceLock<Regex> = OnceLock::new();
    static PS_C: OnceLock<Regex> = OnceLock::new();
    static STAT: OnceLock<Regex> = OnceLock::new();
    static GUARD: OnceLock<Regex> = OnceLock::new();
    static CAT: OnceLock<Regex> = OnceLock::new();
    static FIND: OnceLock<Regex> = OnceLock::new();
    static FOR: OnceLock<Regex> = OnceLock::new();
    static ETCD: OnceLock<Regex> = OnceLock::new();
    static CA: OnceLock<Regex> = OnceLock::new();
    static ENV: OnceLock<Regex> = OnceLock::new();
    static CNI: OnceLock<Regex> = OnceLock::new();
    static ENC: OnceLock<Regex> = OnceLock::new();
    let ps = r"(?:/bin/)?ps";
    let grep = r"(?:/bin/)?grep";
    if let Some(c) = re(
        &CNI,
        &format!(
            r#"^{ps} -ef \| {grep} {WORD} \| {grep} -- --cni-conf-dir \| sed 's%\.\*cni-conf-dir\[= \]\\\(\[\^ \]\*\\\)\.\*%\\1%' \| xargs -I\{{\}} find \{{\}} -mindepth 1 \| xargs --no-run-if-empty stat -c {FMT} find /var/lib/cni/networks -type f 2> /dev/null \| xargs --no-run-if-empty stat -c {FMT}$"#
        ),
    )
    .captures(normalize(audit).as_str())
    {
        if c[2] == c[3] {
            return Some(Idiom::Cni { bin: c[1].into(), fmt: c[2].into() });
        }
    }
    if let Some(c) = re(
        &ENC,
        &format!(
            r#"^ENCRYPTION_PROVIDER_CONFIG=\$\({ps} -ef \| {grep} {WORD} \| {grep} -- --encryption-provider-config \| sed 's%\.\*encryption-provider-config\[= \]\\\(\[\^ \]\*\\\)\.\*%\\1%'\) if test -e \$ENCRYPTION_PROVIDER_CONFIG; then grep -A1 'providers:' \$ENCRYPTION_PROVIDER_CONFIG \| tail -n1 \| grep -o "\[A-Za-z\]\*" \| sed 's/\^/provider=/'; fi$"#
        ),
    )
    .captures(normalize(audit).as_str())
    {
        return Some(Idiom::Encryption { bin: c[1].into() });
    }
    let a = normalize(audit);
    let a = a.as_str();
    if let Some(c) = re(
        &PS_GREP,
        &format!(r"^{ps} -ef \| {grep} {WORD} \| {grep} -v grep$"),
    )
    .captures(a)
    {
        return Some(Idiom::PsGrep(c[1].to_string()));
    }
    if let Some(c) = re(&PS_C, &format!(r"^{ps} -fC {WORD}$")).captures(a) {
        return Some(Idiom::PsC(c[1].to_string()));
    }
    if let Some(c) = re(
        &STAT,
        &format!(r"^(?:/usr)?(?:/bin/)?stat -c {FMT} {WORD}$"),
    )
    .captures(a)
    {
        return Some(Idiom::Stat {
            fmt: c[1].into(),
            paths: vec![c[2].into()],
            guard: false,
            missing: None,
        });
    }
    // /bin/sh -c 'if test -e P; then BODY; fi' (or with double quotes, or an
    // else branch that echoes "File not found").
    if let Some(c) = re(
        &GUARD,
        &format!(
            r#"^/bin/sh -c (['"])if test -e {WORD}; then (.*?);(?: else echo \\?"([A-Za-z ]+)\\?";)? fi['"]$"#
        ),
    )
    .captures(a)
    {
        let path = c[2].to_string();
        let body = c[3].to_string();
        let missing = c.get(4).map(|m| m.as_str().to_string());
        if let Some(b) = re(&STAT, &format!(r"^(?:/usr)?(?:/bin/)?stat -c {FMT} {WORD}$")).captures(&body) {
            if b[2] == path {
                return Some(Idiom::Stat { fmt: b[1].into(), paths: vec![path], guard: true, missing });
            }
        }
        if missing.is_none() {
            if let Some(b) = re(&CAT, &format!(r"^(?:/bin/)?cat {WORD}$")).captures(&body) {
                if b[1] == path {
                    return Some(Idiom::Cat { path, guard: true });
                }
            }
            // find P -name 'GLOB' | xargs stat: the quotes inside the single-
            // quoted script end it, so the glob reaches the shell unquoted.
            if let Some(b) = re(&FIND, &format!(r"^find {WORD}(?: -name '?([^'\s]+)'?)? \| xargs stat -c {FMT}$")).captures(&body) {
                if b[1] == path {
                    return Some(Idiom::FindStat {
                        dir: path.clone(),
                        glob: b.get(2).map(|m| m.as_str().to_string()),
                        fmt: b[3].into(),
                        guard: Some(path),
                    });
                }
            }
        }
        return None;
    }
    if let Some(c) = re(&CAT, &format!(r"^(?:/bin/)?cat {WORD}$")).captures(a) {
        return Some(Idiom::Cat {
            path: c[1].into(),
            guard: false,
        });
    }
    if let Some(c) = re(
        &FIND,
        &format!(r"^find {WORD}(?: -name '?([^'\s]+)'?)? \| xargs stat -c {FMT}$"),
    )
    .captures(a)
    {
        return Some(Idiom::FindStat {
            dir: c[1].into(),
            glob: c.get(2).map(|m| m.as_str().to_string()),
            fmt: c[3].into(),
            guard: None,
        });
    }
    if let Some(c) = re(
        &FOR,
        &format!(r"^for (\w+) in ([^;]+); do if test -e \$\{{?(\w+)\}}?; then stat -c {FMT} \$\{{?(\w+)\}}?; fi; done$"),
    )
    .captures(a)
    {
        if c[1] == c[3] && c[1] == c[5] {
            let paths: Vec<String> = c[2].split(' ').map(String::from).collect();
            if paths.iter().all(|p| p.starts_with('/') && !p.contains(['$', '`', '*', '\'', '"'])) {
                return Some(Idiom::Stat { fmt: c[4].into(), paths, guard: true, missing: None });
            }
        }
    }
    if let Some(c) = re(
        &ETCD,
        &format!(
            r#"^DATA_DIR='' for d in \$\({ps} -ef \| {grep} {WORD} \| {grep} -- --data-dir \| sed 's%\.\*data-dir\[= \]\\\(\[\^ \]\*\\\)\.\*%\\1%'\); do if test -d "\$d"; then DATA_DIR="\$d"; fi;? done if ! test -d "\$DATA_DIR"; then DATA_DIR={WORD}; fi stat -c {FMT} "?\$DATA_DIR"?$"#
        ),
    )
    .captures(a)
    {
        return Some(Idiom::EtcdDataDir { bin: c[1].into(), default: c[2].into(), fmt: c[3].into() });
    }
    if let Some(c) = re(
        &CA,
        &format!(
            r#"^CAFILE=\$\({ps} -ef \| {grep} kubelet \| {grep} -v apiserver \| {grep} -- --client-ca-file= \| awk -F '--client-ca-file=' '\{{print \$2\}}' \| awk '\{{print \$1\}}' \| uniq\) if test -z \$CAFILE; then CAFILE={WORD}; fi if test -e \$CAFILE; then stat -c {FMT} \$CAFILE; fi$"#
        ),
    )
    .captures(a)
    {
        return Some(Idiom::KubeletCa { default: c[1].into(), fmt: c[2].into() });
    }
    if let Some(c) = re(
        &ENV,
        &format!(r#"^cat "/proc/\$\(/bin/ps -C (?:{WORD} )?-o pid= \| tr -d ' '\)/environ" \| tr '\\0' '\\n'$"#),
    )
    .captures(a)
    {
        return Some(Idiom::Environ(c.get(1).map(|m| m.as_str().to_string()).unwrap_or_default()));
    }
    None
}

/// Whether an audit is one of the idioms answered natively.
pub fn recognized(audit: &str) -> bool {
    audit.trim().is_empty() || recognize(audit).is_some()
}

fn ok(output: String, how: String) -> AuditResult {
    AuditResult {
        output,
        error: None,
        how,
    }
}

fn failed(output: String, code: i32, how: String) -> AuditResult {
    AuditResult {
        output,
        error: Some(format!("exit status {code}")),
        how,
    }
}

/// `fnmatch` for `*` and `?` (find's `-name`).
fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
}

impl Native<'_> {
    fn fs(&self) -> &RootFs {
        &self.node.fs
    }

    /// `lstat` inside the root: directories on the way are followed (inside
    /// the root), the last component is not.
    fn lstat(&self, path: &str) -> Result<Option<(Meta, PathBuf)>, FsError> {
        let trimmed = path.trim_end_matches('/');
        let (parent, name) = match trimmed.rsplit_once('/') {
            Some((p, n)) if !n.is_empty() && n != "." && n != ".." && !path.ends_with('/') => {
                (if p.is_empty() { "/" } else { p }, Some(n))
            }
            _ => (path, None),
        };
        let host = match self.fs().resolve(parent) {
            Ok(h) => h,
            Err(FsError::NotFound(_)) | Err(FsError::NotADirectory(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let host = match name {
            Some(n) => host.join(n),
            None => host,
        };
        match std::fs::symlink_metadata(&host) {
            Ok(m) => Ok(Some((
                Meta {
                    mode: m.mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                },
                host,
            ))),
            Err(_) => Ok(None),
        }
    }

    fn stat_line(&self, fmt: &StatFmt, path: &str, m: &Meta) -> String {
        let value = match fmt.what {
            Fmt::Mode => format!("{:o}", m.mode),
            Fmt::Owner => {
                let acc = &self.node.accounts;
                format!(
                    "{}:{}",
                    acc.user(m.uid).unwrap_or("UNKNOWN"),
                    acc.group(m.gid).unwrap_or("UNKNOWN")
                )
            }
        };
        if fmt.name {
            format!("{}{value} {path}\n", fmt.prefix)
        } else {
            format!("{}{value}\n", fmt.prefix)
        }
    }

    fn exists(&self, path: &str) -> bool {
        self.fs().exists(path)
    }

    /// Stat everything below `host` (shown as `shown`), as `find -mindepth
    /// 1` does, without following symlinks; `files_only` is `-type f`.
    fn below(
        &self,
        host: &Path,
        shown: &str,
        pattern: Option<&str>,
        files_only: bool,
        f: &StatFmt,
        out: &mut String,
    ) {
        // find (without -L) does not descend a symlink, the starting point
        // included: listing one would follow it, out of the root too.
        if !std::fs::symlink_metadata(host).is_ok_and(|m| m.is_dir()) {
            return;
        }
        // Depth first, each directory's entries in readdir order, as find walks.
        let Ok(entries) = std::fs::read_dir(host) else {
            return;
        };
        let shown = shown.trim_end_matches('/');
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(m) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            let child = format!("{shown}/{name}");
            if pattern.is_none_or(|g| glob(g, &name)) && (!files_only || m.is_file()) {
                let meta = Meta {
                    mode: m.mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                };
                out.push_str(&self.stat_line(f, &child, &meta));
            }
            if m.is_dir() {
                self.below(&e.path(), &child, pattern, files_only, f, out);
            }
        }
    }

    fn is_dir(&self, path: &str) -> bool {
        matches!(self.fs().stat(path), Ok(Some(s)) if s.is_dir)
    }

    fn ps_ef_lines(&self) -> impl Iterator<Item = &Proc> {
        self.procs.procs.iter()
    }

    /// Answer `audit` natively; `None` when it is not a recognized idiom.
    pub fn answer(&self, audit: &str) -> Option<AuditResult> {
        if audit.trim().is_empty() {
            return Some(AuditResult::default());
        }
        let idiom = recognize(audit)?;
        Some(self.run(idiom))
    }

    fn origins<'a>(procs: impl Iterator<Item = &'a Proc>) -> String {
        let o: Vec<&str> = procs.map(|p| p.origin.as_str()).collect();
        if o.is_empty() {
            "no process".to_string()
        } else {
            o.join(", ")
        }
    }

    fn run(&self, idiom: Idiom) -> AuditResult {
        match idiom {
            Idiom::PsGrep(word) => {
                let word = word.trim_matches('\'');
                let hits: Vec<&Proc> = self
                    .ps_ef_lines()
                    .filter(|p| p.cmd.contains(word) && !p.cmd.contains("grep"))
                    .collect();
                let how = format!(
                    "native: process list ({})",
                    Self::origins(hits.iter().copied())
                );
                let out: String = hits.iter().map(|p| format!("{}\n", p.cmd)).collect();
                if hits.is_empty() {
                    failed(out, 1, how)
                } else {
                    ok(out, how)
                }
            }
            Idiom::PsC(name) => {
                let hits: Vec<&Proc> = self.procs.by_comm(&name).collect();
                let how = format!(
                    "native: process list ({})",
                    Self::origins(hits.iter().copied())
                );
                let mut out = String::from("UID PID PPID C STIME TTY TIME CMD\n");
                for p in &hits {
                    out.push_str(&p.cmd);
                    out.push('\n');
                }
                if hits.is_empty() {
                    failed(out, 1, how)
                } else {
                    ok(out, how)
                }
            }
            Idiom::Stat {
                fmt,
                paths,
                guard,
                missing,
            } => {
                let f = parse_fmt(&fmt).expect("recognized format");
                let mut out = String::new();
                for p in &paths {
                    if guard && !self.exists(p) {
                        if let Some(m) = &missing {
                            out.push_str(m);
                            out.push('\n');
                        }
                        continue;
                    }
                    match self.lstat(p) {
                        Ok(Some((m, _))) => out.push_str(&self.stat_line(&f, p, &m)),
                        _ => {
                            out.push_str(&format!(
                                "stat: cannot statx '{p}': No such file or directory\n"
                            ));
                            return failed(out, 1, format!("native: stat of {p}"));
                        }
                    }
                }
                ok(out, format!("native: stat of {}", paths.join(", ")))
            }
            Idiom::Cat { path, guard } => {
                let how = format!("native: read {path}");
                match self.fs().read(&path) {
                    Ok(Some(text)) => ok(text, how),
                    Ok(None) if guard => ok(String::new(), how),
                    Ok(None) => failed(format!("cat: {path}: No such file or directory\n"), 1, how),
                    Err(FsError::NotRegular(_)) if self.is_dir(&path) => {
                        failed(format!("cat: {path}: Is a directory\n"), 1, how)
                    }
                    Err(e) => failed(format!("cat: {path}: {e}\n"), 1, how),
                }
            }
            Idiom::FindStat {
                dir,
                glob: pattern,
                fmt,
                guard,
            } => {
                let how = format!("native: find {dir} and stat");
                if let Some(g) = &guard {
                    if !self.exists(g) {
                        return ok(String::new(), how);
                    }
                }
                let f = parse_fmt(&fmt).expect("recognized format");
                let Ok(Some((start, host))) = self.lstat(&dir) else {
                    return failed(
                        format!("find: '{dir}': No such file or directory\nstat: missing operand\nTry 'stat --help' for more information.\n"),
                        123,
                        how,
                    );
                };
                let mut out = String::new();
                let mut count = 0;
                let base = dir.trim_end_matches('/');
                let base_name = base.rsplit('/').next().unwrap_or(base);
                if pattern.as_deref().is_none_or(|g| glob(g, base_name)) {
                    out.push_str(&self.stat_line(&f, &dir, &start));
                    count += 1;
                }
                let before = out.len();
                self.below(&host, &dir, pattern.as_deref(), false, &f, &mut out);
                if out.len() > before {
                    count += 1;
                }
                if count == 0 {
                    return failed(
                        "stat: missing operand\nTry 'stat --help' for more information.\n".into(),
                        123,
                        how,
                    );
                }
                ok(out, how)
            }
            Idiom::EtcdDataDir { bin, default, fmt } => {
                static SED: OnceLock<Regex> = OnceLock::new();
                let sed = re(&SED, r"^.*data-dir[= ]([^ ]*).*$");
                let lines: Vec<&Proc> = self
                    .ps_ef_lines()
                    .filter(|p| p.cmd.contains(bin.as_str()) && p.cmd.contains("--data-dir"))
                    .collect();
                let mut data_dir = String::new();
                for p in &lines {
                    let text = match sed.captures(&p.cmd) {
                        Some(c) => c[1].to_string(),
                        None => p.cmd.clone(),
                    };
                    for d in text.split_whitespace() {
                        if self.is_dir(d) {
                            data_dir = d.to_string();
                        }
                    }
                }
                if !self.is_dir(&data_dir) {
                    data_dir = default;
                }
                let mut r = self.run(Idiom::Stat {
                    fmt,
                    paths: vec![data_dir.clone()],
                    guard: false,
                    missing: None,
                });
                r.how = format!(
                    "native: etcd data directory {data_dir} ({}) and stat",
                    Self::origins(lines.iter().copied())
                );
                r
            }
            Idiom::Cni { bin, fmt } => {
                static SED: OnceLock<Regex> = OnceLock::new();
                let sed = re(&SED, r"^.*cni-conf-dir[= ]([^ ]*).*$");
                let f = parse_fmt(&fmt).expect("recognized format");
                let mut out = String::new();
                let mut dirs = Vec::new();
                for p in self.ps_ef_lines() {
                    if p.cmd.contains(bin.as_str()) && p.cmd.contains("--cni-conf-dir") {
                        dirs.push(match sed.captures(&p.cmd) {
                            Some(c) => c[1].to_string(),
                            None => p.cmd.clone(),
                        });
                    }
                }
                // xargs -I{} find {} -mindepth 1: everything below each directory.
                for d in &dirs {
                    match self.lstat(d) {
                        Ok(Some((_, host))) => self.below(&host, d, None, false, &f, &mut out),
                        _ => out.push_str(&format!("find: '{d}': No such file or directory\n")),
                    }
                }
                // find /var/lib/cni/networks -type f 2> /dev/null
                if let Ok(Some((_, host))) = self.lstat("/var/lib/cni/networks") {
                    self.below(&host, "/var/lib/cni/networks", None, true, &f, &mut out);
                }
                ok(
                    out,
                    format!(
                        "native: CNI files ({} from --cni-conf-dir) and stat",
                        dirs.len()
                    ),
                )
            }
            Idiom::Encryption { bin } => {
                static SED: OnceLock<Regex> = OnceLock::new();
                let sed = re(&SED, r"^.*encryption-provider-config[= ]([^ ]*).*$");
                let values: Vec<String> = self
                    .ps_ef_lines()
                    .filter(|p| {
                        p.cmd.contains(bin.as_str())
                            && p.cmd.contains("--encryption-provider-config")
                    })
                    .map(|p| match sed.captures(&p.cmd) {
                        Some(c) => c[1].to_string(),
                        None => p.cmd.clone(),
                    })
                    .collect();
                let words: Vec<&str> = values.iter().flat_map(|v| v.split_whitespace()).collect();
                let how = "native: encryption provider config".to_string();
                match words.as_slice() {
                    [] => ok(String::new(), how),
                    [path] => {
                        let Ok(Some(text)) = self.fs().read(path) else {
                            return ok(
                                String::new(),
                                format!("native: encryption provider config {path} (absent)"),
                            );
                        };
                        let lines: Vec<&str> = text.lines().collect();
                        let Some(i) = lines.iter().rposition(|l| l.contains("providers:")) else {
                            return ok(
                                String::new(),
                                format!("native: encryption provider config {path}"),
                            );
                        };
                        let last = lines.get(i + 1).copied().unwrap_or(lines[i]);
                        let out: String = last
                            .split(|c: char| !c.is_ascii_alphabetic())
                            .filter(|w| !w.is_empty())
                            .map(|w| format!("provider={w}\n"))
                            .collect();
                        ok(out, format!("native: encryption provider config {path}"))
                    }
                    _ => ok("sh: test: too many arguments\n".into(), how),
                }
            }
            Idiom::KubeletCa { default, fmt } => {
                let mut files: Vec<String> = Vec::new();
                for p in self.ps_ef_lines() {
                    if p.cmd.contains("kubelet") && !p.cmd.contains("apiserver") {
                        if let Some((_, after)) = p.cmd.split_once("--client-ca-file=") {
                            let field = after.split("--client-ca-file=").next().unwrap_or("");
                            let first = field.split_whitespace().next().unwrap_or("").to_string();
                            if files.last() != Some(&first) {
                                files.push(first);
                            }
                        }
                    }
                }
                let files: Vec<String> = files.into_iter().filter(|f| !f.is_empty()).collect();
                let ca = match files.len() {
                    0 => default,
                    1 => files[0].clone(),
                    _ => {
                        // Several words make `test -z` and `test -e` error out.
                        return failed(
                            "sh: test: too many arguments\n".into(),
                            2,
                            "native: kubelet client CA (several kubelets)".into(),
                        );
                    }
                };
                let mut r = self.run(Idiom::Stat {
                    fmt,
                    paths: vec![ca.clone()],
                    guard: true,
                    missing: None,
                });
                r.how = format!("native: kubelet client CA {ca} and stat");
                r
            }
            Idiom::Environ(name) => {
                let hits: Vec<&Proc> = self.procs.by_comm(&name).collect();
                let how = format!(
                    "native: environment of {name} ({})",
                    Self::origins(hits.iter().copied())
                );
                match hits.as_slice() {
                    [one] => match (one.pid, &self.procs.procfs) {
                        (Some(pid), Some(procfs)) => {
                            match procfs.read(pid, "environ") {
                                Ok(None) => ok(
                                    format!(
                                        "cat: /proc/{pid}/environ: No such file or directory\n"
                                    ),
                                    how,
                                ),
                                Ok(Some(bytes)) => {
                                    let text: String =
                                        String::from_utf8_lossy(&bytes).replace('\0', "\n");
                                    ok(text, how)
                                }
                                // The pipeline's status is tr's: a failing cat only prints.
                                Err(e) => ok(format!("cat: /proc/{pid}/environ: {e}\n"), how),
                            }
                        }
                        // A component rebuilt from its manifest or unit: no environment to read.
                        _ => ok(String::new(), how),
                    },
                    _ => ok(
                        "cat: /proc//environ: No such file or directory\n".into(),
                        how,
                    ),
                }
            }
        }
    }
}

/// Running audits with a shell: only with the user's explicit permission.
#[derive(Debug, Clone)]
pub struct Exec {
    /// Give up on an audit after this long (its process group is killed).
    pub timeout: Duration,
    /// Keep at most this many bytes of output.
    pub max_output: usize,
    /// Run inside `chroot ROOT` (a mounted node's own shell and tools).
    pub root: Option<PathBuf>,
}

impl Default for Exec {
    fn default() -> Self {
        Exec {
            timeout: Duration::from_secs(10),
            max_output: 1 << 20,
            root: None,
        }
    }
}

impl Exec {
    /// Run one audit.
    pub fn run(&self, audit: &str) -> AuditResult {
        use std::os::unix::process::CommandExt;
        use std::process::{Command, Stdio};
        let how = match &self.root {
            Some(r) => format!("exec: chroot {} /bin/sh", r.display()),
            None => "exec: /bin/sh".to_string(),
        };
        let mut cmd = match &self.root {
            Some(r) => {
                let mut c = Command::new("chroot");
                c.arg(r).arg("/bin/sh");
                c
            }
            None => Command::new("/bin/sh"),
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .current_dir("/")
            .process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return AuditResult {
                    output: String::new(),
                    error: Some(format!("cannot start the shell: {e}")),
                    how,
                }
            }
        };
        let pgid = child.id() as i32;
        if let Some(mut stdin) = child.stdin.take() {
            // Standard error joins standard output, as kube-bench captures both.
            let script = format!("exec 2>&1\n{audit}\n");
            let _ = stdin.write_all(script.as_bytes());
        }
        let mut stdout = child.stdout.take().expect("piped stdout");
        let cap = self.max_output;
        let reader = std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            let mut truncated = false;
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let room = cap.saturating_sub(kept.len());
                        if n > room {
                            truncated = true;
                        }
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
            }
            (kept, truncated)
        });
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if start.elapsed() >= self.timeout => {
                    // SAFETY: kill has no memory-safety preconditions; the
                    // group is the one this child leads.
                    unsafe { libc::kill(-pgid, libc::SIGKILL) };
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(_) => break None,
            }
        };
        // Pipeline members may outlive the shell; end the group so the pipe closes.
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let (bytes, truncated) = reader.join().unwrap_or_default();
        let mut output = String::from_utf8_lossy(&bytes).into_owned();
        if truncated {
            output.push_str("\n[output truncated]\n");
        }
        let error = match status {
            None => Some(format!("timed out after {:?}", self.timeout)),
            Some(s) if s.success() => None,
            Some(s) => Some(match s.code() {
                Some(c) => format!("exit status {c}"),
                None => "killed by a signal".to_string(),
            }),
        };
        AuditResult { output, error, how }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cis_idioms_are_recognized() {
        for a in [
            "/bin/ps -ef | grep kube-apiserver | grep -v grep",
            "/bin/ps -ef | /bin/grep etcd | /bin/grep -v grep",
            "/bin/ps -fC kubelet",
            "/bin/cat /var/lib/kubelet/config.yaml",
            "/bin/sh -c 'if test -e /etc/kubernetes/manifests/kube-apiserver.yaml; then stat -c permissions=%a /etc/kubernetes/manifests/kube-apiserver.yaml; fi'",
            "/bin/sh -c 'if test -e /etc/kubernetes/kubelet.conf; then stat -c %U:%G /etc/kubernetes/kubelet.conf; fi' ",
            "/bin/sh -c \"if test -e /x.service; then stat -c %U:%G /x.service; else echo \\\"File not found\\\"; fi\"",
            "find /etc/kubernetes/pki/ | xargs stat -c %U:%G",
            "find /etc/kubernetes/pki/ -name '*.key' | xargs stat -c permissions=%a",
            "/bin/sh -c 'if test -e /etc/kubernetes/manifests/etcd.yaml; then find /etc/kubernetes/manifests/etcd.yaml -name '*etcd*' | xargs stat -c permissions=%a; fi'",
            "/bin/sh -c 'if test -e /p; then cat /p; fi'",
            "for adminconf in /etc/kubernetes/admin.conf /etc/kubernetes/super-admin.conf; do if test -e $adminconf; then stat -c \"permissions=%a %n\" $adminconf; fi; done",
            "cat \"/proc/$(/bin/ps -C etcd -o pid= | tr -d ' ')/environ\" | tr '\\0' '\\n'",
        ] {
            assert!(recognize(a).is_some(), "{a}");
        }
        for a in [
            "kubectl get pods",
            "/bin/sh -c 'if test -e /p; then stat -c %a /q; fi'",
            "ps -ef | grep $(id) | grep -v grep",
            "echo \"Non empty command\"",
        ] {
            assert!(recognize(a).is_none(), "{a}");
        }
    }

    #[test]
    fn globs_match_like_find_name() {
        assert!(glob("*.key", "ca.key"));
        assert!(!glob("*.key", "ca.crt"));
        assert!(glob("*etcd*", "etcd.yaml"));
        assert!(glob("a?c", "abc"));
    }
}
