//! Confined access to a node's filesystem.
//!
//! A scan reads a node through a root directory: `/` for the running host, or
//! a mounted node image (`--root DIR`). Every path a check names is resolved
//! *inside* that root: absolute symlinks restart at the root, `..` never climbs
//! above it, and the resolver refuses loops. Only regular files are opened, with
//! `O_NOFOLLOW | O_NONBLOCK`, so a FIFO or device under the root can neither
//! block nor be read. Nothing here writes.
//!
//! User and group names come from the root's own `etc/passwd` and `etc/group`,
//! never from the scanning host's name service.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Largest file a check will read (4 MiB): configs and manifests are small.
pub const READ_LIMIT: u64 = 4 << 20;

/// Most entries a directory listing or a walk returns: a node's
/// configuration directories hold dozens; a root crafted with millions must
/// not stall the scan.
pub const ENTRY_LIMIT: usize = 100_000;

/// Symlinks followed while resolving one path before we call it a loop.
const MAX_LINKS: usize = 40;

/// Why a path could not be resolved or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    /// Nothing exists at the path.
    #[error("{0}: not found")]
    NotFound(String),
    /// A path component that must be a directory is not one.
    #[error("{0}: a component of the path is not a directory")]
    NotADirectory(String),
    /// Too many symlinks.
    #[error("{0}: too many levels of symbolic links")]
    Loop(String),
    /// The path exists but is not a regular file (directory, FIFO, device).
    #[error("{0}: not a regular file")]
    NotRegular(String),
    /// The file is larger than [`READ_LIMIT`].
    #[error("{0}: larger than {READ_LIMIT} bytes")]
    TooLarge(String),
    /// Any other I/O error.
    #[error("{path}: {message}")]
    Io {
        /// The path inside the root.
        path: String,
        /// The operating system's message.
        message: String,
    },
}

impl FsError {
    /// The same error about another name for the path (how the node
    /// shows it, for example `/proc/PID/cmdline` for a `--proc` directory).
    pub fn renamed(self, path: &str) -> FsError {
        let p = path.to_string();
        match self {
            FsError::NotFound(_) => FsError::NotFound(p),
            FsError::NotADirectory(_) => FsError::NotADirectory(p),
            FsError::Loop(_) => FsError::Loop(p),
            FsError::NotRegular(_) => FsError::NotRegular(p),
            FsError::TooLarge(_) => FsError::TooLarge(p),
            FsError::Io { message, .. } => FsError::Io { path: p, message },
        }
    }
}

/// What a check can know about a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Whether it is a regular file.
    pub is_file: bool,
}

/// A node's filesystem seen through its root directory.
#[derive(Debug, Clone)]
pub struct RootFs {
    root: PathBuf,
}

impl RootFs {
    /// A filesystem rooted at `root` (use `/` for the running host).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RootFs { root: root.into() }
    }

    /// The root directory on the scanning host.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolve `path` (as seen on the node) to a host path inside the root
    /// whose last component is not a symlink.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, FsError> {
        let mut pending: Vec<OsString> = Vec::new();
        push_components(&mut pending, Path::new(path));
        let mut inside: Vec<OsString> = Vec::new();
        let mut links = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                inside.pop();
                continue;
            }
            let mut host = self.root.clone();
            host.extend(&inside);
            host.push(&part);
            let meta = match std::fs::symlink_metadata(&host) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(FsError::NotFound(path.to_string()))
                }
                Err(e) if e.raw_os_error() == Some(20) => {
                    return Err(FsError::NotADirectory(path.to_string()))
                }
                Err(e) => return Err(io(path, &e)),
            };
            if meta.file_type().is_symlink() {
                links += 1;
                if links > MAX_LINKS {
                    return Err(FsError::Loop(path.to_string()));
                }
                let target = std::fs::read_link(&host).map_err(|e| io(path, &e))?;
                if target.is_absolute() {
                    inside.clear();
                }
                push_components(&mut pending, &target);
            } else {
                if !pending.is_empty() && !meta.is_dir() {
                    return Err(FsError::NotADirectory(path.to_string()));
                }
                inside.push(part);
            }
        }
        let mut host = self.root.clone();
        host.extend(&inside);
        Ok(host)
    }

    /// Status of the file at `path` (symlinks followed inside the root);
    /// `Ok(None)` when nothing is there.
    pub fn stat(&self, path: &str) -> Result<Option<FileStat>, FsError> {
        let host = match self.resolve(path) {
            Ok(h) => h,
            Err(FsError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let m = std::fs::symlink_metadata(&host).map_err(|e| io(path, &e))?;
        Ok(Some(FileStat {
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            is_dir: m.is_dir(),
            is_file: m.is_file(),
        }))
    }

    /// Whether something exists at `path`.
    pub fn exists(&self, path: &str) -> bool {
        matches!(self.stat(path), Ok(Some(_)))
    }

    /// Open a regular file for reading, confined to the root; `Ok(None)` when
    /// it does not exist. FIFOs, devices and sockets are refused unopened.
    pub fn open_regular(&self, path: &str) -> Result<Option<std::fs::File>, FsError> {
        let host = match self.resolve(path) {
            Ok(h) => h,
            Err(FsError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let meta = std::fs::symlink_metadata(&host).map_err(|e| io(path, &e))?;
        if !meta.is_file() {
            return Err(FsError::NotRegular(path.to_string()));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&host)
            .map_err(|e| io(path, &e))?;
        let meta = file.metadata().map_err(|e| io(path, &e))?;
        if !meta.is_file() {
            return Err(FsError::NotRegular(path.to_string()));
        }
        Ok(Some(file))
    }

    /// Read a regular file as UTF-8 (lossy); `Ok(None)` when it does not exist.
    pub fn read(&self, path: &str) -> Result<Option<String>, FsError> {
        Ok(self
            .read_bytes(path)?
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Read a regular file's bytes, at most [`READ_LIMIT`] of them; `Ok(None)`
    /// when it does not exist. A file that reports size 0 but has content
    /// (as `/proc` files do) is read up to the limit too.
    pub fn read_bytes(&self, path: &str) -> Result<Option<Vec<u8>>, FsError> {
        let Some(file) = self.open_regular(path)? else {
            return Ok(None);
        };
        let meta = file.metadata().map_err(|e| io(path, &e))?;
        if meta.len() > READ_LIMIT {
            return Err(FsError::TooLarge(path.to_string()));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(READ_LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io(path, &e))?;
        if bytes.len() as u64 > READ_LIMIT {
            return Err(FsError::TooLarge(path.to_string()));
        }
        Ok(Some(bytes))
    }

    /// Names in the directory at `path`, sorted; empty when it does not exist.
    pub fn list(&self, path: &str) -> Result<Vec<String>, FsError> {
        let host = match self.resolve(path) {
            Ok(h) => h,
            Err(FsError::NotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        if !host.is_dir() {
            return Ok(Vec::new());
        }
        let mut names: Vec<String> = std::fs::read_dir(&host)
            .map_err(|e| io(path, &e))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .take(ENTRY_LIMIT + 1)
            .collect();
        if names.len() > ENTRY_LIMIT {
            return Err(too_many(path, ENTRY_LIMIT));
        }
        names.sort();
        Ok(names)
    }

    /// Every path below the directory `dir` (node paths, sorted, depth first),
    /// without descending through symlinked directories.
    pub fn walk(&self, dir: &str) -> Result<Vec<String>, FsError> {
        self.walk_limited(dir, ENTRY_LIMIT)
    }

    fn walk_limited(&self, dir: &str, limit: usize) -> Result<Vec<String>, FsError> {
        let mut out = Vec::new();
        self.walk_into(dir.trim_end_matches('/'), &mut out, 0, limit)?;
        Ok(out)
    }

    fn walk_into(
        &self,
        dir: &str,
        out: &mut Vec<String>,
        depth: usize,
        limit: usize,
    ) -> Result<(), FsError> {
        if depth > 32 {
            return Ok(());
        }
        let host = match self.resolve(dir) {
            Ok(h) => h,
            Err(FsError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        for name in self.list(dir)? {
            let child = format!("{dir}/{name}");
            if out.len() >= limit {
                return Err(too_many(dir, limit));
            }
            out.push(child.clone());
            let meta = std::fs::symlink_metadata(host.join(&name)).map_err(|e| io(&child, &e))?;
            if meta.is_dir() {
                self.walk_into(&child, out, depth + 1, limit)?;
            }
        }
        Ok(())
    }
}

fn push_components(pending: &mut Vec<OsString>, path: &Path) {
    let mut parts: Vec<OsString> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_os_string()),
            Component::ParentDir => parts.push(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    pending.extend(parts.into_iter().rev());
}

fn too_many(path: &str, limit: usize) -> FsError {
    FsError::Io {
        path: path.to_string(),
        message: format!("more than {limit} entries"),
    }
}

fn io(path: &str, e: &std::io::Error) -> FsError {
    FsError::Io {
        path: path.to_string(),
        message: e.to_string(),
    }
}

/// User and group names of a node, read from its own `etc/passwd` and
/// `etc/group`.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Accounts {
    /// Load the node's account databases; missing files give numeric names.
    pub fn load(fs: &RootFs) -> Self {
        let parse = |path: &str| -> HashMap<u32, String> {
            let Ok(Some(text)) = fs.read(path) else {
                return HashMap::new();
            };
            let mut map = HashMap::new();
            for line in text.lines() {
                if line.starts_with('#') {
                    continue;
                }
                let mut fields = line.split(':');
                let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next())
                else {
                    continue;
                };
                if let Ok(id) = id.parse::<u32>() {
                    // The first entry for an id wins, as getpwuid does.
                    map.entry(id).or_insert_with(|| name.to_string());
                }
            }
            map
        };
        Accounts {
            users: parse("/etc/passwd"),
            groups: parse("/etc/group"),
        }
    }

    /// The user name of `uid`, when the node's `etc/passwd` has one.
    pub fn user(&self, uid: u32) -> Option<&str> {
        self.users.get(&uid).map(String::as_str)
    }

    /// The group name of `gid`, when the node's `etc/group` has one.
    pub fn group(&self, gid: u32) -> Option<&str> {
        self.groups.get(&gid).map(String::as_str)
    }

    /// `user:group`, falling back to the numeric id for unknown ids.
    pub fn owner(&self, uid: u32, gid: u32) -> String {
        let user = self
            .users
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string());
        let group = self
            .groups
            .get(&gid)
            .cloned()
            .unwrap_or_else(|| gid.to_string());
        format!("{user}:{group}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("real/etc")).unwrap();
        std::fs::write(root.join("real/etc/file"), "inside").unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        symlink("/real/etc/file", root.join("etc/link")).unwrap();
        let fs = RootFs::new(root);
        assert_eq!(fs.read("/etc/link").unwrap().as_deref(), Some("inside"));
    }

    #[test]
    fn dot_dot_never_climbs_above_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(dir.path().join("secret"), "outside").unwrap();
        std::fs::write(root.join("secret"), "inside").unwrap();
        symlink("../../../../secret", root.join("a/up")).unwrap();
        let fs = RootFs::new(&root);
        assert_eq!(fs.read("/a/up").unwrap().as_deref(), Some("inside"));
        assert_eq!(fs.read("/../../secret").unwrap().as_deref(), Some("inside"));
        assert_eq!(fs.resolve("/a/up").unwrap(), root.join("secret"));
    }

    #[test]
    fn relative_symlinks_resolve_from_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("x/y")).unwrap();
        std::fs::write(root.join("x/target"), "t").unwrap();
        symlink("../target", root.join("x/y/l")).unwrap();
        symlink("y", root.join("x/ydir")).unwrap();
        let fs = RootFs::new(root);
        assert_eq!(fs.read("/x/ydir/l").unwrap().as_deref(), Some("t"));
    }

    #[test]
    fn symlink_loops_are_reported_not_followed_forever() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        let fs = RootFs::new(dir.path());
        assert!(matches!(fs.resolve("/a"), Err(FsError::Loop(_))));
    }

    #[test]
    fn fifos_and_directories_are_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let fs = RootFs::new(dir.path());
        assert!(matches!(fs.read("/fifo"), Err(FsError::NotRegular(_))));
        assert!(matches!(fs.read("/"), Err(FsError::NotRegular(_))));
        assert_eq!(fs.read("/missing").unwrap(), None);
    }

    #[test]
    fn a_walk_stops_with_an_error_past_its_entry_limit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pki/sub")).unwrap();
        for i in 0..6 {
            std::fs::write(dir.path().join(format!("pki/sub/{i}.key")), "k").unwrap();
        }
        let fs = RootFs::new(dir.path());
        assert_eq!(fs.walk_limited("/pki", 10).unwrap().len(), 7);
        assert_eq!(
            fs.walk_limited("/pki", 5).unwrap_err().to_string(),
            "/pki/sub: more than 5 entries"
        );
    }

    #[test]
    fn owner_names_come_from_the_roots_passwd_and_group() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\netcd:x:4242:4243::/:/sbin/nologin\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\netcd:x:4243:\n").unwrap();
        let acc = Accounts::load(&RootFs::new(dir.path()));
        assert_eq!(acc.owner(4242, 4243), "etcd:etcd");
        assert_eq!(acc.owner(0, 0), "root:root");
        assert_eq!(acc.owner(7, 8), "7:8");
    }
}
