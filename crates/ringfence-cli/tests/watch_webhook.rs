//! `watch --webhook URL` POSTs each change, the JSON line it prints, to a
//! listener this test runs on 127.0.0.1 (loopback only); failing answers
//! and timeouts are retried a bounded number of times, then reported on
//! stderr while the watch goes on.

mod common;

use common::watching::{replace_file, watch_data as data, WatchProcess};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// One request the listener got.
#[derive(Debug)]
struct Request {
    head: String,
    body: String,
}

/// How the listener answers the n-th request (0-based).
#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    /// Read the request, then say nothing for this long.
    Silence(Duration),
}

/// A one-thread HTTP listener on 127.0.0.1: records every request and
/// answers with `script(n)`.
fn listen(script: fn(usize) -> Answer) -> (String, Receiver<Request>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/hooks/ringfence?token=secret",
        l.local_addr().unwrap()
    );
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for (n, conn) in l.incoming().enumerate() {
            let Ok(mut conn) = conn else { return };
            let Some(req) = read_request(&mut conn) else {
                continue;
            };
            let answer = script(n);
            if tx.send(req).is_err() {
                return;
            }
            match answer {
                Answer::Status(code) => {
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
                // Hold the connection open without a word, elsewhere, so
                // the next connection is accepted meanwhile.
                Answer::Silence(d) => {
                    std::thread::spawn(move || {
                        std::thread::sleep(d);
                        drop(conn);
                    });
                }
            }
        }
    });
    (url, rx)
}

fn read_request(conn: &mut TcpStream) -> Option<Request> {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        head,
        body: String::from_utf8(body).ok()?,
    })
}

/// `watch --format json --webhook URL` on a file; stdout and stderr lines
/// collected. Killed on drop if still running.
struct Watch {
    proc: WatchProcess,
}

impl Watch {
    fn start(rules: &Path, url: &str, extra: &[&str]) -> Watch {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringfence"));
        cmd.arg("watch")
            .arg("--site")
            .arg(data("site.yaml"))
            .arg("--source")
            .arg(format!("file:{}", rules.display()))
            .args(["--interval", "100ms", "--format", "json", "--webhook", url])
            .args(extra);
        // The listener is on loopback: no proxy from the environment.
        for v in ["http_proxy", "https_proxy", "all_proxy"] {
            cmd.env_remove(v).env_remove(v.to_uppercase());
        }
        let w = Watch {
            proc: WatchProcess::spawn(cmd, true),
        };
        w.line();
        w
    }

    fn line(&self) -> Value {
        let l = self.proc.expect_line(Duration::from_secs(10));
        serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"))
    }

    /// The next stderr line containing `needle`, within `wait`.
    fn stderr_with(&self, needle: &str, wait: Duration) -> String {
        self.proc.stderr_with(needle, wait)
    }
}

const BLOCK: &str = "\t\tip daddr 198.18.1.30 tcp dport 443 drop\n";

fn ruleset(dir: &Path) -> PathBuf {
    let p = dir.join("ruleset.nft");
    std::fs::write(&p, std::fs::read_to_string(data("ruleset.nft")).unwrap()).unwrap();
    p
}

fn set_blocked(path: &Path, blocked: bool) {
    let t = std::fs::read_to_string(path).unwrap();
    let new = if blocked {
        t.replacen(
            "\tchain allow {\n",
            &format!("\tchain allow {{\n{BLOCK}"),
            1,
        )
    } else {
        t.replacen(BLOCK, "", 1)
    };
    replace_file(path, &new);
}

fn recv(rx: &Receiver<Request>) -> Request {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the listener got a request")
}

#[test]
fn each_change_is_posted_as_the_json_line_watch_prints() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = ruleset(tmp.path());
    let (url, got) = listen(|_| Answer::Status(204));
    let w = Watch::start(&rules, &url, &[]);
    set_blocked(&rules, true);
    let printed = [w.line(), w.line()];
    for p in &printed {
        let r = recv(&got);
        assert!(
            r.head
                .starts_with("POST /hooks/ringfence?token=secret HTTP/1.1\r\n"),
            "{}",
            r.head
        );
        assert!(
            r.head
                .to_ascii_lowercase()
                .contains("content-type: application/json\r\n"),
            "{}",
            r.head
        );
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(&body, p, "the same JSON as the printed line, in order");
    }
    assert_eq!(printed[0]["change"], "flow-status");
    assert!(
        got.recv_timeout(Duration::from_millis(300)).is_err(),
        "one POST per change"
    );
}

#[test]
fn a_failing_endpoint_is_tried_three_times_then_reported_and_the_watch_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = ruleset(tmp.path());
    let (url, got) = listen(|_| Answer::Status(503));
    let w = Watch::start(&rules, &url, &[]);
    set_blocked(&rules, true);
    let first = w.line();
    w.line();
    // The first change: three attempts, then no more.
    for _ in 0..3 {
        let body: Value = serde_json::from_str(&recv(&got).body).unwrap();
        assert_eq!(body, first);
    }
    let msg = w.stderr_with("not delivered", Duration::from_secs(10));
    assert!(msg.contains("503"), "{msg}");
    assert!(msg.contains("after 3 attempts"), "{msg}");
    // The secret in the URL's query is not shown.
    assert!(
        !msg.contains("secret") && msg.contains("http://127.0.0.1:"),
        "{msg}"
    );
    // Watching goes on: the next change is still printed.
    set_blocked(&rules, false);
    assert_eq!(w.line()["change"], "flow-status");
}

#[test]
fn a_client_error_is_not_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = ruleset(tmp.path());
    let (url, got) = listen(|_| Answer::Status(404));
    let w = Watch::start(&rules, &url, &[]);
    set_blocked(&rules, true);
    w.line();
    w.line();
    recv(&got);
    recv(&got); // the second change's one attempt
    let msg = w.stderr_with("not delivered", Duration::from_secs(10));
    assert!(msg.contains("404") && msg.contains("not retried"), "{msg}");
    assert!(got.recv_timeout(Duration::from_millis(1500)).is_err());
}

#[test]
fn a_silent_endpoint_times_out_and_a_retry_that_succeeds_is_not_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = ruleset(tmp.path());
    // The first attempt gets no answer; the retry gets 200.
    let (url, got) = listen(|n| {
        if n == 0 {
            Answer::Silence(Duration::from_secs(3))
        } else {
            Answer::Status(200)
        }
    });
    let w = Watch::start(&rules, &url, &["--webhook-timeout", "300ms"]);
    set_blocked(&rules, true);
    let first = w.line();
    w.line();
    let a = recv(&got);
    let t = Instant::now();
    let b = recv(&got);
    assert_eq!(a.body, b.body, "the retry sends the same change");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the timeout cut the first attempt short"
    );
    assert_eq!(serde_json::from_str::<Value>(&a.body).unwrap(), first);
    recv(&got); // the second change
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        w.proc
            .err
            .as_ref()
            .expect("stderr captured")
            .try_iter()
            .all(|(_, l)| !l.contains("not delivered")),
        "a delivered change is not reported"
    );
}

#[test]
fn a_bad_webhook_url_exits_2_saying_what_is_expected() {
    for (url, needle) in [
        ("ftp://example.com/x", "http:// or https://"),
        ("hooks.example.com/x", "http:// or https://"),
        ("http://", "invalid URL"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_ringfence"))
            .arg("watch")
            .arg("--site")
            .arg(data("site.yaml"))
            .args(["--source", "nft", "--once", "--webhook", url])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{url}: {err}");
        assert!(err.contains(needle), "{url}: {err}");
    }
}
