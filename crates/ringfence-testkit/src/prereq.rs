//! Prerequisites of a test: root, a tool on PATH, a file in the repository.
//!
//! A test calls [`require!`](crate::require) first and returns when it gives
//! `false`:
//!
//! ```text
//! #[test]
//! fn nft_loads_the_generated_rules() {
//!     if !ringfence_testkit::require!(Need::Root, Need::Tool("nft")) {
//!         return;
//!     }
//!     ...
//! }
//! ```
//!
//! Strict mode (`CI=true` or `RINGFENCE_REQUIRE_ALL=1`) turns a missing
//! prerequisite into a failure naming it. Otherwise the test prints
//! `skipped: <test>: <reason>` and appends one line `<test>\t<reason>` to the
//! file named by `RINGFENCE_SKIP_LOG` (when set), so the suite's summary
//! counts it as skipped, not passed.

use std::io::Write;
use std::path::PathBuf;

/// One thing a test needs from the machine.
#[derive(Debug, Clone)]
pub enum Need {
    /// Effective user id 0 (network namespaces, file ownership, mounts).
    Root,
    /// An executable of this name on PATH.
    Tool(&'static str),
    /// A file that must exist (a venv tool, a browser), with how to get it.
    File {
        /// The path.
        path: PathBuf,
        /// How to get it, for the message.
        install: &'static str,
    },
}

impl Need {
    /// `None` when satisfied, otherwise why not.
    pub fn missing(&self) -> Option<String> {
        match self {
            Need::Root => (!is_root()).then(|| {
                "needs root (network namespaces, file ownership, mounts); run the suite as root"
                    .to_string()
            }),
            Need::Tool(t) => (!have_tool(t)).then(|| {
                format!(
                    "needs `{t}` on PATH ({}); scripts/test.sh installs it when run as root",
                    package_of(t)
                )
            }),
            Need::File { path, install } => {
                (!path.exists()).then(|| format!("needs {} ({install})", path.display()))
            }
        }
    }
}

/// The Debian package that provides a tool, for messages.
fn package_of(tool: &str) -> &'static str {
    match tool {
        "nft" => "apt-get install nftables",
        "iptables" | "iptables-restore" | "iptables-save" | "ip6tables-restore"
        | "ip6tables-save" => "apt-get install iptables",
        "ip" => "apt-get install iproute2",
        "etcd" => "apt-get install etcd-server",
        "nmap" => "apt-get install nmap",
        "chromium" => "apt-get install chromium",
        "unshare" => "apt-get install util-linux",
        "ipset" => "apt-get install ipset",
        _ => "install it",
    }
}

/// Whether the effective user is root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Whether `name` is an executable file on PATH.
pub fn have_tool(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// Whether a missing prerequisite must fail the test (`CI=true` or
/// `RINGFENCE_REQUIRE_ALL=1`).
pub fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("RINGFENCE_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// The running test's name: libtest names each test's thread after it.
pub fn current_test(module: &str) -> String {
    let t = std::thread::current();
    match t.name() {
        Some(n) if n != "main" => {
            // The thread name is the test's path inside its binary; add the binary.
            let bin = module.split("::").next().unwrap_or(module);
            if n.starts_with(bin) {
                n.to_string()
            } else {
                format!("{bin}::{n}")
            }
        }
        _ => module.to_string(),
    }
}

/// Check `needs` for the test `test`. `true`: go on. `false`: the test was
/// recorded as skipped and must return. Panics (fails the test) in strict mode.
pub fn require(test: &str, needs: &[Need]) -> bool {
    // Missing tools are named together, with their packages, in one clause.
    let mut tools = Vec::new();
    let mut missing = Vec::new();
    for n in needs {
        match n {
            Need::Tool(t) if !have_tool(t) => tools.push(format!("`{t}` ({})", package_of(t))),
            Need::Tool(_) => {}
            other => missing.extend(other.missing()),
        }
    }
    if !tools.is_empty() {
        missing.push(format!(
            "needs {} on PATH; scripts/test.sh installs them when run as root",
            tools.join(", ")
        ));
    }
    if missing.is_empty() {
        return true;
    }
    let reason = missing.join("; ");
    if strict() {
        panic!(
            "{test}: prerequisite missing: {reason}. CI=true (or RINGFENCE_REQUIRE_ALL=1) requires every prerequisite; \
             unset it to have the test listed as skipped instead"
        );
    }
    skip(test, &reason);
    false
}

/// Record `test` as skipped for `reason` (printed, and logged for the summary).
pub fn skip(test: &str, reason: &str) {
    eprintln!("skipped: {test}: {reason}");
    if let Some(log) = std::env::var_os("RINGFENCE_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            // One write per line keeps concurrent tests' lines whole (O_APPEND).
            let _ = f.write_all(format!("{test}\t{reason}\n").as_bytes());
        }
    }
}

/// `require!(Need::Root, Need::Tool("nft"))`: [`require`] for the calling
/// test, named by its thread (libtest) and module.
#[macro_export]
macro_rules! require {
    ($($need:expr),+ $(,)?) => {
        $crate::prereq::require(
            &$crate::prereq::current_test(module_path!()),
            &[$($need),+],
        )
    };
}
