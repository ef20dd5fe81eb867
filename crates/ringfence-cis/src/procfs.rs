//! A node's process table, read through the same confinement as its files.
//!
//! Processes come from one directory: `/proc` for a live scan, `ROOT/proc`
//! for a mounted root that carries one, or whatever `--proc DIR` names. Every
//! read goes through a [`RootFs`]: `ROOT/proc` through the node's own root
//! (so `ROOT/proc/PID/cmdline` as a symlink to `/etc/x` means `ROOT/etc/x`),
//! any other directory through a root of its own. Only regular files are
//! read, never FIFOs or devices, and never more than [`READ_LIMIT`] bytes.
//!
//! The kernel's magic links `/proc/PID/exe` and `/proc/PID/root` lead into a
//! process's own view of the filesystem. They are used as the kernel means
//! them only when the directory is a real procfs mount (which a node image
//! cannot fake); anywhere else they are ordinary symlinks, resolved inside
//! the root like every other path. A scan of a mounted node image therefore
//! never opens the scanning host's `/proc/PID/exe`.
//!
//! [`READ_LIMIT`]: crate::rootfs::READ_LIMIT

use crate::rootfs::{FsError, RootFs};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// `f_type` of a procfs mount (`PROC_SUPER_MAGIC` in linux/magic.h).
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// A process directory and how to read it.
#[derive(Debug, Clone)]
pub struct Procfs {
    /// The root the directory is read through.
    fs: RootFs,
    /// The directory as `fs` sees it (`/proc` inside a node root, `/` when
    /// the directory is a root of its own).
    base: String,
    /// Whether it is a real procfs mount (its magic links are the kernel's).
    kernel: bool,
    /// The directory on the scanning host, for the magic links.
    host_dir: PathBuf,
}

impl Procfs {
    /// The process directory of a scan: `proc_dir` when given (read as a
    /// root of its own), else `/proc` for a live scan (`root` is `None`),
    /// else `ROOT/proc` read through `node_fs` when it holds process
    /// entries. `None` when there is no process table to read.
    pub fn for_scan(
        root: Option<&Path>,
        proc_dir: Option<&Path>,
        node_fs: &RootFs,
    ) -> Option<Self> {
        if let Some(dir) = proc_dir {
            return Some(Procfs::own_root(dir));
        }
        if root.is_none() {
            return Some(Procfs::own_root(Path::new("/proc")));
        }
        // Inside the node root: resolved like any other path there.
        let host_dir = node_fs.resolve("/proc").ok()?;
        let p = Procfs {
            fs: node_fs.clone(),
            base: "/proc".to_string(),
            kernel: is_procfs(&host_dir),
            host_dir,
        };
        (!p.pids().is_empty()).then_some(p)
    }

    fn own_root(dir: &Path) -> Self {
        Procfs {
            fs: RootFs::new(dir),
            base: "/".to_string(),
            kernel: is_procfs(dir),
            host_dir: dir.to_path_buf(),
        }
    }

    /// Whether the directory is a real procfs mount.
    pub fn is_kernel(&self) -> bool {
        self.kernel
    }

    fn path(&self, pid: u32, name: &str) -> String {
        format!("{}/{pid}/{name}", self.base.trim_end_matches('/'))
    }

    /// Process ids in the directory, ascending.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .fs
            .list(&self.base)
            .unwrap_or_default()
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        pids.sort_unstable();
        pids
    }

    /// The bytes of `PID/NAME` (`cmdline`, `comm`, `environ`); `Ok(None)`
    /// when it does not exist. Errors name the file as `/proc/PID/NAME`.
    pub fn read(&self, pid: u32, name: &str) -> Result<Option<Vec<u8>>, FsError> {
        self.fs
            .read_bytes(&self.path(pid, name))
            .map_err(|e| e.renamed(&format!("/proc/{pid}/{name}")))
    }

    /// A process's argument vector (`cmdline` split at NUL bytes).
    pub fn cmdline(&self, pid: u32) -> Result<Option<Vec<String>>, FsError> {
        Ok(self.read(pid, "cmdline")?.map(|bytes| {
            bytes
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        }))
    }

    /// A process's command name (`comm`, without the newline).
    pub fn comm(&self, pid: u32) -> Option<String> {
        let bytes = self.read(pid, "comm").ok()??;
        Some(
            String::from_utf8_lossy(&bytes)
                .trim_end_matches('\n')
                .to_string(),
        )
    }

    /// The process's executable, opened for reading: through the kernel's
    /// magic link on a real procfs, otherwise as a symlink resolved inside
    /// the root. `None` when it cannot be opened as a regular file.
    pub fn exe(&self, pid: u32) -> Option<std::fs::File> {
        if self.kernel {
            // The magic link cannot be resolved by name; open it without
            // blocking and make sure it is a regular file before reading.
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(self.host_dir.join(pid.to_string()).join("exe"))
                .ok()?;
            return f.metadata().ok()?.is_file().then_some(f);
        }
        self.fs.open_regular(&self.path(pid, "exe")).ok()?
    }

    /// The filesystem as the process sees it (`/proc/PID/root`), only on a
    /// real procfs: anywhere else the link is the node image's, and the
    /// node's own root already is the place to look.
    pub fn root_of(&self, pid: u32) -> Option<RootFs> {
        self.kernel
            .then(|| RootFs::new(self.host_dir.join(pid.to_string()).join("root")))
    }
}

/// Whether `dir` is the root of a procfs mount.
fn is_procfs(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: a valid NUL-terminated path and a buffer of the right type.
    let rc = unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: statfs succeeded and filled the buffer.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)]
    let kind = st.f_type as i64;
    kind == PROC_SUPER_MAGIC
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_proc_is_a_kernel_procfs_and_a_plain_directory_is_not() {
        assert!(is_procfs(Path::new("/proc")));
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_procfs(dir.path()));
    }

    #[test]
    fn a_root_without_process_entries_has_no_process_table() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc/sys")).unwrap();
        let fs = RootFs::new(dir.path());
        assert!(Procfs::for_scan(Some(dir.path()), None, &fs).is_none());
        std::fs::create_dir_all(dir.path().join("proc/42")).unwrap();
        let p = Procfs::for_scan(Some(dir.path()), None, &fs).unwrap();
        assert_eq!(p.pids(), vec![42]);
        assert!(!p.is_kernel());
    }
}
