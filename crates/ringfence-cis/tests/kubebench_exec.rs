//! The same node judged twice with the same kube-bench definitions: once with
//! every audit run by /bin/sh (as kube-bench runs them) and once with the
//! read-only idioms answered natively. Every check must get the same status
//! and expectation, and file-based audits the same output.

use ringfence_cis::benchmark::Target;
use ringfence_cis::kubebench::{self, audit::Exec, Definitions, Mode};
use ringfence_cis::node::{discover, DiscoverOptions};
use ringfence_cis::profile::Date;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

struct StandIn(Child);

impl Drop for StandIn {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; the group is the
        // one this test started (process_group(0) below).
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn tools_present() -> bool {
    [
        "/bin/sh",
        "/bin/ps",
        "/usr/bin/stat",
        "/usr/bin/find",
        "/usr/bin/xargs",
    ]
    .iter()
    .all(|t| Path::new(t).exists() || Path::new(&t.replace("/usr", "")).exists())
}

fn file(root: &Path, rel: &str, text: &str, mode: u32) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn native_idioms_and_the_shell_judge_every_check_alike() {
    if !tools_present() {
        // Every Debian system has these; their absence is a broken machine.
        ringfence_testkit::require!(ringfence_testkit::Need::File {
            path: "/bin/sh, /bin/ps, /usr/bin/stat, /usr/bin/find, /usr/bin/xargs".into(),
            install: "apt-get install procps coreutils findutils",
        });
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let tp = t.display().to_string();
    let id = std::process::id();
    let api = format!("rfkb-apiserver-{id}");
    file(
        t,
        "etc/kubernetes/manifests/kube-apiserver.yaml",
        "kind: Pod\n",
        0o600,
    );
    file(t, "etc/kubernetes/admin.conf", "x", 0o644);
    file(t, "etc/kubernetes/pki/ca.crt", "c", 0o644);
    file(t, "etc/kubernetes/pki/ca.key", "k", 0o600);
    file(t, "etc/kubernetes/pki/etcd/peer.key", "k", 0o640);
    file(t, "var/lib/kubelet/config.yaml", "readOnlyPort: 0\nauthentication:\n  anonymous:\n    enabled: false\ntlsCipherSuites: [A, B]\n", 0o644);
    std::fs::create_dir_all(t.join("var/lib/etcd")).unwrap();
    std::fs::set_permissions(
        t.join("var/lib/etcd"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    symlink(
        t.join("etc/kubernetes/admin.conf"),
        t.join("etc/kubernetes/link.conf"),
    )
    .unwrap();

    let _proc = StandIn(
        Command::new("/bin/sh")
            .arg0(&api)
            .args([
                "-c",
                "sleep 60; :",
                "standin",
                "--anonymous-auth=false",
                "--profiling",
                "--audit-log-maxage=30",
                &format!("--data-dir={tp}/var/lib/etcd"),
            ])
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    // Wait until the stand-in's command line is visible.
    for _ in 0..200 {
        let out = Command::new("/bin/ps").arg("-ef").output().unwrap();
        if String::from_utf8_lossy(&out.stdout).contains(&api) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

    let cfg = t.join("cfg");
    file(
        &cfg,
        "config.yaml",
        &format!(
            "master:\n  components: [apiserver, kubelet, etcd]\n  apiserver:\n    bins: [{api}]\n    defaultbin: {api}\n    confs: [{tp}/etc/kubernetes/manifests/kube-apiserver.yaml]\n    kubeconfig: [{tp}/etc/kubernetes/link.conf]\n  kubelet:\n    bins: [rfkb-no-such-kubelet-{id}]\n    defaultbin: rfkb-no-such-kubelet-{id}\n    confs: [{tp}/var/lib/kubelet/config.yaml]\n    defaultcafile: {tp}/etc/kubernetes/pki/ca.crt\n  etcd:\n    bins: [{api}]\n    defaultdatadir: {tp}/var/lib/etcd-missing\n"
        ),
        0o644,
    );
    let checks = format!(
        r#"controls:
id: 1
text: parity
type: master
groups:
- id: 1.1
  text: processes
  checks:
  - id: 1.1.1
    text: flag equals
    audit: "/bin/ps -ef | grep $apiserverbin | grep -v grep"
    tests:
      test_items:
      - flag: --anonymous-auth
        compare: {{op: eq, value: false}}
    scored: true
  - id: 1.1.2
    text: bare flag is true
    audit: "/bin/ps -ef | grep $apiserverbin | grep -v grep"
    tests:
      test_items:
      - flag: --profiling
        compare: {{op: eq, value: false}}
    scored: true
  - id: 1.1.3
    text: number
    audit: "/bin/ps -ef | /bin/grep $apiserverbin | /bin/grep -v grep"
    tests:
      bin_op: or
      test_items:
      - flag: --audit-log-maxage
        compare: {{op: gte, value: 30}}
      - flag: --nope
        set: true
    scored: true
  - id: 1.1.4
    text: flag absent
    audit: "/bin/ps -ef | grep $apiserverbin | grep -v grep"
    tests:
      test_items:
      - flag: --basic-auth-file
        set: false
    scored: true
  - id: 1.1.5
    text: no such process
    audit: "/bin/ps -ef | grep $kubeletbin | grep -v grep"
    tests:
      test_items:
      - flag: --x
    scored: true
  - id: 1.1.6
    text: ps -fC by command name
    audit: "/bin/ps -fC $kubeletbin"
    tests:
      test_items:
      - flag: --x
    scored: false
  - id: 1.1.7
    text: environment of an absent process
    audit: "/bin/ps -ef | grep $apiserverbin | grep -v grep"
    tests:
      test_items:
      - flag: --not-there
        env: NOT_THERE
        set: true
    scored: true
- id: 1.2
  text: files
  checks:
  - id: 1.2.1
    text: mode
    audit: "/bin/sh -c 'if test -e $apiserverconf; then stat -c permissions=%a $apiserverconf; fi'"
    tests:
      test_items:
      - flag: permissions
        compare: {{op: bitmask, value: "644"}}
    scored: true
  - id: 1.2.2
    text: owner
    audit: "/bin/sh -c 'if test -e $apiserverconf; then stat -c %U:%G $apiserverconf; fi'"
    tests:
      test_items:
      - flag: root:root
    scored: true
  - id: 1.2.3
    text: a symlink's own mode
    audit: '/bin/sh -c ''if test -e $apiserverkubeconfig; then stat -c permissions=%a $apiserverkubeconfig; fi'' '
    tests:
      test_items:
      - flag: permissions
        compare: {{op: bitmask, value: "600"}}
    scored: true
  - id: 1.2.4
    text: missing file with an else branch
    audit: '/bin/sh -c "if test -e {tp}/nope.service; then stat -c %U:%G {tp}/nope.service; else echo \"File not found\"; fi"'
    tests:
      bin_op: or
      test_items:
      - flag: root:root
      - flag: "File not found"
    scored: true
  - id: 1.2.5
    text: every file under a directory
    audit: "find {tp}/etc/kubernetes/pki/ | xargs stat -c permissions=%a"
    use_multiple_values: true
    tests:
      test_items:
      - flag: permissions
        compare: {{op: bitmask, value: "644"}}
    scored: true
  - id: 1.2.6
    text: keys only
    audit: "find {tp}/etc/kubernetes/pki/ -name '*.key' | xargs stat -c permissions=%a"
    use_multiple_values: true
    tests:
      test_items:
      - flag: permissions
        compare: {{op: bitmask, value: "600"}}
    scored: true
  - id: 1.2.7
    text: nothing found
    audit: "find {tp}/etc/kubernetes/pki/ -name '*.pem' | xargs stat -c permissions=%a"
    tests:
      test_items:
      - flag: permissions
    scored: true
  - id: 1.2.8
    text: a list of files
    audit: 'for f in {tp}/etc/kubernetes/admin.conf {tp}/etc/kubernetes/none.conf; do if test -e $f; then stat -c "permissions=%a %n" $f; fi; done'
    use_multiple_values: true
    tests:
      test_items:
      - flag: permissions
        compare: {{op: bitmask, value: "600"}}
    scored: true
  - id: 1.2.9
    text: etcd data directory from the process
    audit: |
      DATA_DIR=''
      for d in $(ps -ef | grep $etcdbin | grep -- --data-dir | sed 's%.*data-dir[= ]\([^ ]*\).*%\1%'); do
        if test -d "$d"; then DATA_DIR="$d"; fi
      done
      if ! test -d "$DATA_DIR"; then DATA_DIR=$etcddatadir; fi
      stat -c permissions=%a "$DATA_DIR"
    tests:
      test_items:
      - flag: permissions
        compare: {{op: bitmask, value: "700"}}
    scored: true
  - id: 1.2.10
    text: kubelet client CA falls back to the default
    audit: |
      CAFILE=$(ps -ef | grep kubelet | grep -v apiserver | grep -- --client-ca-file= | awk -F '--client-ca-file=' '{{print $2}}' | awk '{{print $1}}' | uniq)
      if test -z $CAFILE; then CAFILE=$kubeletcafile; fi
      if test -e $CAFILE; then stat -c permissions=%a $CAFILE; fi
    tests:
      test_items:
      - flag: permissions
        compare: {{op: bitmask, value: "644"}}
    scored: true
- id: 1.3
  text: config files
  checks:
  - id: 1.3.1
    text: path in a config file
    audit_config: "/bin/cat $kubeletconf"
    tests:
      test_items:
      - flag: --read-only-port
        path: '{{.readOnlyPort}}'
        compare: {{op: eq, value: 0}}
    scored: true
  - id: 1.3.2
    text: a list in a config file
    audit_config: "/bin/sh -c 'if test -e $kubeletconf; then cat $kubeletconf; fi'"
    tests:
      test_items:
      - path: '{{range .tlsCipherSuites[:]}}{{}}{{'',''}}{{end}}'
        compare: {{op: valid_elements, value: "A,B,C"}}
    scored: true
  - id: 1.3.3
    text: cat of a missing file fails
    audit: "/bin/cat {tp}/missing.yaml"
    tests:
      test_items:
      - flag: x
    scored: false
  - id: 1.3.4
    text: flag wins over config
    audit: "/bin/ps -ef | grep $apiserverbin | grep -v grep"
    audit_config: "/bin/cat $kubeletconf"
    tests:
      test_items:
      - flag: --anonymous-auth
        path: '{{.authentication.anonymous.enabled}}'
        compare: {{op: eq, value: true}}
    scored: true
"#
    );
    file(&cfg, "parity/master.yaml", &checks, 0o644);
    let defs = Definitions::load(&cfg, "parity").unwrap();
    let node = discover(&DiscoverOptions {
        only_pids: Some(vec![]),
        ..Default::default()
    })
    .unwrap();
    let run = |mode: Mode| {
        kubebench::scan(
            &defs,
            &node,
            &ringfence_cis::report::ScanOptions {
                targets: Some(vec![Target::Master]),
                checks: None,
                profile: None,
                waivers: &[],
                today: Date::parse("2026-01-01").unwrap(),
            },
            &mode,
        )
        .unwrap_or_else(|r| panic!("{}", r.message()))
    };
    let native = run(Mode::Native);
    let shell = run(Mode::Exec(Exec::default()));
    assert_eq!(native.ran.len(), 21);
    let mut statuses = Vec::new();
    for (n, s) in native.ran.iter().zip(&shell.ran) {
        let id = &n.planned.check.id;
        assert_eq!(
            (n.outcome.state, &n.outcome.expected_result),
            (s.outcome.state, &s.outcome.expected_result),
            "{id}: native {:?} / shell {:?}",
            n.outcome,
            s.outcome
        );
        let audit = &n.planned.check.audit;
        if !audit.contains("ps ") && !audit.contains("ps\n") {
            assert_eq!(n.outcome.actual_value, s.outcome.actual_value, "{id}");
        }
        assert!(
            n.outcome.how.iter().all(|h| h.starts_with("native")),
            "{id}: {:?}",
            n.outcome.how
        );
        assert!(
            s.outcome.how.iter().all(|h| h.starts_with("exec")),
            "{id}: {:?}",
            s.outcome.how
        );
        statuses.push(format!("{id} {}", n.outcome.state.name()));
    }
    // The fixture exercises passing and failing paths of every idiom.
    let expect = [
        "1.1.1 PASS",
        "1.1.2 FAIL",
        "1.1.3 PASS",
        "1.1.4 PASS",
        "1.1.5 FAIL",
        "1.1.6 WARN",
        "1.1.7 FAIL",
        "1.2.1 PASS",
        "1.2.3 FAIL",
        "1.2.4 PASS",
        "1.2.5 FAIL",
        "1.2.6 FAIL",
        "1.2.7 FAIL",
        "1.2.8 FAIL",
        "1.2.9 PASS",
        "1.2.10 PASS",
        "1.3.1 PASS",
        "1.3.2 PASS",
        "1.3.3 WARN",
        "1.3.4 FAIL",
    ];
    for e in expect {
        assert!(statuses.iter().any(|s| s == e), "{e} not in {statuses:?}");
    }
}
