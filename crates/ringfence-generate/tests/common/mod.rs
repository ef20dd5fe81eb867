//! Shared test plumbing: sites, tool checks, network namespaces.
#![allow(dead_code)]

pub mod eval;
pub mod nfteval;

use ringfence_site::Site;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The all-features site (dual stack, LDAP, Avi with NSX cloud, NSX DHCP, extra flows).
pub const ALL_FEATURES_YAML: &str = include_str!("../sites/all-features.yaml");

pub fn example() -> Site {
    ringfence_site::example_site()
}

pub fn all_features() -> Site {
    ringfence_site::parse_site(ALL_FEATURES_YAML, "tests/sites/all-features.yaml")
        .expect("all-features site is valid")
}

pub fn sites() -> Vec<(&'static str, Site)> {
    vec![("example", example()), ("all-features", all_features())]
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether `name` is an executable on PATH.
pub fn have_tool(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// Root and every tool named are available; otherwise print why the test is skipped.
pub fn can_run(test: &str, tools: &[&str]) -> bool {
    if !is_root() {
        eprintln!("skipped: {test} needs root to create network namespaces");
        return false;
    }
    for t in ["ip"].iter().chain(tools) {
        if !have_tool(t) {
            eprintln!("skipped: {test} needs `{t}` on PATH");
            return false;
        }
    }
    true
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace this test created; deleted when dropped, on failure too.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("rf-gen-{}-{n}", std::process::id());
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip netns add");
        assert!(st.success(), "ip netns add {name} failed");
        Netns { name }
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
            .unwrap_or_else(|e| panic!("spawn {cmd}: {e}"));
        {
            let mut si = child.stdin.take().expect("stdin");
            si.write_all(stdin).expect("write stdin");
        }
        child.wait_with_output().expect("wait")
    }

    /// Run and require success, returning stdout.
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
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `.venv/bin/aclgen` at the workspace root, if CI (or a developer) created it.
pub fn aclgen() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = root.join(".venv/bin/aclgen");
    p.is_file().then_some(p)
}

use eval::Packet;
use ipnet::IpNet;
use ringfence_generate::Family;
use ringfence_site::{Protocol, ResolvedSite};
use std::collections::BTreeSet;
use std::net::IpAddr;

fn host(net: &IpNet, last: bool) -> IpAddr {
    match net {
        IpNet::V4(n) => {
            let base = u32::from(n.network());
            let a = if n.prefix_len() >= 31 {
                base
            } else if last {
                u32::from(n.broadcast()) - 1
            } else {
                base + 1
            };
            IpAddr::V4(a.into())
        }
        IpNet::V6(n) => {
            let base = u128::from(n.network());
            let a = if n.prefix_len() >= 127 {
                base
            } else if last {
                u128::from(n.broadcast()) - 1
            } else {
                base + 1
            };
            IpAddr::V6(a.into())
        }
    }
}

/// Probe packets that exercise every flow of `site` in family `fam`: every
/// pair of representative addresses (first and last host of each network,
/// plus one address outside every zone) times every protocol/port edge
/// (first, last, one below, one above each range; ICMP; GRE for "all").
pub fn probes(site: &ResolvedSite, fam: Family) -> Vec<Packet> {
    let mut addrs: BTreeSet<IpAddr> = BTreeSet::new();
    let mut ports: BTreeSet<(u8, u16)> = BTreeSet::new();
    let icmp = if fam == Family::V4 { 1 } else { 58 };
    for p in [(6, 80), (17, 9999), (icmp, 0), (47, 0)] {
        ports.insert(p);
    }
    addrs.insert(match fam {
        Family::V4 => "198.19.255.1".parse().unwrap(),
        Family::V6 => "fd00:ffff::1".parse().unwrap(),
    });
    for f in &site.flows {
        for n in f.sources.iter().chain(&f.destinations) {
            if Family::of(n) != fam || n.prefix_len() == 0 {
                continue;
            }
            addrs.insert(host(n, false));
            addrs.insert(host(n, true));
        }
        for s in &f.services {
            let pr = match s.protocol {
                Protocol::Tcp => 6,
                Protocol::Udp => 17,
                Protocol::Icmp => {
                    ports.insert((icmp, 0));
                    continue;
                }
                Protocol::Any => {
                    ports.insert((6, 1));
                    ports.insert((17, 1));
                    continue;
                }
            };
            let (a, b) = (s.ports.first, s.ports.last);
            for p in [Some(a), Some(b), a.checked_sub(1), b.checked_add(1)]
                .into_iter()
                .flatten()
            {
                ports.insert((pr, p));
            }
        }
    }
    let mut out = Vec::new();
    for s in &addrs {
        for d in &addrs {
            for (proto, dport) in &ports {
                out.push(Packet {
                    src: *s,
                    dst: *d,
                    proto: *proto,
                    dport: *dport,
                });
            }
        }
    }
    out
}

/// Write `text` to a fresh temp file and return it (kept alive by the handle).
pub fn temp_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write temp file");
    f.flush().expect("flush");
    f
}

/// The verdict the site itself prescribes for a new connection, straight from
/// the resolved flows (independent of every generator): accept when some
/// allow flow has a network pair holding source and destination and a service
/// matching protocol and port; everything else falls to deny-all.
pub fn expected(site: &ResolvedSite, p: &Packet) -> eval::Verdict {
    for f in site.allowed() {
        let addr_ok = f
            .network_pairs()
            .iter()
            .any(|(s, d)| s.contains(&p.src) && d.contains(&p.dst));
        if !addr_ok {
            continue;
        }
        let svc_ok = f.services.iter().any(|s| match s.protocol {
            Protocol::Any => true,
            Protocol::Tcp => p.proto == 6 && s.ports.first <= p.dport && p.dport <= s.ports.last,
            Protocol::Udp => p.proto == 17 && s.ports.first <= p.dport && p.dport <= s.ports.last,
            Protocol::Icmp => p.proto == 1 || p.proto == 58,
        });
        if svc_ok {
            return eval::Verdict::Accept;
        }
    }
    eval::Verdict::Drop
}

/// Load our iptables output for `fam` into a fresh namespace and read it back
/// with `iptables-save` / `ip6tables-save`.
pub fn load_ours(site: &Site, fam: Family, opts: &ringfence_generate::Options) -> eval::Ruleset {
    let out = ringfence_generate::generate_site(
        site,
        ringfence_generate::Target::Iptables,
        &ringfence_generate::Options {
            family: Some(fam),
            ..opts.clone()
        },
    )
    .expect("generate iptables");
    let (restore, save) = match fam {
        Family::V4 => ("iptables-restore", "iptables-save"),
        Family::V6 => ("ip6tables-restore", "ip6tables-save"),
    };
    let ns = Netns::new();
    ns.ok(restore, &[], out.files[0].contents.as_bytes());
    eval::Ruleset::parse(&ns.ok(save, &["-t", "filter"], b""))
}
