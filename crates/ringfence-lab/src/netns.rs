//! Running code inside a named network namespace from a dedicated thread.
//!
//! `setns(CLONE_NEWNET)` moves only the calling thread, so a short-lived thread
//! enters the namespace, creates sockets there (a socket stays in the
//! namespace it was created in) and hands them back.

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
use std::fs::File;
use std::os::fd::AsFd;

/// Open the namespace handle `ip netns add` made for `name`.
pub(crate) fn open_ns(name: &str) -> std::io::Result<File> {
    File::open(format!("/run/netns/{name}"))
}

/// Move the calling thread into the namespace behind `fd`.
pub(crate) fn enter(fd: &File) -> std::io::Result<()> {
    move_into_link_name_space(fd.as_fd(), Some(LinkNameSpaceType::Network))
        .map_err(std::io::Error::from)
}

/// Run `f` on a new thread inside network namespace `name` and return its result.
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    let fd = open_ns(name)?;
    std::thread::scope(|s| {
        s.spawn(move || {
            enter(&fd)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("thread in namespace panicked")))
    })
}
