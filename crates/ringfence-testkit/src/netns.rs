//! Network namespaces made by a test, and removed by it on every exit path.
//!
//! Every namespace is named `rf-<tag><pid>-<n>`: the `rf-` prefix marks it as
//! ours, the pid lets a later run remove what a killed run left
//! ([`Netns::new`] does that for its tag first). Links are created inside the
//! namespaces, never in the root namespace, and tests give them addresses in
//! 198.18.0.0/15 only.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace this test created; deleted when dropped (on panic too).
#[derive(Debug)]
pub struct Netns {
    /// Its name (`rf-…`).
    pub name: String,
}

/// Run a command to completion and require success; panics with its stderr.
pub fn must(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Delete namespaces `rf-<tag><pid>-*` whose process no longer exists (a
/// killed test run skips every guard).
pub fn remove_stale(tag: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let prefix = format!("rf-{tag}");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('-') else {
            continue;
        };
        if !pid.is_empty()
            && pid.chars().all(|c| c.is_ascii_digit())
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Netns {
    /// Create `rf-<tag><pid>-<n>` with its loopback up. `tag` is a few
    /// lowercase letters naming the test file (names must stay short: a
    /// namespace name is at most 255 bytes, but veth names derived from it
    /// must fit 15).
    pub fn new(tag: &str) -> Netns {
        remove_stale(tag);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("rf-{tag}{}-{n}", std::process::id());
        must("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Run `cmd args...` inside the namespace with `stdin` fed to it.
    pub fn run(&self, cmd: &str, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, cmd])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd} in {}: {e}", self.name));
        {
            let mut si = child.stdin.take().expect("stdin");
            // A command that exits before reading its input is judged by its status.
            let _ = si.write_all(stdin);
        }
        child.wait_with_output().expect("wait")
    }

    /// [`Netns::run`], requiring success; returns stdout.
    pub fn ok(&self, cmd: &str, args: &[&str], stdin: &[u8]) -> String {
        let out = self.run(cmd, args, stdin);
        assert!(
            out.status.success(),
            "{cmd} {args:?} failed in {}:\n{}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip -n NAME args...`, requiring success.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        must("ip", &all)
    }

    /// Set sysctls (`"net.ipv4.ip_forward=1"`) inside the namespace.
    pub fn sysctl(&self, settings: &[&str]) {
        for s in settings {
            self.ok("sysctl", &["-qw", s], b"");
        }
    }

    /// Load an nftables ruleset (`nft -f -`).
    pub fn load_nft(&self, text: &str) {
        self.ok("nft", &["-f", "-"], text.as_bytes());
    }

    /// Load iptables-save text (`iptables-restore`).
    pub fn load_iptables(&self, text: &str) {
        self.ok("iptables-restore", &[], text.as_bytes());
    }

    /// Load ip6tables-save text (`ip6tables-restore`).
    pub fn load_ip6tables(&self, text: &str) {
        self.ok("ip6tables-restore", &[], text.as_bytes());
    }

    /// A veth pair from `dev` here to `peer_dev` in `peer`, both up, created
    /// inside this namespace (never in the root namespace).
    pub fn veth(&self, dev: &str, peer: &Netns, peer_dev: &str) {
        self.ip(&[
            "link", "add", dev, "type", "veth", "peer", "name", peer_dev, "netns", &peer.name,
        ]);
        self.ip(&["link", "set", dev, "up"]);
        peer.ip(&["link", "set", peer_dev, "up"]);
    }

    /// Add an address (`"198.18.0.1/24"`) to a device.
    pub fn addr(&self, dev: &str, cidr: &str) {
        self.ip(&["addr", "add", cidr, "dev", dev]);
    }

    /// A default route via `gw`.
    pub fn default_route(&self, gw: &str) {
        self.ip(&["route", "add", "default", "via", gw]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill what still runs inside, then delete the namespace.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Three namespaces in a line, client — router — server, the router
/// forwarding between two /24s of 198.18.0.0/15. The shape every kernel
/// differential test uses: rules go on the router, connections go from the
/// client's addresses to the server's.
#[derive(Debug)]
pub struct Line3 {
    /// The client side (default route via the router).
    pub client: Netns,
    /// The router (forwarding on; rulesets are loaded here).
    pub router: Netns,
    /// The server side (default route via the router).
    pub server: Netns,
}

/// Addresses of a [`Line3`].
#[derive(Debug, Clone)]
pub struct Line3Spec<'a> {
    /// Tag for the namespace names.
    pub tag: &'a str,
    /// Router device facing the client, and its address (`198.18.0.1/24`).
    pub router_in: (&'a str, &'a str),
    /// Router device facing the server, and its address.
    pub router_out: (&'a str, &'a str),
    /// Client addresses (with prefix length).
    pub client_addrs: Vec<String>,
    /// Server addresses (with prefix length).
    pub server_addrs: Vec<String>,
}

impl Line3 {
    /// Build the three namespaces, links, addresses and routes. ICMP rate
    /// limits are lifted so that rejects under load are not mistaken for drops.
    pub fn new(spec: &Line3Spec<'_>) -> Line3 {
        let l = Line3 {
            client: Netns::new(spec.tag),
            router: Netns::new(spec.tag),
            server: Netns::new(spec.tag),
        };
        l.router.veth(spec.router_in.0, &l.client, "c0");
        l.router.veth(spec.router_out.0, &l.server, "s0");
        l.router.addr(spec.router_in.0, spec.router_in.1);
        l.router.addr(spec.router_out.0, spec.router_out.1);
        for a in &spec.client_addrs {
            l.client.addr("c0", a);
        }
        for a in &spec.server_addrs {
            l.server.addr("s0", a);
        }
        let gw = |cidr: &str| cidr.split('/').next().unwrap_or(cidr).to_string();
        l.client.default_route(&gw(spec.router_in.1));
        l.server.default_route(&gw(spec.router_out.1));
        l.router.sysctl(&["net.ipv4.ip_forward=1"]);
        for ns in [&l.client, &l.router, &l.server] {
            // 0 for icmp_ratelimit means "no limit"; 0 for icmp_msgs_per_sec
            // would mean "no ICMP errors at all", so those get a large value.
            ns.sysctl(&[
                "net.ipv4.icmp_ratelimit=0",
                "net.ipv4.icmp_msgs_per_sec=100000",
                "net.ipv4.icmp_msgs_burst=100000",
            ]);
        }
        l
    }
}
