//! A running `ringfence watch` as the watch tests drive it: its output
//! lines arrive on channels, timestamped when read; it is stopped with
//! SIGTERM like a service manager would, and killed on drop if a failing
//! test leaves it running. Also the fixtures of `tests/data/watch` and an
//! editor-style file replacement.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// A file of `tests/data/watch`.
pub fn watch_data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/watch")
        .join(name)
}

/// The text of a file of `tests/data/watch`.
pub fn watch_fixture(name: &str) -> String {
    std::fs::read_to_string(watch_data(name)).expect("fixture")
}

/// Write `path` the way an editor does: a temporary name, then a rename.
pub fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write the temporary file");
    std::fs::rename(&tmp, path).expect("rename it over the file");
}

/// The lines of `r`, each with the time it was read, on a channel fed by a
/// thread of its own (ends with the stream).
fn line_channel(r: impl Read + Send + 'static) -> Receiver<(Instant, String)> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), l)).is_err() {
                return;
            }
        }
    });
    rx
}

/// A spawned `ringfence watch`.
pub struct WatchProcess {
    /// The process (its pid for tests that look at its children).
    pub child: Child,
    /// Standard output, line by line.
    pub out: Receiver<(Instant, String)>,
    /// Standard error line by line, when captured (see [`WatchProcess::spawn`]).
    pub err: Option<Receiver<(Instant, String)>>,
}

impl WatchProcess {
    /// Starts `cmd` with stdin closed and stdout read line by line; stderr
    /// is captured when `capture_stderr`, else passed through to the test's.
    pub fn spawn(mut cmd: Command, capture_stderr: bool) -> WatchProcess {
        let stderr = if capture_stderr {
            Stdio::piped()
        } else {
            Stdio::inherit()
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start ringfence watch");
        let out = line_channel(child.stdout.take().expect("piped stdout"));
        let err = child.stderr.take().map(line_channel);
        WatchProcess { child, out, err }
    }

    /// The next stdout line within `wait`, if any.
    pub fn next_line(&self, wait: Duration) -> Option<(Instant, String)> {
        self.out.recv_timeout(wait).ok()
    }

    /// The next stdout line within `wait`; panics (failing the test) when
    /// none comes.
    pub fn expect_line(&self, wait: Duration) -> String {
        self.next_line(wait)
            .unwrap_or_else(|| panic!("watch printed no line within {wait:?}"))
            .1
    }

    /// The next captured stderr line containing `needle`, within `wait`.
    pub fn stderr_with(&self, needle: &str, wait: Duration) -> String {
        let err = self.err.as_ref().expect("stderr was not captured");
        let end = Instant::now() + wait;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match err.recv_timeout(left) {
                Ok((_, l)) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no stderr line with {needle:?} within {wait:?}");
    }

    /// SIGTERM, then the exit status; fails the test when watch has not
    /// stopped within 5 s.
    pub fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("wait for watch") {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "watch did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WatchProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
