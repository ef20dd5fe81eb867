//! A recorder of delivered connections inside a test namespace.
//!
//! [`ArrivalAgent`] runs `pipeline.py agent PORT...` (kept beside the
//! analysis crate's kernel tests) in a namespace the test created. The agent
//! listens on every port for TCP and UDP and records the first packet of each
//! connection that this namespace's own stack received, that is, what
//! netfilter there let through to a socket. The kernel differential tests
//! and the Kubernetes fixture tests both ask it "what arrived since the last
//! dump", so the process handling lives here once.

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::Netns;

/// One recorded first packet, as the receiving namespace saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// IP protocol number (6 TCP, 17 UDP).
    pub proto: u8,
    /// Source address as received (after any source translation).
    pub src: IpAddr,
    /// Source port as received.
    pub sport: u16,
    /// Destination address as received (after any destination translation).
    pub dst: IpAddr,
    /// Destination port as received.
    pub dport: u16,
}

/// The agent process of one namespace; killed and reaped on drop, so a
/// failing test leaves no process behind.
pub struct ArrivalAgent {
    label: String,
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

/// The agent script in the repository.
pub fn script() -> PathBuf {
    crate::repo::path("crates/ringfence-analysis/tests/kernel/pipeline.py")
}

impl ArrivalAgent {
    /// Starts the agent in `ns` listening on `ports`, and waits for it to say
    /// it is ready. Panics (failing the test) when it does not start.
    pub fn start(ns: &Netns, ports: &[u16]) -> ArrivalAgent {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "python3"])
            .arg(script())
            .arg("agent")
            .args(ports.iter().map(|p| p.to_string()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the arrival agent (python3 in the namespace)");
        let input = child.stdin.take().expect("agent stdin");
        let mut output = BufReader::new(child.stdout.take().expect("agent stdout"));
        let mut line = String::new();
        output.read_line(&mut line).expect("agent output");
        assert_eq!(
            line.trim(),
            "ready",
            "the agent in {} did not start",
            ns.name
        );
        ArrivalAgent {
            label: ns.name.clone(),
            child,
            input,
            output,
        }
    }

    /// The namespace the agent runs in.
    pub fn namespace(&self) -> &str {
        &self.label
    }

    /// What arrived since the previous dump (or since the start).
    pub fn dump(&mut self) -> Vec<Recorded> {
        self.input.write_all(b"dump\n").expect("agent stdin");
        self.input.flush().expect("agent stdin");
        let mut line = String::new();
        self.output.read_line(&mut line).expect("agent output");
        let seen: Vec<(u8, String, u16, String, u16)> = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("the agent in {} said {line:?}: {e}", self.label));
        seen.into_iter()
            .map(|(proto, src, sport, dst, dport)| Recorded {
                proto,
                src: src.parse().expect("agent address"),
                sport,
                dst: dst.parse().expect("agent address"),
                dport,
            })
            .collect()
    }
}

impl Drop for ArrivalAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
