//! `-P`/`-N`/`-A` command lines (`iptables -S`, Aerleon/Capirca's iptables
//! target) read as the filter table they build: the same verdicts as the
//! `iptables-save` of that table. With root and aclgen, Aerleon's own
//! rendering of ringfence's export is run line by line with `iptables` in a
//! namespace and held to the kernel's dump.

mod probe_support;

use ringfence_model::{Policy, Ruleset};
use ringfence_parse::{parse_rulesets, RulesetFormat};
use ringfence_testkit::{Need, Netns};

fn read(text: &str, name: &str) -> Ruleset {
    parse_rulesets(&[(text, name)], RulesetFormat::Auto).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_same(a: &Ruleset, b: &Ruleset, what: &str) {
    let packets = probe_support::packets(&[a, b], 3000);
    let d = probe_support::disagreements(a, b, &packets);
    assert!(
        d.is_empty(),
        "{what}: {} disagree, first:\n{}",
        d.len(),
        d[..d.len().min(5)].join("\n")
    );
}

/// The shape Aerleon's iptables target prints.
const CAPIRCA: &str = "# Iptables FORWARD Policy\n# site example\n#\n# $Id:$\n# inet\n\
-P FORWARD DROP\n\
-N F_replies\n\
-A FORWARD -j F_replies\n\
-A F_replies -m comment --comment \"replies to allowed flows\"\n\
-A F_replies -p all -m state --state ESTABLISHED,RELATED -j ACCEPT\n\
-N F_ssh\n\
-A FORWARD -j F_ssh\n\
-A F_ssh -m comment --comment \"ssh: operators\"\n\
-A F_ssh -p tcp --dport 22 -s 198.18.1.10/32 -d 198.18.10.0/24 -m state --state NEW,ESTABLISHED,RELATED -j ACCEPT\n";

const SAVED: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:F_replies - [0:0]\n:F_ssh - [0:0]\n\
-A FORWARD -j F_replies\n\
-A FORWARD -j F_ssh\n\
-A F_replies -m comment --comment \"replies to allowed flows\"\n\
-A F_replies -p all -m state --state ESTABLISHED,RELATED -j ACCEPT\n\
-A F_ssh -m comment --comment \"ssh: operators\"\n\
-A F_ssh -s 198.18.1.10/32 -d 198.18.10.0/24 -p tcp -m tcp --dport 22 -m state --state NEW,RELATED,ESTABLISHED -j ACCEPT\n\
COMMIT\n";

#[test]
fn aerleon_command_lines_read_as_the_filter_table_they_build() {
    let cmds = read(CAPIRCA, "aerleon.ipt");
    assert_same(
        &cmds,
        &read(SAVED, "saved.rules"),
        "commands vs iptables-save",
    );
    let fwd = cmds.chains.iter().find(|c| c.name == "FORWARD").unwrap();
    assert_eq!(fwd.base.as_ref().unwrap().policy, Policy::Drop);
    // Built-in chains no `-P` names accept, as in a fresh table.
    let input = cmds.chains.iter().find(|c| c.name == "INPUT").unwrap();
    assert_eq!(input.base.as_ref().unwrap().policy, Policy::Accept);
}

#[test]
fn command_form_mistakes_are_located() {
    let err = |t: &str| {
        parse_rulesets(&[(t, "cmds")], RulesetFormat::Auto)
            .expect_err("an error")
            .to_string()
    };
    assert_eq!(
        err("-P FORWARD REJECT\n"),
        "cmds:1:12: chain policy `REJECT`: expected ACCEPT or DROP"
    );
    assert_eq!(
        err("-N F_x\n-P F_x DROP\n"),
        "cmds:2:4: `-P F_x`: only the built-in chains INPUT, FORWARD and OUTPUT have policies"
    );
    assert_eq!(
        err("-P FORWARD DROP\n-A FORWARD -j F_y\n"),
        "cmds:2:15: jump target `F_y` is not a declared chain: expected ACCEPT, DROP, REJECT, RETURN, LOG or a chain declared with `:F_y - [0:0]`"
    );
}

/// Split a command line the way a shell would for these files (double quotes).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut cur, mut quoted, mut any) = (String::new(), false, false);
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

#[test]
fn kernel_aerleon_rendering_and_iptables_s_read_like_the_kernels_dump() {
    let aclgen = ringfence_testkit::repo::venv_tool("aclgen");
    if !ringfence_testkit::require!(
        Need::Root,
        Need::Tool("ip"),
        Need::Tool("iptables"),
        Need::Tool("iptables-save"),
        aclgen
    ) {
        return;
    }
    use ringfence_generate::{generate_site, Options, Target};
    let site = ringfence_site::load_site_file(&ringfence_testkit::repo::path(
        "examples/all-features.yaml",
    ))
    .unwrap();
    let export = generate_site(&site, Target::Aerleon, &Options::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("rf-aerleon-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for f in &export.files {
        let p = dir.join(&f.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &f.contents).unwrap();
    }
    ringfence_testkit::repo::run_aclgen(&dir);
    let stem = format!(
        "{}-v4",
        ringfence_generate::plan::sanitize(&site.resolve().site)
    );
    let rendered = std::fs::read_to_string(dir.join("out").join(&stem)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let ns = Netns::new("ipcmd");
    for line in rendered.lines().filter(|l| l.starts_with('-')) {
        let w = words(line);
        let args: Vec<&str> = w.iter().map(String::as_str).collect();
        ns.ok("iptables", &args, b"");
    }
    let saved = ns.ok("iptables-save", &[], b"");
    let listed = ns.ok("iptables", &["-S"], b"");
    let kernel = read(&saved, "iptables-save");
    assert_same(&read(&rendered, &stem), &kernel, "aerleon iptables output");
    assert_same(&read(&listed, "iptables -S"), &kernel, "iptables -S");
}
